"""Chart panel (loss, validation bpb, LR/momentum, plugin charts): each metric a line over steps.

Series come from `MetricStore.decimate`, min/max-decimated to the plot's width, so a spike survives and a
million-step run draws as fast as a short one. Non-finite values are not drawn; the NaN threshold says so.
"""

from __future__ import annotations

import math

from textual.app import ComposeResult
from textual.color import Color
from textual.widgets import Static
from textual_plotext import PlotextPlot

from nanochat_cli.widgets.train import fmt
from nanochat_cli.widgets.train.base import Panel

SERIES_COLOURS = ("primary", "accent", "secondary", "success", "warning")
Y_LABELS_WIDTH = 8  # columns plotext spends on y tick labels and the frame
TICK_SPACING = 12  # columns per x tick label


def step_ticks(lo: float, hi: float, n: int) -> list[int]:
    """About `n` round whole-number ticks covering [lo, hi] (steps are integers; plotext's are not)."""
    lo_i, hi_i = math.ceil(lo), math.floor(hi)
    if hi_i <= lo_i:
        return [lo_i]
    raw = (hi_i - lo_i) / max(1, n - 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = max(1, int(next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)))
    return list(range(math.ceil(lo_i / step) * step, hi_i + 1, step))


class ChartPanel(Panel):
    def compose(self) -> ComposeResult:
        yield Static("", classes="panel-empty", markup=False)
        yield PlotextPlot(classes="panel-plot")

    def paint(self) -> None:
        plot = self.query_one(PlotextPlot)
        empty = self.query_one(".panel-empty", Static)
        latest = [(m, self.store.latest(m)) for m in self.spec.metrics]
        values = "  ".join(f"{m} {fmt.num(v)}" for m, v in latest if v is not None)
        self.border_title = f"{self.spec.title} · {values}" if values else self.spec.title
        width = max(4, self.content_region.width - Y_LABELS_WIDTH)
        series = [(m, self.store.decimate(m, width)) for m in self.spec.metrics]
        series = [(m, pts) for m, pts in series if pts]
        if not series or self.content_region.height < 4:
            plot.display = False
            empty.display = True
            step = self.store.run_state().step
            empty.update(f"no {' / '.join(self.spec.metrics)} yet" + (f" (step {step})" if step else "")
                         if not series else "too small to draw: enlarge the terminal or this panel")
            return
        empty.display = False
        plot.display = True
        plt = plot.plt
        plt.clear_data()
        theme = self.app.theme_variables
        for i, (metric, pts) in enumerate(series):
            xs, ys = zip(*pts, strict=True)
            colour = Color.parse(theme.get(SERIES_COLOURS[i % len(SERIES_COLOURS)], "white")).rgb
            plt.plot(xs, ys, marker="braille", color=colour, label=metric if len(self.spec.metrics) > 1 else None)
        lo = min(min(x for x, _ in pts) for _, pts in series)
        hi = max(max(x for x, _ in pts) for _, pts in series)
        ticks = step_ticks(lo, hi, max(2, width // TICK_SPACING))
        plt.xticks(ticks, [fmt.count(t) for t in ticks])
        plot.refresh()
