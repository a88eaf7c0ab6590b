"""Shared by several test modules (moved out of test_chat_screen.py)."""

from __future__ import annotations

from ckpt_screen_helpers import settle
from textual.widgets import Input


async def load(pilot, path: str) -> None:
    await pilot.press("4")  # the Chat tab (the state opens on Checkpoints)
    await pilot.pause()
    box = pilot.app.screen.query_one("#chat-path", Input)
    box.focus()
    box.value = path
    await pilot.press("enter")
    await settle(pilot)


async def send(pilot, text: str, wait: bool = True) -> None:
    box = pilot.app.screen.query_one("#chat-input", Input)
    box.focus()
    box.value = text
    await pilot.press("enter")
    if wait:
        await settle(pilot)


