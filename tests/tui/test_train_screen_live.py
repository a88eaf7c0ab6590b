"""The Train screen against the real engine: a tiny 2-process CPU run launched from the TUI (steps and loss
arrive, save now → checkpoint, patch → ack, stop → final status, re-attach after closing the app), and a
run the engine refuses (the crash modal with its one-line error)."""

from __future__ import annotations

import math

import pytest
from engine_assets import build_assets, tiny_overrides
from train_screen_helpers import make_app, screen_text, shows, toasts, wait_for

from nanochat_cli.screens.confirm import ConfirmScreen
from nanochat_cli.screens.run_modals import CrashScreen, PatchScreen
from nanochat_cli.services.state import UIState, save_state


@pytest.fixture(scope="module")
def assets(tmp_path_factory) -> dict[str, str]:
    return build_assets(tmp_path_factory.mktemp("assets"))


def start_state(tmp_path, overrides: dict) -> None:
    """What a person would have left on the Config tab: the default prefab with their overrides."""
    save_state(UIState(screen="config", prefab="cpu-tiny", overrides=overrides), tmp_path / "config" / "state.json")


@pytest.mark.slow  # a real multi-process run: 10-30 s on a busy 2-core machine
async def test_launch_watch_steer_reattach_and_stop_a_real_run(tmp_path, assets):
    start_state(tmp_path, tiny_overrides(assets, "tui", nproc=2))
    first = make_app(tmp_path)
    try:
        await _launch_then_reattach(tmp_path, first)
    finally:
        if first.orchestrator.poll("tui") is None:  # a failed assert: don't leave the job running
            first.orchestrator.stop("tui", graceful_timeout=5, signal_timeout=5)
        first.orchestrator.wait("tui", timeout=30)  # reap our child


async def _launch_then_reattach(tmp_path, first) -> None:
    async with first.run_test(size=(120, 40)) as pilot:
        assert first.session.problems() == []
        await pilot.press("t")  # on the Config tab: launch the current config
        await wait_for(pilot, "the Train tab", lambda: first.current_mode == "train")
        screen = first.screen
        await wait_for(pilot, "the run to attach", lambda: screen.live is not None and screen.live.name == "tui")
        live = screen.live
        assert "Started run tui" in toasts(first)
        await wait_for(pilot, "three steps", lambda: live.store.run_state().step >= 3, timeout=60)
        run = live.store.run_state()
        assert run.world_size == 2 and run.total == 100_000
        loss = live.store.latest("loss")
        assert loss is not None and math.isfinite(loss) and loss > 0
        await wait_for(pilot, "the loss chart to show a value", lambda: "Loss · loss" in screen_text(first))
        await wait_for(pilot, "running status", lambda: screen.liveness.status == "running")
        await wait_for(pilot, "the progress panel", lambda: shows(first, "step ", " / 100,000"))
        steps_before = run.step
    # the app is closed; the job keeps training (its own session); a new app finds it again
    assert first.orchestrator.poll("tui") is None

    again = make_app(tmp_path)
    async with again.run_test(size=(120, 40)) as pilot:
        await pilot.press("2")
        screen = again.screen
        await wait_for(pilot, "re-attach", lambda: screen.live is not None and screen.live.name == "tui")
        live = screen.live
        await wait_for(pilot, "the replayed history and new steps",
                       lambda: live.store.count("loss") > steps_before, timeout=30)
        await wait_for(pilot, "running status", lambda: screen.liveness and screen.liveness.status == "running")

        await pilot.press("s")
        await wait_for(pilot, "the save ack toast", lambda: any("save_now accepted" in t for t in toasts(again)))
        await wait_for(pilot, "the checkpoint event in the events panel",
                       lambda: "checkpoint (request)" in screen_text(again), timeout=30)

        await pilot.press("p")
        await wait_for(pilot, "the patch form", lambda: isinstance(again.screen, PatchScreen))
        form = again.screen
        form.query_one("#hot-lr_scale").value = "0.5"
        form.query_one("#hot-lr_scale").focus()
        await pilot.press("enter")
        await wait_for(pilot, "the patch ack toast",
                       lambda: any("patch accepted: applied lr_scale: 1.0 -> 0.5" in t for t in toasts(again)))
        assert live.hot_values()["lr_scale"] == 0.5

        await pilot.press("x")
        await wait_for(pilot, "the stop confirmation", lambda: isinstance(again.screen, ConfirmScreen))
        await pilot.press("y")
        await wait_for(pilot, "the final status", lambda: live.final is not None, timeout=90)
        assert live.final.status == "stopped"
        await wait_for(pilot, "the stopped header", lambda: "tui  stopped" in screen_text(again))
        await wait_for(pilot, "the stop toast", lambda: any(t.startswith("Run tui stopped") for t in toasts(again)))
        assert not isinstance(again.screen, CrashScreen)


@pytest.mark.slow  # a real multi-process run: 10-30 s on a busy 2-core machine
async def test_engine_failure_opens_the_crash_modal(tmp_path, assets):
    overrides = tiny_overrides(assets, "broken", nproc=1)
    overrides["data.data_dir"] = str(tmp_path / "no-such-data")  # valid config, but the engine finds no data
    start_state(tmp_path, overrides)
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("t")
        await wait_for(pilot, "the crash modal", lambda: isinstance(app.screen, CrashScreen), timeout=60)
        modal = app.screen
        await pilot.pause()
        assert modal.status == "failed" and modal.exit_code == 1
        assert str(tmp_path / "no-such-data") in modal.error and "\n" not in modal.error
        await wait_for(pilot, "the modal's text", lambda: shows(app, "Run broken failed", "exit code 1",
                                                                "data.data_dir"))  # the last one is the hint
        await pilot.press("escape")
        await pilot.pause()
        assert app.current_mode == "train"  # the app is still alive
        await wait_for(pilot, "the failed header", lambda: shows(app, "broken  failed"))
        await pilot.press("e")  # the details come back on demand
        await pilot.pause()
        assert isinstance(app.screen, CrashScreen)


async def test_invalid_config_is_not_launched(tmp_path, assets):
    overrides = tiny_overrides(assets, "odd", nproc=2)
    overrides["training.total_batch_size"] = 300  # not a multiple of 4 × 64 × 2
    start_state(tmp_path, overrides)
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("t")
        await pilot.pause()
        assert app.current_mode == "config"
        assert any("before launching" in t and "total_batch_size" in t for t in toasts(app))
        assert not (tmp_path / "base" / "runs").exists()
