"""Train tab: launch a run, watch it live, steer it, edit the dashboard, and look back at past runs.

The dashboard is a layout (services/panels.py): tabs of panel grids (widgets/train/views.py). Telemetry is
ingested off the UI thread (services/ingest); the ingest thread only posts one coalesced `DataArrived` message, and
each panel then repaints at its own rate and only when its data changed. Once a second the screen checks the job's
process: hung (no telemetry for a while), ended (finished, stopped, failed, crashed); a failure seen while attached
opens the crash modal. The run keys (save now, patch, stop, command) are a RunActions controller's
(screens/run_actions.py) and the layout keys (add, remove, move, refresh rate, save/open) a LayoutEditor's
(services/layout_editor.py); none restarts the run, and the palette lists every key. Everything is read back from
the run dir, so reopening the app re-attaches.

Keys are answered by the next frame: finding, opening and closing runs (file scans, NVML start-up, joining ingest
threads) happen on worker threads, and a tab shows before its panels repaint.
"""

from __future__ import annotations

import asyncio
import logging
import shlex
import time
from collections.abc import Callable
from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import TabbedContent

from nanochat_cli.errors import USER_ERRORS
from nanochat_cli.logging_setup import log_event
from nanochat_cli.screens.base import AppScreen, screen_commands
from nanochat_cli.screens.run_actions import RunActions
from nanochat_cli.services.layout_editor import Ask, Done, EditRefused, LayoutEditor
from nanochat_cli.services.panels import LayoutStore
from nanochat_cli.services.runs import RunInfo
from nanochat_cli.services.runs.live import Liveness, LiveRun
from nanochat_cli.widgets.shell.empty_state import EmptyState
from nanochat_cli.widgets.train.base import Panel
from nanochat_cli.widgets.train.header import RunHeader
from nanochat_cli.widgets.train.runs_table import RunsTable
from nanochat_cli.widgets.train.views import RunViews

SMALL_TERMINAL_ROWS = 32  # below this the "compact" layout is picked until the user opens another
STATUS_MIN_S = 0.25  # new data re-checks the run's status at most this often (else once a second)


class DataArrived(Message):
    """New telemetry was ingested (posted from the ingest thread, at most one in flight)."""


class TrainScreen(AppScreen):
    SCREEN_NAME = "train"
    COMMANDS = {screen_commands}
    hung_after_s: float | None = None  # None: the run's own threshold (telemetry.hung_after_s); tests set it
    BINDINGS = [  # the palette lists each of them; run(...) and edit(...) are the controllers' operations
        Binding("s", "run('save_now')", "Save", tooltip="Ask the run to save a checkpoint at the next step"),
        Binding("p", "run('patch')", "Patch", tooltip="Change hot config fields of the running job"),
        Binding("x", "run('stop')", "Stop", tooltip="Stop the run gracefully (save, exit), after a confirmation"),
        Binding("c", "run('command')", "Command", show=False, tooltip="The exact torchrun command (one per node)"),
        Binding("v", "next_view", "View", tooltip="Next tab: the layout's dashboards, then Runs"),
        Binding("r", "runs", "Runs", tooltip="Past and running runs; Enter attaches"),
        Binding("m", "report", "Report", show=False, tooltip="The pipeline report (nanochat-cli pipeline) of this run"),
        Binding("e", "run('error_details')", "Error details", show=False,
                tooltip="Exit code, error and stderr tail of the failed run"),
        Binding("a", "edit('add_panel')", "Add panel", show=False, tooltip="Add a registered panel to this tab"),
        Binding("d,delete", "edit('remove_panel')", "Remove panel", show=False,
                tooltip="Take the selected panel off this tab"),
        Binding("left_square_bracket", "edit('move_panel', -1)", "Move panel back", show=False,
                tooltip="The selected panel one place earlier"),
        Binding("right_square_bracket", "edit('move_panel', 1)", "Move panel on", show=False,
                tooltip="The selected panel one place later"),
        Binding("f", "edit('refresh_rate')", "Refresh rate", show=False,
                tooltip="Repaints per second of the selected panel"),
        Binding("w", "edit('save_layout')", "Save layout", show=False,
                tooltip="Keep this layout as a YAML file of yours"),
        Binding("o", "edit('open_layout')", "Open layout", show=False, tooltip="Switch to another layout"),
        Binding("tab", "edit('select_panel', 1)", "Next panel", show=False,
                tooltip="Select the panel layout edits act on"),
        Binding("shift+tab", "edit('select_panel', -1)", "Previous panel", show=False,
                tooltip="Select the previous panel"),
        *(Binding(key, f"runs_table('{action}')", show=False)  # only while the Runs tab shows (check_action)
          for key, action in (("up", "cursor_up"), ("down", "cursor_down"), ("enter", "select_cursor"))),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.live: LiveRun | None = None
        self.liveness: Liveness | None = None
        self.views: RunViews | None = None
        self.editor = LayoutEditor(LayoutStore(), show_path=lambda path: self.napp.show_path(path))
        self.actions = RunActions(self)
        self._run_config: dict[str, Any] = {}  # the attached run's dotted config, for thresholds that name keys
        self._wake_pending = False
        self._finalizing = False
        self._status_at = 0.0  # monotonic time of the last status check
        self._crash_due: RunInfo | None = None  # a failure to show once this tab is visible
        # one rebuild at a time: two attaches (call_from_thread runs each as its own task) interleaved at their
        # awaits, and the first then published tabs the second had already removed (NoMatches on '#train-tabs')
        self._rebuilding = asyncio.Lock()

    def compose_body(self) -> ComposeResult:
        with Vertical(id="body"):
            yield RunHeader()
            yield Vertical(id="train-main")
            yield EmptyState("", id="train-empty")

    def on_mount(self) -> None:
        self.set_interval(1.0, self.refresh_status)
        self.watch(self.app, "active_run", self._active_run_changed, init=True)

    def on_unmount(self) -> None:
        if self.live is not None:
            self.live.close()

    # ---- attaching (run dirs are read and feeds opened and closed on worker threads) ----------------
    def _active_run_changed(self, name: str | None) -> None:
        launched = self.napp.launched.get(name) if name else None
        if name is None or self.live is None or self.live.name != name or (
                launched is not None and self.live.spec is not launched[0]):
            self._open(name)  # the newest run, a new one, or this one launched again (resumed)

    @work(thread=True, exclusive=True, group="attach")
    def _open(self, name: str | None) -> None:
        """Open run `name` (None: the newest one) on a worker thread: its record, config and feed (NVML too)."""
        app = self.napp
        name = name or app.orchestrator.runs.newest()
        if name is None:
            app.call_from_thread(self._show_empty)
            return
        spec, resolved = app.launched.get(name, (None, None))
        try:
            live = LiveRun(app.orchestrator, name, on_data=self._on_data, launched_here=name in app.launched,
                           spec=spec, resolved=resolved)
        except USER_ERRORS as e:
            app.call_from_thread(app._error, str(e))
            return
        config = live.config()  # reads config.yaml before the run has started
        app.call_from_thread(self._attach_run, live, config)

    async def _attach_run(self, live: LiveRun, config: dict[str, Any]) -> None:
        app = self.napp
        if not self.is_attached:  # opened as the app exits: never started, nothing to show it on
            live.close()
            return
        if app.active_run not in (None, live.name):  # another run was picked while this one opened
            self._close(live)
            return
        if self.live is not None:
            self._close(self.live)
        self.live, self.liveness, self._finalizing, self._crash_due = live, None, False, None
        self._run_config = config
        if app.active_run is None:
            app.active_run = live.name  # the newest run, found on the worker: the app names it too
        for source, error in live.feed.errors:
            app._error(f"telemetry source {source} disabled: {error}")
        live.start()
        log_event("run attached", run=live.name)
        await self._rebuild()
        self.refresh_status()

    def _close(self, live: LiveRun) -> None:
        self.run_worker(live.close, thread=True, group="close")  # joins the feed's threads

    def _header(self) -> RunHeader | None:
        """The run header, or None once the app has begun to exit (the screen can still be attached while its
        children are already gone, and a worker's answer can land then)."""
        return next(iter(self.query(RunHeader).results(RunHeader)), None)

    def _show_empty(self) -> None:
        header = self._header() if self.is_attached else None
        if header is None:  # a worker's answer after the app began to exit: nothing left to draw on
            return
        self.query_one("#train-main").display = False
        header.display = False
        empty = self.query_one("#train-empty", EmptyState)
        empty.display = True
        prefab = shlex.quote(self.napp.session.prefab)
        where = self.napp.show_path(self.napp.orchestrator.runs_dir)
        empty.set_text("No run yet", f"Press t on the Config tab (1) to launch the loaded prefab ({prefab}) and "
                                     f"watch it here.\nFrom a shell: nanochat-cli train --prefab {prefab}\n"
                                     f"Runs are kept under {where}.")

    async def _rebuild(self, select: str | None = None) -> None:
        """(Re)build the tabs from the editor's layout; panels repaint from the store, the run is not touched."""
        async with self._rebuilding:
            await self._rebuild_tabs(select)

    async def _rebuild_tabs(self, select: str | None) -> None:
        if self.live is None or not self.is_attached:
            return
        try:
            stage = self.live.record.get("stage") or getattr(self.live.spec, "stage", None) or "base"
            problem = self.editor.choose(small=self.app.size.height < SMALL_TERMINAL_ROWS, stage=str(stage))
        except USER_ERRORS as e:
            self.napp._error(str(e))
            return
        if problem:
            self.napp._error(problem)
        layout = self.editor.layout
        header = self._header()
        if layout is None or header is None:
            return
        main = self.query_one("#train-main")
        self.query_one("#train-empty").display = False
        main.display = header.display = True
        self.views = None  # until the new tabs are mounted
        await main.remove_children()
        views = RunViews(layout, self.live, self._run_config, self.editor.view, self.napp.orchestrator.list_runs)
        await main.mount(views)
        self.views = views
        self.call_after_refresh(self._rebuilt, views, select)

    def _rebuilt(self, views: RunViews, select: str | None) -> None:
        if views is not self.views:
            return
        self.editor.view = views.layout_view
        if select is not None:
            self.editor.select(select)
        if self.focused is not None and not self.focused.is_attached:
            self.set_focus(None)  # focus came back (after a modal) to a widget the rebuild removed
        views.show_selection(self.editor.selected_panel())
        views.paint(force=True)
        self._show_status()

    # ---- data and status -------------------------------------------------------------------------
    def _on_data(self) -> None:
        """Ingest thread: wake the UI once; however many batches land meanwhile, one message is queued."""
        if not self._wake_pending:
            self._wake_pending = True
            self.post_message(DataArrived())

    def on_data_arrived(self, _: DataArrived) -> None:
        self._wake_pending = False
        if self.views is not None and self.is_current:
            self.views.paint()
        self.actions.report_acks()
        if time.monotonic() - self._status_at > STATUS_MIN_S:  # e.g. "starting" → "running" without a 1 s lag
            self.refresh_status()

    def on_screen_resume(self) -> None:
        self.call_after_refresh(self._resumed)  # the tab shows first; status and repaints come right after

    def _resumed(self) -> None:
        if self.views is not None:
            self.views.paint(force=True)
        self.refresh_status()
        if self._crash_due is not None:
            self.actions.show_crash(self._crash_due)
            self._crash_due = None

    def refresh_status(self) -> None:
        """Check the run's process and telemetry (once a second, and on new data): liveness, stalls, the header."""
        live = self.live
        if live is None:
            return
        now = time.time()
        self._status_at = time.monotonic()
        self.liveness = live.liveness(now, self.hung_after_s)
        if self.liveness.status == "ending" and not self._finalizing:
            self._finalizing = True
            self._finalize(live)
        for panel in self.query(Panel).results(Panel):
            if panel.spec.thresholds.stall_s is not None:
                panel.check_alerts(now)
        self._show_status()

    def _show_status(self) -> None:
        """The header, the status bar and the attached run's row of the Runs table, from its live store."""
        live, state = self.live, self.liveness
        header = self._header() if self.is_attached else None
        if live is None or state is None or header is None:  # (a finalize answer after the app exits)
            return
        snap = live.store.snapshot()
        header.show(live.name, state.status, state.detail, snap, self.editor.label)
        run = snap.run
        steps = f" {run.step}/{run.total}" if run.total else ""
        self.napp._update_status(run=f"{live.name} {state.status}{steps}")
        if self.views is not None:
            self.views.runs_table.follow(live.name, state.status, run, snap.latest.get("loss"),
                                         snap.latest.get("val_bpb"))

    @work(thread=True, group="finalize")
    def _finalize(self, live: LiveRun) -> None:
        time.sleep(0.3)  # the ingest thread reads the last lines the job wrote as it exited
        info = live.finalize()
        self.app.call_from_thread(self._ended, live, info)

    def _ended(self, live: LiveRun, info: RunInfo | None) -> None:
        self._finalizing = False
        if live is not self.live or info is None:
            return
        self.refresh_status()
        if self.views is not None and self.views.runs_showing:
            self.views.runs_table.reload()
        failed = info.status in ("failed", "crashed")
        log_event("run ended", level=logging.ERROR if failed else logging.INFO, run=info.name, status=info.status,
                  exit_code=info.exit_code, error=info.error)
        if failed and (live.seen_alive or live.launched_here):
            if self.is_current:
                self.actions.show_crash(info)
            else:
                self._crash_due = info
                self.napp._error(f"run {info.name} {info.status}: {info.error or 'see the Train tab'}")
        elif live.seen_alive:
            self.notify(f"run {info.name} {info.status} at step {info.step}", markup=False)

    # ---- keys ------------------------------------------------------------------------------------
    def action_run(self, operation: str) -> None:
        getattr(self.actions, operation)()

    async def action_edit(self, operation: str, *args: Any) -> None:
        await self._edit(getattr(self.editor, operation), *args)

    async def _edit(self, step: Callable[..., Done | Ask], *args: Any) -> None:
        """Take one step of a layout edit: ask the user with a modal, or show what changed."""
        from nanochat_cli.screens.run_modals import AskScreen, PickScreen

        try:
            result = step(*args)
        except EditRefused as e:
            self.notify(str(e), severity="warning")
            return
        except USER_ERRORS as e:
            self.napp._error(str(e))
            return
        if isinstance(result, Ask):
            modal = (PickScreen(result.title, list(result.choices), result.note) if result.choices else
                     AskScreen(result.title, result.note, result.value, result.check or (lambda _: None)))

            async def answered(answer: str | None) -> None:
                if answer:
                    await self._edit(result.then, answer)

            self.app.push_screen(modal, answered)
            return
        if result.change and self.editor.layout is not None:
            log_event("layout edited", layout=self.editor.layout.name, change=result.change)
        if result.note:
            self.notify(result.note, markup=False)
        if result.rebuild and self.live is None and self.editor.layout is not None:
            self.notify(f"Layout {self.editor.layout.name} is used once a run is attached")
        elif result.rebuild:
            await self._rebuild(result.select)
            return
        if self.views is not None:
            self.views.show_selection(self.editor.selected_panel())
        self._show_status()

    def action_next_view(self) -> None:
        if self.views is not None:
            self.views.next_view()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return action != "runs_table" or (self.views is not None and self.views.runs_showing)

    async def action_runs_table(self, action: str) -> None:
        if self.views is not None:
            await self.views.runs_table.run_action(action)

    def action_report(self) -> None:
        self.napp.show_report(self.live.name if self.live is not None else None)

    def action_runs(self) -> None:
        if self.views is not None:
            self.views.show_runs()
        else:
            self.notify("No runs yet", severity="warning")

    @on(TabbedContent.TabActivated, "#train-tabs")
    def _view_shown(self) -> None:
        if self.views is not None:
            self.editor.view = self.views.layout_view
            self.views.show_selection(self.editor.selected_panel())

    def on_runs_table_attach(self, event: RunsTable.Attach) -> None:
        self.napp.active_run = event.run

    def on_panel_picked(self, event: Panel.Picked) -> None:
        self.editor.select(event.panel.spec.id)
        if self.views is not None:
            self.views.show_selection(self.editor.selected_panel())
