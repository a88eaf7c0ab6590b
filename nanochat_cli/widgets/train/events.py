"""Events panel: evals, checkpoints, control acks, warnings and errors from the run, newest at the bottom."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import Static

from nanochat_cli.widgets.train.base import Panel

LEVEL_COLOUR = {"warn": "warning", "error": "error"}


class EventsPanel(Panel):
    def compose(self) -> ComposeResult:
        yield Static("", classes="panel-body", markup=False)

    def paint(self) -> None:
        body = self.query_one(".panel-body", Static)
        entries = self.store.log(last=max(1, self.content_region.height))
        if not entries:
            body.update(Text("no events yet", style="dim"))
            return
        theme = self.app.theme_variables
        text = Text(no_wrap=True, overflow="ellipsis")
        for i, e in enumerate(entries):
            if i:
                text.append("\n")
            text.append(f"{e.step:>6} " if e.step is not None else "       ", style="dim")
            colour = LEVEL_COLOUR.get(e.level)
            text.append(e.message, style=theme.get(colour, "") if colour else "")  # printable (describe)
        body.update(text)
