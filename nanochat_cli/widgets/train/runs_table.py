"""The Runs view's table: past and running runs, the attached one marked; Enter attaches the row's run.

Rows come from `load()` (RunOrchestrator.list_runs: a replay of each run's files), read on a worker thread when the
Runs tab is shown, and again every RELOAD_S while it stays shown if another run is still going; the attached run's
row follows its live store (`follow`), so it agrees with the status bar without reading any file.
"""

from __future__ import annotations

from collections.abc import Callable

from rich.text import Text
from textual import work
from textual.message import Message
from textual.widgets import DataTable

from nanochat_cli.services.ingest.store import RunState
from nanochat_cli.services.runs import RunInfo
from nanochat_cli.services.text import printable
from nanochat_cli.widgets.train import fmt

COLUMNS = ("run", "status", "step", "loss", "val bpb", "duration")
RELOAD_S = 10.0  # while the table shows and another run goes on, the runs are read again this often
GOING = ("running", "hung", "starting")


def steps(step: int, total: int) -> str:
    return f"{step}/{total}" if total else str(step)


class RunsTable(DataTable):
    class Attach(Message):
        """The user picked a run (Enter on its row)."""

        def __init__(self, run: str) -> None:
            super().__init__()
            self.run = run

    def __init__(self, load: Callable[[], list[RunInfo]], attached: str | None) -> None:
        super().__init__(id="runs-table", cursor_type="row", zebra_stripes=True)
        self.load, self.attached = load, attached
        self.runs: list[RunInfo] = []
        self.loads = 0  # finished reads of the runs

    def on_mount(self) -> None:
        self._columns = self.add_columns(*COLUMNS)
        self.set_interval(RELOAD_S, self._reload_if_shown)

    @property
    def shown(self) -> bool:
        return self.is_on_screen and self.screen.is_current

    def _reload_if_shown(self) -> None:
        if self.shown and any(r.status in GOING and r.name != self.attached for r in self.runs):
            self.reload()

    @work(thread=True, exclusive=True, group="runs")
    def reload(self) -> None:
        """Read the runs again (on a worker thread) and show them."""
        runs = self.load()
        self.app.call_from_thread(self._show, runs)

    def _show(self, runs: list[RunInfo]) -> None:
        """Replace the rows; the cursor stays on the run it was on."""
        rows = self.ordered_rows
        keep = rows[self.cursor_row].key.value if 0 <= self.cursor_row < len(rows) else None
        self.clear()
        for r in runs:
            mark = "▶ " if r.name == self.attached else "  "
            self.add_row(Text(mark + printable(r.name, newlines=False)), r.status, steps(r.step, r.total),
                         fmt.num(r.loss), fmt.num(r.val_bpb), fmt.duration(r.elapsed), key=r.name)
        names = [r.name for r in runs]
        if keep in names:
            self.move_cursor(row=names.index(keep))
        self.runs = runs
        self.loads += 1

    def follow(self, name: str, status: str, run: RunState, loss: float | None, val_bpb: float | None) -> None:
        """Update the attached run's row from its live store (cheap: no file is read) while the table shows."""
        if name not in self.rows or not self.shown:
            return
        values = (status, steps(run.step, run.total), fmt.num(loss), fmt.num(val_bpb), fmt.duration(run.elapsed))
        for column, value in zip(self._columns[1:], values, strict=True):
            if self.get_cell(name, column) != value:
                self.update_cell(name, column, value)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if event.row_key.value:
            self.post_message(self.Attach(event.row_key.value))
