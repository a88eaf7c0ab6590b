"""Answering a ConfirmScreen the way a person does: after it is on screen (keys typed earlier are dropped)."""

from __future__ import annotations

import time
from typing import Any

from nanochat_cli.screens.confirm import ConfirmScreen


async def shown_dialog(pilot: Any, timeout: float = 60.0) -> ConfirmScreen:
    """Wait until a ConfirmScreen is on top and painted; return it."""
    deadline = time.monotonic() + timeout
    while True:
        screen = pilot.app.screen
        if isinstance(screen, ConfirmScreen) and screen.shown_at is not None:
            return screen
        assert time.monotonic() < deadline, f"no confirmation dialog showed within {timeout:.0f} s"
        await pilot.pause(0.05)


async def answer(pilot: Any, key: str) -> ConfirmScreen:
    """Wait for the dialog, then press `key` (y, n, escape, enter)."""
    dialog = await shown_dialog(pilot)
    await pilot.press(key)
    await pilot.pause()
    return dialog
