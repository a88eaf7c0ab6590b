"""The MegaContext panels in the Train screen, fed by a recorded MC run's telemetry (tests/fixtures), and the
app with the plugin switched off: no MC category, layout or extension; vanilla runs and checkpoint lists work."""

from __future__ import annotations

import sys
from pathlib import Path

from plugin_helpers import forget_plugin
from train_screen_helpers import make_app, shows, wait_for, write_run

from engine.telemetry import parse_event
from nanochat_cli.screens.train import TrainScreen
from nanochat_cli.services.registry import REGISTRY

FIXTURE = Path(__file__).parent.parent / "fixtures" / "megacontext_telemetry.jsonl"


def recorded_events() -> list:
    return [parse_event(line) for line in FIXTURE.read_text().splitlines()]


async def test_lod_residency_and_allocator_panels_show_recorded_telemetry(tmp_path):
    events = recorded_events()
    last = [e for e in events if e.event == "plugin"][-1].data
    write_run(tmp_path / "base", "mc", events)
    app = make_app(tmp_path)
    async with app.run_test(size=(140, 44)) as pilot:
        await pilot.press("2")
        screen = app.screen
        assert isinstance(screen, TrainScreen)
        await wait_for(pilot, "attach mc", lambda: screen.live is not None and screen.live.name == "mc")
        await pilot.press("o")  # the layout picker offers the plugin's screen preset
        names = [cid for cid, _ in app.screen.choices]
        assert "megacontext" in names
        await pilot.press(*["down"] * names.index("megacontext"), "enter")
        await wait_for(pilot, "the megacontext layout", lambda: screen.editor.layout.name == "megacontext")
        total = last["resident"] + last["swapped"]
        await wait_for(pilot, "the three MC panels", lambda: shows(
            app, "MegaContext LOD", last["lod"], "█ raw tokens", "Residency",
            f"resident {last['resident']} / {total} blocks", "Allocator", "score"))


async def test_app_without_the_plugin_has_no_mc_and_lists_checkpoints(tmp_path):
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "plugins.yaml").write_text("disabled: [megacontext]\n")
    forget_plugin("megacontext")  # as if this process had never loaded it
    try:
        app = make_app(tmp_path)
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.pause()
            assert REGISTRY.get("megacontext") is None and not REGISTRY.engine_extensions()
            assert REGISTRY.layout("megacontext") is None and "nanochat_plugins.megacontext" not in sys.modules
            await pilot.press("3")  # the Checkpoints screen opens and lists (none here) without the MC column
            await pilot.pause()
            assert not shows(app, " MC ")
    finally:
        forget_plugin("megacontext")  # the next test's app loads it again
