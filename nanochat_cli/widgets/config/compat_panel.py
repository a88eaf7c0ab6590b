"""Compat matrix and guardrails for the current config: what it needs (GPUs, memory), what it trains
(params, tokens), what it costs (time, money), and warnings about this machine."""

from __future__ import annotations

from typing import Any

from rich.table import Table
from rich.text import Text
from textual.widgets import Static


def _count(n: float) -> str:
    for unit, div in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= div:
            return f"{n / div:.2f}{unit}"
    return f"{n:.0f}"


def _hours(h: float) -> str:
    return f"{h * 60:.1f} min" if h < 1 else f"{h:.1f} h"


class CompatPanel(Static):
    def show(self, title: str, compat: Any | None, problem: str | None, guardrails: list[Any], checked: bool,
             colours: dict[str, str]) -> None:
        """`compat` is a CompatInfo (None with `problem` saying why); `checked`: the machine is known."""
        if compat is None:
            self.update(Text(problem or "", style=colours.get("error", "")))
            return
        t = Table.grid(padding=(0, 2))
        t.add_column(style="bold", no_wrap=True)
        t.add_column()
        t.add_row("config", Text(title, style=colours.get("accent", "")))
        t.add_row("runs on", compat.hardware)
        if compat.device == "cuda":
            t.add_row("memory", f"{compat.vram_gb_per_gpu:.1f} GB per GPU (estimate)")
        else:
            t.add_row("memory", f"{compat.ram_gb:.1f} GB RAM in all (estimate)")
        t.add_row("params", _count(compat.params))
        t.add_row("tokens", f"{_count(compat.tokens)} in {compat.steps:,} steps")
        t.add_row("compute", f"{compat.flops:.2e} FLOPs")
        t.add_row("est. time", _hours(compat.est_hours))
        t.add_row("est. cost", f"${compat.est_cost_usd:,.2f}")
        t.add_row("assuming", Text(compat.assumptions, style=colours.get("foreground-muted", "")))
        for g in guardrails:
            colour = colours.get("error" if g.level == "error" else "warning", "")
            t.add_row(Text("✗ error" if g.level == "error" else "! warn", style=f"bold {colour}"),
                      Text(f"{g.message} — {g.remedy}", style=colour))
        if checked and not guardrails:
            t.add_row(Text("✓ ok", style=colours.get("success", "")), "no warnings for this machine")
        elif not checked:
            t.add_row("machine", "checking…")
        self.update(t)
