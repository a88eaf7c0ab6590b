"""Progress panel: step/total as a bar, tokens seen, throughput, elapsed and ETA."""

from __future__ import annotations

import time

from rich.console import Group
from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import Static

from nanochat_cli.services.text import printable
from nanochat_cli.widgets.train import fmt
from nanochat_cli.widgets.train.base import Panel


class ProgressPanel(Panel):
    def compose(self) -> ComposeResult:
        yield Static("", classes="panel-body", markup=False)

    def paint(self) -> None:
        run = self.store.run_state()
        body = self.query_one(".panel-body", Static)
        if run.status == "waiting":
            body.update(Text("waiting for the run to start…", style="dim"))
            return
        total = max(run.total, 1)
        width = max(10, self.content_region.width)
        head = Text.assemble(("step ", "dim"), (f"{run.step:,}", "bold"), (f" / {run.total:,} ", "dim"),
                             (f"{100 * run.step / total:5.1f}%", "bold"))
        filled = round(width * min(run.step, total) / total)
        colour = self.app.theme_variables.get("success" if run.step >= total else "primary", "")
        bar = Text("━" * filled, style=colour) + Text("─" * (width - filled), style="dim")
        tok_s = self.store.latest("tokens_per_sec")
        elapsed = run.live_elapsed(time.time())
        eta = "done" if run.status != "running" else fmt.duration(run.eta) if run.eta is not None else "estimating…"
        stats = Text.assemble(("tokens ", "dim"), fmt.count(run.tokens_seen), ("  tok/s ", "dim"),
                              fmt.count(tok_s), ("  elapsed ", "dim"), fmt.duration(elapsed),
                              ("  ETA ", "dim"), eta)
        where = Text.assemble(("run ", "dim"), printable(run.run or self.live.name, newlines=False), ("  ", ""),
                              f"{run.world_size}× {run.device} {run.dtype}".strip() if run.world_size else "",
                              ("  params ", "dim"), fmt.count(run.num_params))
        body.update(Group(head, bar, stats, where))
