"""A panel a plugin draws: its render function turns the plugin's telemetry events into text."""

from __future__ import annotations

import logging

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import Static

from nanochat_cli.services.panels import PluginView
from nanochat_cli.services.text import printable
from nanochat_cli.widgets.train.base import Panel

log = logging.getLogger(__name__)


class PluginPanel(Panel):
    def compose(self) -> ComposeResult:
        yield Static("", classes="panel-body", markup=False)

    def paint(self) -> None:
        body = self.query_one(".panel-body", Static)
        region = self.content_region
        view = PluginView(self.store, self.spec.plugin, max(10, region.width), max(1, region.height))
        try:
            out = self.spec.render(view)
        except Exception as e:  # a plugin's bug shows in its own panel, never takes the screen down
            log.exception("panel %s: render failed", self.spec.id)
            out = Text(f"{self.spec.plugin}: panel failed: {printable(str(e), newlines=False)}", style="red")
        body.update(out if out is not None else "")
