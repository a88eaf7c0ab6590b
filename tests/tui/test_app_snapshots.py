"""SVG snapshots of every screen (pytest-textual-snapshot). Deterministic by construction: a fixed machine,
fixed labels for the tmp config/base dirs, a frozen log clock in UTC, no network, workers awaited.

Update the baselines after an intended UI change: pytest tests/tui/test_app_snapshots.py --snapshot-update
"""

from __future__ import annotations

import pytest

# the `app` fixture (fixed machine, labels, clock, UTC) is in tests/tui/conftest.py


async def settle(pilot) -> None:
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


def test_config_80x24(snap_compare, app):
    assert snap_compare(app, terminal_size=(80, 24), run_before=settle)


def test_config_120x40(snap_compare, app):
    assert snap_compare(app, terminal_size=(120, 40), run_before=settle)


def test_config_invalid_value_and_diff(snap_compare, app):
    async def edit(pilot) -> None:
        await settle(pilot)
        for field, text in (("#f-model--depth", "6"), ("#f-model--aspect_ratio", "0")):
            pilot.app.screen.query_one(field).focus()
            await pilot.press("ctrl+u", *text)
        pilot.app.screen.query_one("#categories").focus()  # no blinking cursor in the picture
        await pilot.pause()

    assert snap_compare(app, terminal_size=(120, 40), run_before=edit)


@pytest.mark.parametrize("key", ["2", "3", "4", "5"], ids=["train", "checkpoints", "chat", "logs"])
def test_other_screens(snap_compare, app, key):
    async def switch(pilot) -> None:
        await settle(pilot)
        await pilot.press(key)
        await settle(pilot)  # the tab finishes its own loading before the picture, even under load

    assert snap_compare(app, terminal_size=(80, 24), run_before=switch)


def test_save_as_modal(snap_compare, app):
    async def open_modal(pilot) -> None:
        await settle(pilot)
        await pilot.press("ctrl+s")
        await pilot.pause()
        pilot.app.screen.query_one("#save-name").cursor_blink = False
        await pilot.press(*"my-run")

    assert snap_compare(app, terminal_size=(80, 24), run_before=open_modal)
