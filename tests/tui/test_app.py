"""Pilot tests of the TUI shell: prefab picking, inline validation, diff, save-as, restart restore, palette,
tokens, crash dumps. Each test gets its own config and base dir (tmp), and a file secret store there."""

from __future__ import annotations

import json

import pytest
from dialog_helpers import answer, shown_dialog
from textual import events
from textual.widgets import Button, Input, Select, Static

from nanochat_cli.app import NanochatApp
from nanochat_cli.screens.auth import AuthScreen
from nanochat_cli.screens.confirm import ConfirmScreen
from nanochat_cli.screens.save_as import SaveAsScreen
from nanochat_cli.services import paths
from nanochat_cli.services.config.guardrails import MachineInfo
from nanochat_cli.services.secrets import SecretStore
from nanochat_cli.widgets.config.diff_table import DiffTable
from nanochat_cli.widgets.config.field_row import FieldRow

MACHINE = MachineInfo(cpu_count=2, ram_total_bytes=8_000_000_000, ram_free_bytes=6_000_000_000)


@pytest.fixture(autouse=True)
def dirs(tmp_path, monkeypatch):
    """conftest.py points the config and base dirs at tmp_path/config and tmp_path/base."""
    assert str(tmp_path) in str(paths.user_config_dir()) and str(tmp_path) in str(paths.base_dir())
    for var in ("WANDB_API_KEY", "HF_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


def make_app(tmp_path) -> NanochatApp:
    return NanochatApp(machine=MACHINE, secrets=SecretStore(file_dir=tmp_path / "secrets"), online_checks=False)


def help_text(row: FieldRow) -> str:
    return str(row.query_one(".field-help", Static).content)


async def type_into(pilot, selector: str, text: str) -> Input:
    inp = pilot.app.screen.query_one(selector, Input)
    inp.focus()
    inp.cursor_position = len(inp.value)
    await pilot.press("ctrl+u", *text)
    await pilot.pause()
    return inp


async def test_pick_prefab_with_the_select(dirs):
    app = make_app(dirs)
    async with app.run_test(size=(120, 40)) as pilot:
        names = [p.name for p in app.session.prefabs()]
        assert app.session.prefab == "cpu-tiny"
        target = "cpu-small"
        app.screen.query_one("#prefab-select", Select).focus()
        await pilot.press("enter")  # open the menu
        step = "down" if names.index(target) > names.index("cpu-tiny") else "up"
        await pilot.press(*[step] * abs(names.index(target) - names.index("cpu-tiny")), "enter")
        await pilot.pause()
        assert app.session.prefab == target
        depth = app.session.store.resolve(target)["model.depth"]
        assert app.screen.query_one("#f-model--depth", Input).value == str(depth)
        assert json.loads((dirs / "config" / "state.json").read_text())["prefab"] == target


async def test_invalid_value_shows_error_then_fix_shows_diff(dirs):
    app = make_app(dirs)
    async with app.run_test(size=(120, 40)) as pilot:
        base_depth = app.session.base["model.depth"]
        inp = await type_into(pilot, "#f-model--depth", "0")
        row = next(a for a in inp.ancestors if isinstance(a, FieldRow))
        assert row.has_class("-invalid")
        msg = help_text(row)
        assert "model.depth" in msg and "0" in msg and "between 1 and 128" in msg
        assert app.session.overrides == {}  # a bad value is never stored
        await pilot.press("ctrl+s")  # saving is refused while a field holds a bad value
        await pilot.pause()
        assert not isinstance(app.screen, SaveAsScreen)
        assert any("model.depth" in str(n.message) and n.severity == "error" for n in app._notifications)
        assert "✗ 1 invalid field" in str(app.screen.query_one("#guard-summary", Static).content)

        await type_into(pilot, "#f-model--depth", "6")
        assert not row.has_class("-invalid")
        assert app.session.overrides == {"model.depth": 6}
        table = app.screen.query_one(DiffTable)
        assert table.get_row("model.depth") == ["model", "depth", str(base_depth), "6"]
        assert "●" in str(row.query_one(".field-label").content)

        # a cross-field rule: total batch not divisible by device_batch × seq_len × world
        app.screen.query_one("#categories").focus()
        await pilot.press("down")  # the training category; its rows mount when first shown
        await pilot.pause()
        await type_into(pilot, "#f-training--total_batch_size", "1000")
        assert app.session.issues and app.session.issues[0].field == "training.total_batch_size"

        # reset the field with its binding
        app.screen.query_one("#f-model--depth", Input).focus()
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert "model.depth" not in app.session.overrides
        assert app.screen.query_one("#f-model--depth", Input).value == str(base_depth)


async def test_save_as_then_reload_and_confirm_overwrite(dirs):
    app = make_app(dirs)
    async with app.run_test(size=(120, 40)) as pilot:
        await type_into(pilot, "#f-model--depth", "6")
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert isinstance(app.screen, SaveAsScreen)
        await pilot.press(*"my-run", "enter")
        await pilot.pause()
        assert app.session.prefab == "my-run" and app.session.overrides == {}
        saved = dirs / "config" / "prefabs" / "my-run.yaml"
        assert saved.exists() and "depth: 6" in saved.read_text()
        assert app.screen.query_one("#prefab-select", Select).value == "my-run"

        app.request_switch_prefab("cpu-tiny")  # no overrides: no question asked
        await pilot.pause()
        assert app.session.current["model.depth"] == app.session.base["model.depth"] != 6
        app.request_switch_prefab("my-run")
        await pilot.pause()
        assert app.session.current["model.depth"] == 6

        # saving under an existing name asks first; Esc keeps the file, y overwrites it
        await type_into(pilot, "#f-model--depth", "8")
        await pilot.press("ctrl+s")
        await pilot.press(*"my-run", "enter")
        await answer(pilot, "y")
        assert "depth: 8" in saved.read_text() and app.session.overrides == {}

        # switching prefab with overrides asks before dropping them
        await type_into(pilot, "#f-model--depth", "5")
        app.request_switch_prefab("cpu-small")
        await answer(pilot, "escape")
        assert app.session.prefab == "my-run" and app.session.overrides == {"model.depth": 5}
        assert app.screen.query_one("#prefab-select", Select).value == "my-run"


async def test_save_as_refuses_shipped_names_inline(dirs):
    app = make_app(dirs)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("ctrl+s")
        await pilot.press(*"cpu-small", "enter")
        await pilot.pause()
        assert isinstance(app.screen, SaveAsScreen)  # still open, with the reason shown
        assert "shipped" in str(app.screen.query_one("#save-error", Static).content)
        await pilot.press("escape")
        assert not (dirs / "config" / "prefabs").exists()


async def test_restart_restores_screen_prefab_and_overrides(dirs):
    app = make_app(dirs)
    async with app.run_test(size=(120, 40)) as pilot:
        app.request_switch_prefab("cpu-small")
        await pilot.pause()
        await type_into(pilot, "#f-model--depth", "3")
        await pilot.press("f5")  # Logs tab (the number keys would type into the focused input)
        await pilot.pause()
        assert app.current_mode == "logs"

    again = make_app(dirs)
    async with again.run_test(size=(120, 40)) as pilot:
        assert again.current_mode == "logs"
        assert again.session.prefab == "cpu-small"
        assert again.session.overrides == {"model.depth": 3}
        await pilot.press("1")
        await pilot.pause()
        assert again.screen.query_one("#f-model--depth", Input).value == "3"


async def test_number_and_function_keys_switch_tabs_and_status_follows(dirs):
    app = make_app(dirs)
    async with app.run_test(size=(80, 24)) as pilot:
        for key, name in (("2", "train"), ("3", "checkpoints"), ("f4", "chat"), ("f5", "logs"), ("1", "config"),
                          ("f2", "train")):
            await pilot.press(key)
            await pilot.pause()
            assert app.current_mode == name and app.status.screen == name
        await pilot.click("#nav-checkpoints")  # the tab bar is clickable too
        await pilot.pause()
        assert app.current_mode == "checkpoints"
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert app.status.machine == "CPU ×2" and app.status.run == "idle"
        assert app.status.wandb == "key not set · disabled" and app.status.mode == "cpu ×2"


async def test_command_palette_opens_screens_and_switches_prefabs(dirs):
    app = make_app(dirs)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("ctrl+p")
        await pilot.press(*"open logs")  # fuzzy: matches "Open screen: Logs"
        await pilot.pause(0.3)
        await pilot.press("enter")
        await pilot.pause()
        assert app.current_mode == "logs"
        await pilot.press("ctrl+p")
        await pilot.press(*"prefab small")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await pilot.pause()
        assert app.session.prefab == "cpu-small"


async def test_debug_toggle_and_structured_log(dirs):
    app = make_app(dirs)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("5", "d")
        await pilot.pause()
        assert app.app_log.debug and app.status.debug
        await pilot.press("1")
        await pilot.pause()
    lines = [json.loads(line) for line in (dirs / "config" / "logs" / "app.jsonl").read_text().splitlines()]
    started = [r for r in lines if r["msg"] == "app started"]  # (after the plugins' own load lines)
    assert len(started) == 1 and started[0]["prefab"] == "cpu-tiny"
    assert any(r["msg"] == "debug log on" for r in lines)
    assert any(r["msg"] == "screen" and r["level"] == "DEBUG" and r["screen"] == "config" for r in lines)
    assert json.loads((dirs / "config" / "state.json").read_text())["debug"] is True


async def test_tokens_modal_stores_masked_and_never_renders_the_value(dirs):
    key = "a1b2c3d4e5" * 4  # 40 characters: the classic W&B key form
    app = make_app(dirs)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("ctrl+t")
        await pilot.pause()
        assert isinstance(app.screen, AuthScreen)
        inp = app.screen.query_one("#tok-wandb_api_key", Input)
        assert inp.password
        inp.focus()
        await pilot.press(*key)
        await pilot.pause()
        assert key not in app.export_screenshot()
        await pilot.press("enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert app.secrets.get("wandb_api_key") == key
        assert app.status.wandb.startswith("key set")
        assert any("saved, not verified" in str(n.message) for n in app._notifications)
        assert app.session.current["auth.wandb_key_set"] is True
        assert key not in app.export_screenshot()
    assert key not in (dirs / "config" / "logs" / "app.jsonl").read_text()
    for path in (dirs / "config").rglob("*"):  # only the secret store's own file may hold it
        if path.is_file() and path.parent != dirs / "secrets":
            assert key not in path.read_text(errors="replace"), path


class CrashingApp(NanochatApp):
    def action_boom(self) -> None:
        raise RuntimeError(f"boom with {self.secrets.get('wandb_api_key')}")


async def test_crash_writes_a_dump_without_secrets(dirs):
    secret = "z" * 40
    store = SecretStore(file_dir=dirs / "secrets")
    store.set("wandb_api_key", secret)
    app = CrashingApp(machine=MACHINE, secrets=store, online_checks=False)
    with pytest.raises(RuntimeError):
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause()
            app.call_later(app.action_boom)  # raised inside the app, like any handler bug
            await pilot.pause()
    assert app.crash_path is not None and app.crash_path.parent == dirs / "config" / "crash"
    dump = app.crash_path.read_text()
    assert "RuntimeError: boom with ***" in dump and '"prefab": "cpu-tiny"' in dump
    assert secret not in dump


async def test_switch_and_select_editors_store_typed_values(dirs):
    app = make_app(dirs)
    async with app.run_test(size=(120, 40)) as pilot:
        app.screen.show_category("training")
        await pilot.pause()
        app.screen.query_one("#f-training--compile").focus()
        await pilot.press("space")
        await pilot.pause()
        assert app.session.overrides == {"training.compile": True}
        row = app.screen.query_one("#f-training--compile").parent.parent
        assert str(row.query_one(".switch-state").content) == "on"

        app.screen.show_category("hardware")
        await pilot.pause()
        select = app.screen.query_one("#f-hardware--device", Select)
        choices = app.session.specs["hardware.device"].choices
        select.focus()
        await pilot.press("enter", "up", "enter")  # the choice above the current one
        await pilot.pause()
        expected = choices[choices.index(app.session.base["hardware.device"]) - 1]
        assert app.session.overrides["hardware.device"] == expected
        assert app.status.mode.startswith(expected)


async def ask_to_reset(pilot) -> ConfirmScreen:
    """Ctrl+L, then wait until the question is on screen (keys typed before that are not answers)."""
    await pilot.press("ctrl+l")
    return await shown_dialog(pilot)


async def test_reset_all_asks_first(dirs):
    app = make_app(dirs)
    async with app.run_test(size=(80, 24)) as pilot:
        await type_into(pilot, "#f-model--depth", "6")
        await type_into(pilot, "#f-model--max_seq_len", "128")
        await ask_to_reset(pilot)
        await pilot.press("n")  # keeps them
        await pilot.pause()
        assert len(app.session.overrides) == 2
        await ask_to_reset(pilot)
        await pilot.press("y")
        await pilot.pause()
        assert app.session.overrides == {}
        assert app.screen.query_one("#f-model--max_seq_len", Input).value == str(app.session.base["model.max_seq_len"])


def help_shown(app) -> bool:
    return bool(app.screen.query("HelpPanel"))


async def test_help_panel_toggles_with_question_mark_and_f1_and_closes_with_escape(dirs):
    app = make_app(dirs)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("5")  # the Logs tab: no text box has focus
        await pilot.pause()
        for key in ("question_mark", "f1"):
            await pilot.press(key)
            await pilot.pause()
            assert help_shown(app), key
            await pilot.press(key)
            await pilot.pause()
            assert not help_shown(app), key
        assert app.current_mode == "logs"  # F1 is help, not the Config tab
        await pilot.press("ctrl+p")  # the palette's "Keys" opens the same panel
        await pilot.press(*"keys")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await pilot.pause()
        assert help_shown(app)
        await pilot.press("escape")
        await pilot.pause()
        assert not help_shown(app) and app.current_mode == "logs"


async def test_help_panel_does_not_linger_on_a_tab_left_with_it_open(dirs):
    app = make_app(dirs)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("2", "f1")
        await pilot.pause()
        assert app.current_mode == "train" and help_shown(app)
        await pilot.press("5")
        await pilot.pause()
        assert not help_shown(app)
        await pilot.press("2")
        await pilot.pause()
        assert app.current_mode == "train" and not help_shown(app)


async def test_question_mark_types_into_a_text_box_and_escape_closes_help_before_the_screen_sees_it(dirs):
    app = make_app(dirs)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("4")
        await pilot.pause()
        box = app.screen.query_one("#chat-input", Input)
        box.focus()
        await pilot.press("question_mark")
        await pilot.pause()
        assert box.value == "?" and not help_shown(app)
        await pilot.press("f1")
        await pilot.pause()
        assert help_shown(app)
        await pilot.press("escape")
        await pilot.pause()
        assert not help_shown(app)
        assert not any("Nothing is being generated" in str(n.message) for n in app._notifications)


async def test_reset_confirm_shows_its_keys_and_ignores_keys_typed_before_it_showed(dirs):
    app = make_app(dirs)
    async with app.run_test(size=(100, 30)) as pilot:
        await type_into(pilot, "#f-model--depth", "6")
        app.screen.query_one(DiffTable).focus()  # out of the text box: y and Enter would type there
        # a busy app: Ctrl+L, then y and Enter typed before it handles any of them (the dialog shows late)
        for key, char in (("ctrl+l", None), ("y", "y"), ("enter", "\r")):
            app.post_message(events.Key(key, char))
        dialog = await ask_to_reset(pilot)  # (a second Ctrl+L: the app's one is ignored under a dialog)
        await pilot.pause(0.2)
        assert app.screen is dialog and app.session.overrides == {"model.depth": 6}
        labels = [str(b.label) for b in dialog.query(Button)]
        assert labels == ["Drop (y)", "Cancel (n)"] and dialog.focused.id == "no"
        assert str(dialog.query_one(".dialog-keys", Static).content) == "y drop · n, Esc or Enter cancel"
        await pilot.press("enter")  # Cancel has the focus: Enter keeps the overrides
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmScreen) and app.session.overrides == {"model.depth": 6}
        await ask_to_reset(pilot)
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmScreen) and app.session.overrides == {"model.depth": 6}
