"""The frame every tab shares: nav bar on top, the screen's body, status bar and Footer at the bottom."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer

from nanochat_cli.widgets.shell.nav_bar import NavBar
from nanochat_cli.widgets.shell.status_bar import StatusBar

if TYPE_CHECKING:
    from nanochat_cli.app import NanochatApp


def screen_commands() -> type:
    """The palette provider listing a screen's own key bindings (a screen names it in its COMMANDS)."""
    from nanochat_cli.commands import ScreenCommands  # textual.command loads only when the palette opens

    return ScreenCommands


class AppScreen(Screen):
    SCREEN_NAME: ClassVar[str] = ""

    @property
    def napp(self) -> NanochatApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield NavBar(self.SCREEN_NAME)
        yield from self.compose_body()
        yield StatusBar()
        yield Footer(compact=True)

    def compose_body(self) -> ComposeResult:
        raise NotImplementedError
