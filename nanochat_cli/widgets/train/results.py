"""Eval results panel: each task's score from an eval stage (CORE-style base eval, chat eval), as a table."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import Static

from nanochat_cli.widgets.train.base import Panel


def results_table(results: list, caption: bool = True) -> Table:
    """suite · task · metric · value · baseline · centred · n, then each suite's mean (CORE: of the centred)."""
    table = Table(box=None, padding=(0, 1), show_edge=False, header_style="bold")
    for name, justify in (("suite", "left"), ("task", "left"), ("metric", "left"), ("value", "right"),
                          ("baseline", "right"), ("centred", "right"), ("n", "right")):
        table.add_column(name, justify=justify, no_wrap=True)
    for r in results:
        table.add_row(r.suite, r.task, r.metric, f"{r.value:.3f}",
                      "-" if r.baseline is None else f"{r.baseline:.3f}",
                      "-" if r.centered is None else f"{r.centered:+.3f}", str(r.n))
    if caption:
        parts = []
        for suite in dict.fromkeys(r.suite for r in results):
            rows = [r for r in results if r.suite == suite]
            centred = [r.centered for r in rows if r.centered is not None]
            if suite == "core" and centred:
                parts.append(f"CORE {sum(centred) / len(centred):.4f} (mean centred)")
            else:
                parts.append(f"{suite} {sum(r.value for r in rows) / len(rows):.4f} (mean)")
        table.caption = " · ".join(parts)
    return table


class ResultsPanel(Panel):
    def compose(self) -> ComposeResult:
        yield Static("", classes="panel-body", markup=False)

    def paint(self) -> None:
        results = self.store.results()
        body = self.query_one(".panel-body", Static)
        if not results:
            body.update(Text("no eval results yet (an eval stage sends one per task)", style="dim"))
            return
        body.update(results_table(results))
