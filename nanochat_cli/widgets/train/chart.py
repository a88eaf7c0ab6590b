"""Chart panel (loss, validation bpb, LR/momentum, plugin charts): each metric a line over steps.

Series come from `MetricStore.decimate`, min/max-decimated to the plot's width, so a spike survives and a
million-step run draws as fast as a short one. Non-finite values are not drawn; the NaN threshold says so. The
title is the legend (each metric's name in its line's colour, with its latest value), so nothing is drawn over the
lines; until some metric has two points there is no line to draw, and the panel shows the values instead.
Drawing a plotext figure takes 5-30 ms of pure Python, so it runs on a worker thread (one at a time per
chart): the UI thread only gathers the points and shows the finished text, and keys stay responsive.
"""

from __future__ import annotations

import logging
import math
import threading

from rich.text import Text
from textual.app import ComposeResult, RenderResult
from textual.color import Color
from textual.widgets import Static
from textual_plotext import PlotextPlot

from nanochat_cli.widgets.train import fmt
from nanochat_cli.widgets.train.base import Panel

log = logging.getLogger(__name__)
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


class ChartPlot(PlotextPlot):
    """A PlotextPlot whose figure is built off the UI thread; render() shows the last finished build."""

    def __init__(self, classes: str | None = None) -> None:
        super().__init__(classes=classes)
        self.built: Text | None = None
        self.builds = 0
        self._busy = threading.Lock()  # one build at a time: plotext figures are not thread-safe
        self._pending: tuple | None = None  # the newest request that arrived while a build ran
        self._last: tuple | None = None  # what was last asked for, redrawn when the size changes

    def render(self) -> RenderResult:
        return self.built if self.built is not None else Text("")

    def draw(self, series: list[tuple[list[tuple[float, float]], tuple[int, int, int]]], ticks: list[int]) -> None:
        """Build the figure for `series` (points, rgb) at the current size on a worker thread."""
        self._last = (series, ticks)
        width, height = self.size
        if width < 4 or height < 2:
            return  # not laid out yet: on_resize draws it
        request = (series, ticks, width, height, self._get_plotext_theme_name(self.app.theme))
        if not self._busy.acquire(blocking=False):
            self._pending = request  # drawn as soon as the running build ends
            return
        self.run_worker(lambda: self._build(request), thread=True, group="charts", exit_on_error=False)

    def on_resize(self) -> None:
        if self._last is not None:
            self.draw(*self._last)

    def _build(self, request: tuple) -> None:
        try:
            while request is not None:
                series, ticks, width, height, theme = request
                plt = self.plt
                plt.clear_data()
                plt.plotsize(width, height)
                plt._set_size(width, height)  # what PlotextPlot.render does: plotsize alone does not stick
                plt.theme(theme)
                for pts, rgb in series:
                    xs, ys = zip(*pts, strict=True)
                    plt.plot(xs, ys, marker="braille", color=rgb)  # no label: the legend is the panel's title
                plt.xticks(ticks, [fmt.count(t) for t in ticks])
                text = Text.from_ansi(plt.build())
                self.app.call_from_thread(self._show, text)
                request, self._pending = self._pending, None
        except Exception as e:  # a plotting bug must not take the app down: say so in the panel
            log.warning("chart build failed: %s", e, exc_info=True)
            message = Text(f"chart failed: {type(e).__name__}: {e}", style="red")
            try:
                self.app.call_from_thread(self._show, message)
            except RuntimeError:  # the app is closing
                pass
        finally:
            self._busy.release()

    def _show(self, text: Text) -> None:
        self.built = text
        self.builds += 1
        self.refresh()


class ChartPanel(Panel):
    def compose(self) -> ComposeResult:
        yield Static("", classes="panel-empty", markup=False)
        yield ChartPlot(classes="panel-plot")

    def paint(self) -> None:
        plot = self.query_one(ChartPlot)
        empty = self.query_one(".panel-empty", Static)
        theme = self.app.theme_variables
        colours = {m: Color.parse(theme.get(SERIES_COLOURS[i % len(SERIES_COLOURS)], "white"))
                   for i, m in enumerate(self.spec.metrics)}
        self.border_title = self._legend(colours)
        width = max(4, self.content_region.width - Y_LABELS_WIDTH)
        series = [(m, self.store.decimate(m, width)) for m in self.spec.metrics]
        series = [(m, pts) for m, pts in series if pts]
        if not any(len(pts) > 1 for _, pts in series) or self.content_region.height < 4:
            plot.display = False
            empty.display = True
            empty.update(self._no_chart(series))
            return
        empty.display = False
        plot.display = True
        lo = min(min(x for x, _ in pts) for _, pts in series)
        hi = max(max(x for x, _ in pts) for _, pts in series)
        ticks = step_ticks(lo, hi, max(2, width // TICK_SPACING))
        plot.draw([(pts, colours[m].rgb) for m, pts in series], ticks)

    def _legend(self, colours: dict[str, Color]) -> Text:
        """'Title · name value  name value', each name in its line's colour."""
        latest = [(m, v) for m in self.spec.metrics if (v := self.store.latest(m)) is not None]
        title = Text(self.spec.title)
        for i, (m, value) in enumerate(latest):
            title.append(" · " if i == 0 else "  ")
            title.append(m, style=colours[m].hex)
            title.append(f" {fmt.num(value)}")
        return title

    def _no_chart(self, series: list[tuple[str, list[tuple[float, float]]]]) -> Text:
        """What stands in for the chart: the lone points' values, or why nothing is drawn."""
        if not series:
            step = self.store.run_state().step
            return Text(f"no {' / '.join(self.spec.metrics)} yet" + (f" (step {step})" if step else ""))
        if any(len(pts) > 1 for _, pts in series):
            return Text("too small to draw: enlarge the terminal or this panel")
        text = Text()
        for m, ((x, y),) in series:
            text.append(f"{m} {fmt.num(y, 5)} at step {x:.0f}\n", style="bold")
        text.append("one point so far: the line starts with the next", style="dim")
        return text
