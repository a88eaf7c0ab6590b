"""Start-up order (issue 14): `nanochat-cli` paints the shell and the Config tab's frame first, then loads
plugins, prefabs and secrets and fills the tab in (`defer_services=True`, what run_app does)."""

from __future__ import annotations

import sys
import textwrap

import pytest
from plugin_helpers import forget_plugin
from textual.widgets import Input, OptionList

from nanochat_cli.app import NanochatApp
from nanochat_cli.services import paths
from nanochat_cli.services.config.guardrails import MachineInfo
from nanochat_cli.services.registry import REGISTRY
from nanochat_cli.services.secrets import SecretStore

MACHINE = MachineInfo(cpu_count=2, ram_total_bytes=8_000_000_000, ram_free_bytes=6_000_000_000)

PLUGIN = '''
from pydantic import BaseModel, ConfigDict
from nanochat_cli.services.panels import PanelSpec

class Cfg(BaseModel):
    model_config = ConfigDict(extra="forbid")
    level: int = 1

def register(registry):
    registry.register_category("latecat", Cfg)
    registry.register_panel(PanelSpec(id="late_panel", title="Late", kind="stats", metrics=["loss"]))
'''


def deferred_app(tmp_path) -> NanochatApp:
    return NanochatApp(machine=MACHINE, secrets=SecretStore(file_dir=tmp_path / "secrets"), online_checks=False,
                       defer_services=True)


async def filled(pilot) -> None:
    """Wait (bounded) until the Config tab has composed its content after the deferred load."""
    for _ in range(200):
        if pilot.app.services_ready and pilot.app.screen.query("#f-model--depth"):
            return
        await pilot.pause(0.01)
    raise AssertionError("the Config tab never filled in")


@pytest.fixture
def late_plugin():
    pkg = paths.user_plugins_dir() / "late"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(textwrap.dedent(PLUGIN))
    yield
    forget_plugin("late")
    for name in [n for n in sys.modules if n.startswith("nanochat_user_plugins")]:
        del sys.modules[name]


async def test_the_frame_paints_before_plugins_and_prefabs_load_then_fills_in(tmp_path, late_plugin):
    app = deferred_app(tmp_path)
    assert app._services is None and "late" not in REGISTRY.plugins  # building the app loads nothing
    seen_frame = []
    app.call_after_refresh = lambda cb, *a, **k: (seen_frame.append(bool(app.screen.query("#config-loading"))),
                                                  NanochatApp.call_after_refresh(app, cb, *a, **k))[1]
    async with app.run_test(size=(100, 30)) as pilot:
        await filled(pilot)
        assert seen_frame and seen_frame[0]  # the first paint showed the frame
        assert not app.screen.query("#config-loading")
        options = app.screen.query_one("#categories", OptionList)
        assert "latecat" in [options.get_option_at_index(i).id for i in range(options.option_count)]
        assert REGISTRY.panel("late_panel") is not None
        assert app.session.current["latecat.level"] == 1
        assert app.screen.focused is options
        await pilot.press("ctrl+o")  # the tab's own keys work once filled
        assert app.status.mode != "…"


async def test_restore_and_edit_after_a_deferred_load(tmp_path):
    app = deferred_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await filled(pilot)
        app.request_switch_prefab("cpu-small")
        await pilot.pause()
        inp = app.screen.query_one("#f-model--depth", Input)
        inp.focus()
        await pilot.press("ctrl+u", "3")
        await pilot.pause()
        assert app.session.overrides == {"model.depth": 3}
    again = deferred_app(tmp_path)
    async with again.run_test(size=(120, 40)) as pilot:
        await filled(pilot)
        assert again.session.prefab == "cpu-small" and again.session.overrides == {"model.depth": 3}
        assert again.screen.query_one("#f-model--depth", Input).value == "3"


async def test_a_broken_plugin_settings_file_after_the_first_paint_exits_with_code_2(tmp_path):
    paths.plugin_settings_path().parent.mkdir(parents=True, exist_ok=True)
    paths.plugin_settings_path().write_text("disabled: [unclosed\n")
    app = deferred_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        for _ in range(200):
            if app.startup_error:
                break
            await pilot.pause(0.01)
    assert app.return_code == 2
    assert app.startup_error and "plugin" in app.startup_error and "\n" not in app.startup_error
