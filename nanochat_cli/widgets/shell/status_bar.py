"""The status line above the Footer: launch mode, run status, active screen, machine, W&B.

The app owns one `StatusInfo` (a reactive); every screen's bar watches it, so a change shows
wherever the user is.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.widgets import Static


@dataclass(frozen=True)
class StatusInfo:
    mode: str = "…"          # how a run would launch, from the config: device and process count
    run: str = "idle"        # the training run's state
    screen: str = "config"
    machine: str = "…"       # GPU summary, or "CPU ×N"
    wandb: str = "…"         # key set / not set, and the configured mode
    debug: bool = False

    def render(self) -> Text:
        parts = [("mode ", self.mode), ("run ", self.run), ("", self.screen), ("", self.machine),
                 ("W&B ", self.wandb)]
        text = Text()
        for i, (label, value) in enumerate(parts):
            if i:
                text.append(" │ ", style="dim")
            text.append(label, style="dim")
            text.append(value, style="bold")
        if self.debug:
            text.append(" │ ", style="dim")
            text.append("DEBUG LOG", style="bold reverse")
        return text


class StatusBar(Static):
    def on_mount(self) -> None:
        self.watch(self.app, "status", self._show, init=True)

    def _show(self, info: StatusInfo) -> None:
        self.update(info.render())
