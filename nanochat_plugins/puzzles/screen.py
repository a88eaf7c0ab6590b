"""The Puzzles screen: the eight puzzles with their status, and a scrollable pane for a verify's report or
the oracle's source (peek). Verify, run and peek run the puzzle module in a child process on a worker
thread; the pane shows its output when it ends and the table re-reads the statuses."""

from __future__ import annotations

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, DataTable, Static

from nanochat_cli.plugin_api import PluginScreen
from nanochat_plugins.puzzles import runner

STATUS_STYLE = {"passing": "green", "failing": "red", "in progress": "yellow", "not started": "dim"}


class PuzzlesScreen(PluginScreen):
    DEFAULT_CSS = """
    PuzzlesScreen #puzzles-body { height: 1fr; }
    PuzzlesScreen #puzzles-table { width: 58; height: 1fr; }
    PuzzlesScreen #puzzles-side { width: 1fr; height: 1fr; padding: 0 1; }
    PuzzlesScreen #puzzles-goal { height: auto; margin-bottom: 1; }
    PuzzlesScreen #puzzles-buttons { height: 3; }
    PuzzlesScreen #puzzles-buttons Button { margin-right: 1; min-width: 10; }
    PuzzlesScreen #puzzles-pane { height: 1fr; border: round $panel; }
    """
    BINDINGS = [
        Binding("v", "verify", "Verify", tooltip="compare this puzzle's code with the engine"),
        Binding("r", "run", "Run", tooltip="run this puzzle's code on its small example"),
        Binding("p", "peek", "Peek", tooltip="show the engine's source for this puzzle"),
    ]

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="puzzles-body"):
            yield DataTable(id="puzzles-table", cursor_type="row", zebra_stripes=True)
            with Vertical(id="puzzles-side"):
                yield Static("", id="puzzles-goal", markup=False)
                with Horizontal(id="puzzles-buttons"):
                    yield Button("Verify", id="verify", variant="primary")
                    yield Button("Run", id="run")
                    yield Button("Peek", id="peek")
                with VerticalScroll(id="puzzles-pane"):
                    yield Static("", id="puzzles-output", markup=False)

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("#", "puzzle", "status")
        self.refresh_rows()
        table.focus()

    # ---- table

    def refresh_rows(self) -> None:
        table = self.query_one(DataTable)
        row = table.cursor_row
        table.clear()
        self.rows = runner.rows()
        for r in self.rows:
            style = STATUS_STYLE.get(r.status, "")
            table.add_row(str(r.number), r.title, f"[{style}]{r.status}[/]" if style else r.status, key=str(r.number))
        if self.rows:
            table.move_cursor(row=min(max(row, 0), len(self.rows) - 1))
        self.show_selected()

    def selected(self) -> runner.Row:
        return self.rows[max(0, min(self.query_one(DataTable).cursor_row, len(self.rows) - 1))]

    def show_selected(self) -> None:
        """The selected puzzle's goal and status; the pane's help text only when the selection moved (a
        refresh after a verify keeps the report on screen)."""
        r = self.selected()
        self.query_one("#puzzles-goal", Static).update(
            f"{r.number:02d} · {r.title} ({r.module})\n{r.goal}\nstatus: {r.status}"
            + (f" · {r.detail}" if r.detail else ""))
        if getattr(self, "shown", None) == r.number:
            return
        self.shown = r.number
        self.query_one("#puzzles-output", Static).update(
            f"v verify · r run · p peek at the engine's code\n\nor in a shell:\n  python -m {r.module}\n"
            f"  python -m {r.module} --verify\n  python -m {r.module} --peek")

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if getattr(self, "rows", None):
            self.show_selected()

    # ---- actions

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.start(event.button.id or "verify")

    def action_verify(self) -> None:
        self.start("verify")

    def action_run(self) -> None:
        self.start("run")

    def action_peek(self) -> None:
        self.start("peek")

    def start(self, mode: str) -> None:
        r = self.selected()
        self.query_one("#puzzles-output", Static).update(f"{mode} {r.module} …")
        self.launch(r.number, mode)

    @work(thread=True, exclusive=True, group="puzzle")
    def launch(self, number: int, mode: str) -> None:
        code, output = runner.run(runner.puzzle(number), mode)
        self.app.call_from_thread(self.finished, number, mode, code, output)

    def finished(self, number: int, mode: str, code: int, output: str) -> None:
        if mode == "verify":
            self.refresh_rows()
        if self.selected().number == number:
            self.query_one("#puzzles-output", Static).update(output.rstrip() or f"(no output, exit code {code})")
            self.query_one("#puzzles-pane", VerticalScroll).scroll_home(animate=False)
        word = "passes" if code == 0 else "fails"
        if mode == "verify":
            self.notify(f"puzzle {number} {word}", severity="information" if code == 0 else "warning")
