"""The base of a plugin's screen (`plugin_api.PluginScreen`), and what shows when a plugin's screen fails.

A plugin subclasses PluginScreen and writes `compose_body`; the app's frame (nav bar, status bar, footer)
comes with it. The app builds plugin screens through `make_plugin_screen`, so a factory that raises gives
an error screen and a toast instead of taking the app down.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual.app import ComposeResult
from textual.widgets import Static

from engine.shared import one_line
from nanochat_cli.screens.base import AppScreen

if TYPE_CHECKING:
    from textual.screen import Screen


class PluginScreen(AppScreen):
    """A plugin's screen in the app's frame; the app sets SCREEN_NAME to the registered name."""


class PluginErrorScreen(PluginScreen):
    def __init__(self, message: str) -> None:
        super().__init__()
        self.message = message

    def compose_body(self) -> ComposeResult:
        yield Static(self.message, id="body", markup=False)


def make_plugin_screen(entry: Any, report: Any) -> Screen:
    """`entry.factory()`, or an error screen naming the plugin's problem (`report(message)` toasts it)."""
    try:
        screen = entry.factory()
    except Exception as e:  # a plugin's bug: tell the user, keep the app
        message = f"plugin screen {entry.name}: {one_line(e)}"
        report(message)
        screen = PluginErrorScreen(message)
    screen.SCREEN_NAME = entry.name
    return screen
