"""Stats panel: the latest value of each of the panel's metrics, formatted by what it measures."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import Static

from nanochat_cli.widgets.train import fmt
from nanochat_cli.widgets.train.base import Panel


def format_metric(name: str, value: float | None) -> str:
    """A metric's value in its unit: tokens/s as a count, MFU as a percent, times in ms, memory in bytes."""
    if value is None:
        return "-"
    if name == "tokens_per_sec":
        return f"{fmt.count(value)} tok/s"
    if name in ("mfu", "tool_call_rate"):
        return f"{100 * value:.1f}%"
    if name == "dt" or name.startswith("t_"):
        return fmt.ms(value)
    if name.endswith("bytes") or name.endswith("mem_used") or name.endswith("mem_total") or name.endswith("ram_used"):
        return fmt.nbytes(value)
    return fmt.num(value)


class StatsPanel(Panel):
    def compose(self) -> ComposeResult:
        yield Static("", classes="panel-body", markup=False)

    def paint(self) -> None:
        table = Table.grid(padding=(0, 2))
        table.add_column(style="dim", no_wrap=True)
        table.add_column(no_wrap=True)
        for m in self.spec.metrics:
            table.add_row(m, format_metric(m, self.store.latest(m)))
        body = self.query_one(".panel-body", Static)
        body.update(table if self.spec.metrics else Text("this panel names no metrics", style="dim"))
