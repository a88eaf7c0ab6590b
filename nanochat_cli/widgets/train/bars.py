"""Bars panel (step-time breakdown): where each step's time goes, averaged over the last few steps."""

from __future__ import annotations

import numpy as np
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import Static

from nanochat_cli.widgets.train.base import Panel
from nanochat_cli.widgets.train.stats import format_metric

WINDOW = 20  # steps averaged, so one slow step does not make the bars jump
LABELS = {"t_data": "data", "t_fwd_bwd": "fwd+bwd", "t_optim": "optimizer"}


class BarsPanel(Panel):
    def compose(self) -> ComposeResult:
        yield Static("", classes="panel-body", markup=False)

    def paint(self) -> None:
        body = self.query_one(".panel-body", Static)
        means: dict[str, float] = {}
        for m in self.spec.metrics:
            _, ys = self.store.window(m, last=WINDOW)
            ys = ys[np.isfinite(ys)]
            if len(ys):
                means[m] = float(ys.mean())
        if not means:
            body.update(Text(f"no {' / '.join(self.spec.metrics)} yet", style="dim"))
            return
        total = sum(max(v, 0.0) for v in means.values()) or 1.0
        bar_width = max(4, self.content_region.width - 30)
        colour = self.app.theme_variables.get("primary", "cyan")
        table = Table.grid(padding=(0, 1))
        table.add_column(style="dim", no_wrap=True, width=9)
        table.add_column(no_wrap=True, width=bar_width)
        table.add_column(no_wrap=True, justify="right", width=9)
        table.add_column(no_wrap=True, justify="right", width=4)
        for m, v in means.items():
            share = max(v, 0.0) / total
            filled = round(share * bar_width)
            bar = Text("█" * filled, style=colour) + Text("░" * (bar_width - filled), style="dim")
            table.add_row(LABELS.get(m, m.removeprefix("t_")), bar, format_metric(m, v), f"{100 * share:.0f}%")
        body.update(table)
