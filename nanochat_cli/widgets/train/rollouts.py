"""Sampled answers panel (RL): the newest answers the policy sampled, each with the reward its task gave it."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import Static

from nanochat_cli.services.text import printable
from nanochat_cli.widgets.train.base import Panel


class RolloutsPanel(Panel):
    def compose(self) -> ComposeResult:
        yield Static("", classes="panel-body", markup=False)

    def paint(self) -> None:
        answers = self.store.answers()
        body = self.query_one(".panel-body", Static)
        if not answers:
            body.update(Text("no rollouts yet (an RL run sends a few sampled answers each step)", style="dim"))
            return
        theme = self.app.theme_variables
        shown = answers[-max(1, self.content_region.height):]
        text = Text(no_wrap=True, overflow="ellipsis")
        for i, a in enumerate(shown):
            if i:
                text.append("\n")
            colour = theme.get("success" if a.reward >= 0.5 else "error", "")
            text.append(f"{a.reward:4.2f} ", style=f"bold {colour}")
            text.append(f"step {a.step} ", style="dim")
            text.append(printable(a.prompt, newlines=False), style="bold")
            text.append(" → ", style="dim")
            text.append(printable(a.response, newlines=False))
        body.update(text)
