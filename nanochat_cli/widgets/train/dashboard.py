"""One screen of a layout as a grid of panel widgets.

Each placement spans `width` columns and `height` rows, in reading order, like Textual's grid places
cells. Textual's grid does not wrap a cell that is wider than what is left of a row, so `plan` walks the
grid the same way and puts an empty spacer into such gaps; it also sizes each row: rows holding only a
progress panel get the few lines it needs, the rest share the height.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from textual.app import ComposeResult
from textual.containers import Container
from textual.widget import Widget

from nanochat_cli.errors import USER_ERRORS
from nanochat_cli.services.panels import Layout
from nanochat_cli.services.registry import REGISTRY
from nanochat_cli.services.runs.live import LiveRun
from nanochat_cli.widgets.train.bars import BarsPanel
from nanochat_cli.widgets.train.base import MessagePanel, Panel
from nanochat_cli.widgets.train.chart import ChartPanel
from nanochat_cli.widgets.train.events import EventsPanel
from nanochat_cli.widgets.train.plugin import PluginPanel
from nanochat_cli.widgets.train.progress import ProgressPanel
from nanochat_cli.widgets.train.results import ResultsPanel
from nanochat_cli.widgets.train.rollouts import RolloutsPanel
from nanochat_cli.widgets.train.samples import SamplesPanel
from nanochat_cli.widgets.train.stats import StatsPanel
from nanochat_cli.widgets.train.system import SystemPanel

PANEL_WIDGETS: dict[str, type[Panel]] = {
    "progress": ProgressPanel, "chart": ChartPanel, "stats": StatsPanel, "bars": BarsPanel,
    "samples": SamplesPanel, "log": EventsPanel, "system": SystemPanel, "rollouts": RolloutsPanel,
    "results": ResultsPanel, "plugin": PluginPanel,
}
FIXED_ROWS = {"progress": 6}  # kind -> lines a one-row panel of it needs (border included)


@dataclass(frozen=True)
class Cell:
    panel: str | None  # None: a spacer filling a gap at the end of a row
    column: int
    row: int
    width: int
    height: int


def plan(columns: int, placements: list[tuple[str, int, int]]) -> list[Cell]:
    """(panel, width, height) in order -> cells with positions, spacers included, as Textual's grid fills them."""
    taken: set[tuple[int, int]] = set()
    cells: list[Cell] = []
    col = row = 0

    def advance() -> None:
        nonlocal col, row
        col += 1
        if col == columns:
            col, row = 0, row + 1

    for panel, width, height in placements:
        width = min(width, columns)
        while True:
            cover = {(c, r) for c in range(col, col + width) for r in range(row, row + height)}
            if col + width <= columns and taken.isdisjoint(cover):
                break
            if col + width > columns and (col, row) not in taken:
                cells.append(Cell(None, col, row, 1, 1))  # keep Textual's cursor in step with ours
                taken.add((col, row))
            advance()
        cells.append(Cell(panel, col, row, width, height))
        taken |= cover
        advance()
    return cells


def row_sizes(cells: list[Cell], kinds: dict[str, str]) -> list[str]:
    """CSS grid-rows: a fixed height for rows where every panel is a one-row panel of a FIXED_ROWS kind."""
    n_rows = max((c.row + c.height for c in cells), default=1)
    fixed: list[int | None] = [None] * n_rows
    flexible = [False] * n_rows
    for c in cells:
        if c.panel is None:
            continue
        need = FIXED_ROWS.get(kinds.get(c.panel, ""))
        for r in range(c.row, c.row + c.height):
            if need is None or c.height > 1:
                flexible[r] = True
            else:
                fixed[r] = max(fixed[r] or 0, need)
    return ["1fr" if flexible[r] or fixed[r] is None else str(fixed[r]) for r in range(n_rows)]


class Dashboard(Container):
    """The panels of screen `screen_id` of `layout`, reading from `live`."""

    def __init__(self, layout: Layout, screen_id: str, live: LiveRun, config: dict[str, Any] | None = None,
                 id: str | None = None) -> None:
        super().__init__(id=id, classes="dashboard")
        self.preset, self.screen_id, self.live, self.config = layout, screen_id, live, config
        s = layout.screen(screen_id)
        self.cells = plan(s.columns, [(p.panel, p.width, p.height) for p in s.panels])
        kinds = {spec.id: spec.kind for spec in REGISTRY.panels()}
        self.styles.grid_size_columns = s.columns
        self.styles.grid_rows = " ".join(row_sizes(self.cells, kinds))

    def compose(self) -> ComposeResult:
        for cell in self.cells:
            widget = self._widget(cell.panel) if cell.panel else Widget(classes="panel-spacer")
            widget.styles.column_span = cell.width
            widget.styles.row_span = cell.height
            yield widget

    def _widget(self, panel: str) -> Widget:
        try:
            spec = self.preset.resolved(self.screen_id, panel, REGISTRY)
        except USER_ERRORS as e:
            return MessagePanel(panel, panel, str(e))
        cls = PANEL_WIDGETS.get(spec.kind)
        if cls is None:
            return MessagePanel(panel, spec.title, f"panel kind {spec.kind!r} has no widget: use one of "
                                                   f"{', '.join(PANEL_WIDGETS)}")
        return cls(spec, self.live, self.config)

    def panels(self) -> list[Panel]:
        return list(self.query(Panel).results(Panel))
