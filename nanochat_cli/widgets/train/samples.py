"""Samples panel: the latest text the model wrote from the sample prompts, newest last."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import Static

from nanochat_cli.services.text import printable
from nanochat_cli.widgets.train.base import Panel


class SamplesPanel(Panel):
    def compose(self) -> ComposeResult:
        yield Static("", classes="panel-body", markup=False)

    def paint(self) -> None:
        samples = self.store.samples()
        body = self.query_one(".panel-body", Static)
        if not samples:
            body.update(Text("no samples yet (telemetry.sample_every sets how often)", style="dim"))
            return
        shown = samples[-max(1, self.content_region.height // 2):]
        text = Text()
        for i, s in enumerate(shown):
            if i:
                text.append("\n")
            text.append(f"step {s.step} ", style="dim")
            text.append(printable(s.prompt, newlines=False), style="bold")
            text.append(" → ", style="dim")
            text.append(printable(s.text, newlines=False))
        body.update(text)
