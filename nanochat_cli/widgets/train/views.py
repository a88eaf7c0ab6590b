"""The Train screen's views: one tab per screen of the layout (a grid of panels), then the Runs tab.

Switching tabs shows the new tab at once with what its panels last drew and repaints them right after that
frame, so a key press is answered by the next frame whatever the panels cost. No tab takes the focus (a focus
change rebuilds the footer and re-lays out the screen): the screen passes the arrows and Enter to the Runs table
while its tab shows.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import TabbedContent, TabPane

from nanochat_cli.services.panels import Layout
from nanochat_cli.services.runs import RunInfo
from nanochat_cli.services.runs.live import LiveRun
from nanochat_cli.widgets.train.base import Panel
from nanochat_cli.widgets.train.dashboard import Dashboard
from nanochat_cli.widgets.train.runs_table import RunsTable

RUNS_VIEW = "train-runs"  # the Runs tab's pane id; a dashboard's is "view-<layout screen id>"


def pane_id(screen_id: str) -> str:
    return f"view-{screen_id}"


class RunViews(Vertical):
    def __init__(self, layout: Layout, live: LiveRun, config: dict[str, Any], initial: str | None,
                 load_runs: Callable[[], list[RunInfo]]) -> None:
        """`initial`: the layout screen to show first; `load_runs` lists the runs (called on a worker thread)."""
        super().__init__(classes="run-views")
        self.preset, self.live, self.config, self.load_runs = layout, live, config, load_runs
        self.initial = pane_id(initial) if initial else None
        self._switching = False  # a dashboard tab was just shown: its panels paint after its first frame

    def compose(self) -> ComposeResult:
        ids = [pane_id(s.id) for s in self.preset.screens] + [RUNS_VIEW]
        with TabbedContent(initial=self.initial if self.initial in ids else ids[0], id="train-tabs"):
            for s in self.preset.screens:
                with TabPane(s.title, id=pane_id(s.id)):
                    yield Dashboard(self.preset, s.id, self.live, self.config, id=f"dash-{s.id}")
            with TabPane("Runs", id=RUNS_VIEW):
                yield RunsTable(self.load_runs, self.live.name)

    @property
    def tabs(self) -> TabbedContent:
        return self.query_one("#train-tabs", TabbedContent)

    @property
    def runs_table(self) -> RunsTable:
        return self.query_one(RunsTable)

    @property
    def layout_view(self) -> str | None:
        """Id of the layout screen whose tab is showing; None on the Runs tab."""
        active = self.tabs.active
        return active.removeprefix("view-") if active.startswith("view-") else None

    def next_view(self) -> None:
        """The next tab, the Runs tab included, round to the first."""
        ids = [p.id for p in self.tabs.query(TabPane)]
        at = ids.index(self.tabs.active) if self.tabs.active in ids else -1
        self.tabs.active = ids[(at + 1) % len(ids)]

    def show_runs(self) -> None:
        self.tabs.active = RUNS_VIEW

    @property
    def runs_showing(self) -> bool:
        return self.tabs.active == RUNS_VIEW

    def panels_in_view(self) -> list[Panel]:
        view = self.layout_view
        dash = self.query(f"#dash-{view}") if view else None
        return list(dash.first().query(Panel).results(Panel)) if dash else []

    def paint(self, force: bool = False) -> None:
        """Ask the panels to repaint (each skips itself when hidden or unchanged)."""
        if self._switching:
            return
        for panel in self.query(Panel).results(Panel):
            panel.request_paint(force)

    def show_selection(self, panel: str | None) -> None:
        """Mark `panel` of the tab showing as the one layout edits act on."""
        view = self.layout_view
        for dash in self.query(Dashboard).results(Dashboard):
            for widget in dash.query(".panel"):
                widget.set_class(dash.screen_id == view and widget.id == f"panel-{panel}", "-selected")

    @on(TabbedContent.TabActivated, "#train-tabs")
    def _tab_shown(self, event: TabbedContent.TabActivated) -> None:
        table = self.runs_table
        if event.pane.id == RUNS_VIEW:
            table.reload()
            return
        if table.has_focus:  # it was clicked: keys go to the screen again, not to the hidden table
            self.screen.set_focus(None)
        self._switching = True
        self.call_after_refresh(self._switched)

    def _switched(self) -> None:
        self._switching = False
        self.paint(force=True)
