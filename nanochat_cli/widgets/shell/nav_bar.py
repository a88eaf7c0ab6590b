"""The one-line screen switcher at the top of every screen: `1 Config  2 Train …`, clickable."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.events import Click
from textual.widgets import Static

from nanochat_cli.tabs import SCREENS


class NavItem(Static):
    def __init__(self, name: str, label: str, key: int, active: bool) -> None:
        super().__init__(f"{key} {label}", id=f"nav-{name}", classes="-active" if active else "")
        self.screen_name = name

    def on_click(self, event: Click) -> None:
        event.stop()
        self.app.action_show_screen(self.screen_name)


class NavBar(Horizontal):
    def __init__(self, active: str) -> None:
        super().__init__()
        self.active = active

    def compose(self) -> ComposeResult:
        yield Static("nanochat", id="brand")
        for i, (name, label) in enumerate(SCREENS.items(), start=1):
            yield NavItem(name, label, i, name == self.active)
