"""The Puzzles screen, a plugin screen: opened with key 6, the eight with their status, verify/run/peek
into the scrollable pane (the child process replaced by a recorder), the table re-reading statuses."""

from __future__ import annotations

import pytest
from textual.widgets import DataTable, Static
from train_screen_helpers import MACHINE

from nanochat_cli.app import NanochatApp
from nanochat_plugins.puzzles import runner
from puzzles import catalog, status


@pytest.fixture
def calls(monkeypatch):
    """runner.run without a child process: records (number, mode); a verify records a failing status."""
    made = []

    def fake(p, mode, oracle="engine", capture=True):
        made.append((p.number, mode))
        if mode == "verify":
            status.record(p, "failing", "1/6 checks pass")
            return 1, f"FAIL  something in {p.module}\n" * 80
        return 0, f"{mode} output of {p.module}"

    monkeypatch.setattr(runner, "run", fake)
    return made


async def settle(pilot) -> None:
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


def pane(app) -> str:
    return str(app.screen.query_one("#puzzles-output", Static).render())


async def test_key_6_opens_the_puzzles_with_their_status(app):
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot)
        await pilot.press("6")
        await settle(pilot)
        assert app.current_mode == "puzzles"
        table = app.screen.query_one(DataTable)
        assert table.row_count == 8
        assert [str(table.get_row_at(i)[1]) for i in range(8)] == [p.title for p in catalog.PUZZLES]
        assert "not started" in str(table.get_row_at(0)[2])
        assert "python -m puzzles.01_transformer_blueprint --verify" in pane(app)


async def test_verify_peek_and_run_fill_the_pane_and_refresh_the_status(app, calls):
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot)
        await pilot.press("6")
        await settle(pilot)
        await pilot.press("down", "down")  # puzzle 3
        await settle(pilot)
        await pilot.press("p")
        await settle(pilot)
        assert calls == [(3, "peek")] and pane(app) == "peek output of puzzles.03_data_engine"
        await pilot.click("#verify")
        await settle(pilot)
        assert calls[-1] == (3, "verify")
        assert pane(app).startswith("FAIL  something in puzzles.03_data_engine")
        table = app.screen.query_one(DataTable)
        assert "failing" in str(table.get_row_at(2)[2]) and table.cursor_row == 2
        assert app.screen.query_one("#puzzles-pane").max_scroll_y > 0  # 80 lines: the pane scrolls
        await pilot.press("r")
        await settle(pilot)
        assert calls[-1] == (3, "run")


async def test_a_failing_plugin_screen_shows_its_error_instead_of_crashing(app):
    from nanochat_cli.services.registry import REGISTRY

    def broken():
        raise RuntimeError("no widgets today")

    with REGISTRY.owned_by("broken_screen_test"):
        REGISTRY.register_screen("broken", broken, "Broken")
    try:
        app = NanochatApp(machine=MACHINE, online_checks=False, clock=lambda: 0.0,
                          secrets=app.secrets)
        async with app.run_test(size=(100, 30)) as pilot:
            await settle(pilot)
            app.action_show_screen("broken")
            await settle(pilot)
            assert "plugin screen broken: RuntimeError: no widgets today" in str(
                app.screen.query_one("#body", Static).render())
    finally:
        REGISTRY.remove_owned("broken_screen_test")


def test_puzzles_screen_snapshot(snap_compare, app):
    assert snap_compare(app, terminal_size=(120, 36), press=["6"], run_before=settle)
