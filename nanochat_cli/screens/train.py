"""Train tab: launch a run, watch it live, steer it, edit the dashboard, and look back at past runs.

The dashboard is a layout (services/panels.py): tabs of panel grids. Telemetry is ingested off
the UI thread (services/ingest); the ingest thread only posts one coalesced `DataArrived` message, and
each panel then repaints at its own rate and only when its data changed. Once a second the screen checks
the job's process: hung (no telemetry for a while), ended (finished, stopped, failed, crashed); a failure
seen while attached opens the crash modal. Run actions (save now, patch, stop, show command) and layout
edits (widgets/train/editor.py: add, remove, move, refresh rate, save/open layout) are key bindings and
palette commands; none restarts the run. Everything is read back from the run dir, so reopening the app
re-attaches.
"""

from __future__ import annotations

import logging
import shlex
import time
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import DataTable, Static, TabbedContent, TabPane

from nanochat_cli.commands import NanochatCommands
from nanochat_cli.errors import USER_ERRORS, AppError
from nanochat_cli.logging_setup import log_event
from nanochat_cli.screens.base import AppScreen
from nanochat_cli.services.panels import Layout, LayoutStore
from nanochat_cli.services.runs import RunInfo, per_node_commands, preview_commands, spec_from_resolved
from nanochat_cli.services.runs.live import Liveness, LiveRun
from nanochat_cli.services.text import printable
from nanochat_cli.widgets.shell.empty_state import EmptyState
from nanochat_cli.widgets.train import fmt
from nanochat_cli.widgets.train.base import Panel
from nanochat_cli.widgets.train.dashboard import Dashboard
from nanochat_cli.widgets.train.editor import RUNS_VIEW, LayoutEditor

if TYPE_CHECKING:
    from nanochat_cli.app import NanochatApp

SMALL_TERMINAL_ROWS = 32  # below this the "compact" layout is picked until the user opens another
STATUS_STYLE = {"running": "success", "starting": "accent", "stopping": "accent", "ending": "accent",
                "hung": "warning", "failed": "error", "crashed": "error", "finished": "primary",
                "stopped": "primary", "unknown": "warning"}
STATUS_MIN_S = 0.25  # new data re-checks the run's status at most this often (else once a second)


# ---- the screen ------------------------------------------------------------------------------------

class TrainCommands(NanochatCommands):
    """Palette entries for every Train tab action, the footer's and the layout editor's."""

    def _commands(self) -> list[tuple[str, Any, str]]:
        screen = self.screen
        return screen.palette_commands() if isinstance(screen, TrainScreen) else []


class DataArrived(Message):
    """New telemetry was ingested (posted from the ingest thread, at most one in flight)."""


class RunViews(Vertical):
    """The layout's screens as tabs of panel grids, plus the Runs tab."""

    def __init__(self, layout: Layout, live: LiveRun, config: dict[str, Any], initial: str | None) -> None:
        super().__init__(classes="run-views")
        self.preset, self.live, self.config, self.initial = layout, live, config, initial

    def compose(self) -> ComposeResult:
        ids = [f"view-{s.id}" for s in self.preset.screens] + [RUNS_VIEW]
        with TabbedContent(initial=self.initial if self.initial in ids else ids[0], id="train-tabs"):
            for s in self.preset.screens:
                with TabPane(s.title, id=f"view-{s.id}"):
                    yield Dashboard(self.preset, s.id, self.live, self.config, id=f"dash-{s.id}")
            with TabPane("Runs", id=RUNS_VIEW):
                yield DataTable(id="runs-table", cursor_type="row", zebra_stripes=True)


class TrainScreen(LayoutEditor, AppScreen):
    SCREEN_NAME = "train"
    COMMANDS = {TrainCommands}
    hung_after_s: float | None = None  # None: the run's own threshold (telemetry.hung_after_s); tests set it
    BINDINGS = [
        Binding("s", "save_now", "Save now", tooltip="Ask the run to save a checkpoint at the next step"),
        Binding("p", "patch", "Patch", tooltip="Change hot config fields of the running job"),
        Binding("x", "stop", "Stop", tooltip="Stop the run gracefully (save, exit), after a confirmation"),
        Binding("c", "command", "Command", tooltip="The exact torchrun command (one per node)"),
        Binding("v", "next_view", "View", tooltip="Next dashboard tab of the layout"),
        Binding("r", "runs", "Runs", tooltip="Past and running runs; Enter attaches"),
        Binding("a", "add_panel", "Add panel", tooltip="Add a panel to this dashboard tab"),
        Binding("o", "open_layout", "Layout", tooltip="Open another layout"),
        Binding("d,delete", "remove_panel", "Remove panel", show=False),
        Binding("left_square_bracket", "move_panel(-1)", "Move panel back", show=False),
        Binding("right_square_bracket", "move_panel(1)", "Move panel on", show=False),
        Binding("f", "refresh_rate", "Refresh rate", show=False),
        Binding("w", "save_layout", "Save layout", show=False),
        Binding("e", "error_details", "Error details", show=False),
        Binding("tab", "select_panel(1)", "Next panel", show=False),
        Binding("shift+tab", "select_panel(-1)", "Previous panel", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.live: LiveRun | None = None
        self.layouts = LayoutStore()
        self.preset: Layout | None = None
        self.preset_edited = False
        self.active_view: str | None = None  # id of the active tab pane
        self.selected: dict[str, str] = {}  # tab pane id -> id of its selected panel (layout edits act on it)
        self.run_list: list[RunInfo] = []
        self.liveness: Liveness | None = None
        self._wake_pending = False
        self._switching = False  # a dashboard tab was just shown: paint after its first frame
        self._finalizing = False
        self._status_at = 0.0  # monotonic time of the last status check
        self._crash_due: RunInfo | None = None  # a failure to show once this tab is visible

    def compose_body(self) -> ComposeResult:
        with Vertical(id="body"):
            yield Static("", id="run-header", markup=False)
            yield Vertical(id="train-main")
            yield EmptyState("", id="train-empty")

    def on_mount(self) -> None:
        self.set_interval(1.0, self._tick)
        self.watch(self.app, "active_run", self._active_run_changed, init=True)

    def on_unmount(self) -> None:
        if self.live is not None:
            self.live.close()

    @property
    def napp(self) -> NanochatApp:
        return self.app  # type: ignore[return-value]

    # ---- attaching -------------------------------------------------------------------------------
    async def _active_run_changed(self, name: str | None) -> None:
        if name is None:
            newest = self.napp.orchestrator.runs.newest()
            if newest is not None:
                self.napp.active_run = newest  # comes back here with the name
            else:
                self._show_empty()
            return
        launched = self.napp.launched.get(name)
        if self.live is None or self.live.name != name or (launched is not None and self.live.spec is not launched[0]):
            await self.attach(name)  # a new run, or this one launched again (resumed)

    async def attach(self, name: str) -> None:
        app = self.napp
        try:
            spec, resolved = app.launched.get(name, (None, None))
            live = LiveRun(app.orchestrator, name, on_data=self._on_data, launched_here=name in app.launched,
                           spec=spec, resolved=resolved)
        except USER_ERRORS as e:
            app._error(str(e))
            return
        if self.live is not None:
            self.live.close()
        self.live, self.liveness, self._finalizing, self._crash_due = live, None, False, None
        for source, error in live.feed.errors:
            app._error(f"telemetry source {source} disabled: {error}")
        live.start()
        log_event("run attached", run=name)
        await self._rebuild()
        self._tick()
        self._load_runs()

    def _show_empty(self) -> None:
        self.query_one("#train-main").display = False
        self.query_one("#run-header").display = False
        empty = self.query_one("#train-empty", EmptyState)
        empty.display = True
        prefab = shlex.quote(self.napp.session.prefab)
        where = self.napp.show_path(self.napp.orchestrator.runs_dir)
        empty.set_text("No run yet", f"Press t on the Config tab (1) to launch the loaded prefab ({prefab}) and "
                                     f"watch it here.\nFrom a shell: nanochat-cli train --prefab {prefab}\n"
                                     f"Runs are kept under {where}.")

    def _pick_layout(self) -> Layout:
        name = "compact" if self.app.size.height < SMALL_TERMINAL_ROWS else "default"
        try:
            return self.layouts.get(name)
        except USER_ERRORS as e:  # e.g. a user layout naming a panel whose plugin failed
            if name == "default":
                raise
            self.napp._error(f"{e}; using the shipped default layout")
            return self.layouts.get("default")

    async def _rebuild(self, select: str | None = None) -> None:
        """(Re)build the tabs from the layout; panels repaint from the store, the run is not touched."""
        if self.live is None:
            return
        if self.preset is None:
            try:
                self.preset = self._pick_layout()
            except USER_ERRORS as e:
                self.napp._error(str(e))
                return
        main = self.query_one("#train-main")
        self.query_one("#train-empty").display = False
        main.display = True
        self.query_one("#run-header").display = True
        await main.remove_children()
        config = self.live.config()
        await main.mount(RunViews(self.preset, self.live, config, self.active_view))
        self._show_runs()
        self.call_after_refresh(self._after_rebuild, select)

    def _after_rebuild(self, select: str | None) -> None:
        tabs = self._tabs()
        self.active_view = tabs.active if tabs is not None else None
        if select is not None and self.active_view:
            self.selected[self.active_view] = select
        if self.focused is not None and not self.focused.is_attached:
            self.set_focus(None)  # focus came back (after a modal) to a widget the rebuild removed
        self._show_selection()
        self._paint(force=True)
        self._show_header()

    # ---- data and painting -----------------------------------------------------------------------
    def _on_data(self) -> None:
        """Ingest thread: wake the UI once; however many batches land meanwhile, one message is queued."""
        if not self._wake_pending:
            self._wake_pending = True
            self.post_message(DataArrived())

    def on_data_arrived(self, _: DataArrived) -> None:
        self._wake_pending = False
        self._paint()
        self._show_acks()
        if time.monotonic() - self._status_at > STATUS_MIN_S:  # e.g. "starting" → "running" without a 1 s lag
            self._tick()

    def _paint(self, force: bool = False) -> None:
        if not self.is_current or self._switching:
            return
        for panel in self.query(Panel).results(Panel):
            panel.request_paint(force)

    def _panels_in_view(self) -> list[Panel]:
        tabs = self._tabs()
        if tabs is None or tabs.active == RUNS_VIEW:
            return []
        dash = self.query(f"#dash-{tabs.active.removeprefix('view-')}")
        return list(dash.first().query(Panel).results(Panel)) if dash else []

    def _show_acks(self) -> None:
        if self.live is None:
            return
        for ack, ours in self.live.take_acks():
            if ours:
                verdict = "accepted" if ack.ok else "rejected"
                self.notify(printable(f"{ack.kind} {verdict}: {ack.message}", newlines=False), markup=False,
                            severity="information" if ack.ok else "error", timeout=6)
                log_event("control ack", run=self.live.name, kind=ack.kind, ok=ack.ok, message=ack.message)

    @on(TabbedContent.TabActivated, "#train-tabs")
    def _tab_activated(self, event: TabbedContent.TabActivated) -> None:
        self.active_view = event.pane.id
        if self.active_view == RUNS_VIEW:
            self._load_runs()
        else:
            # show the tab at once with what its panels last drew; repaint them right after that frame
            self._show_selection()
            self._switching = True
            self.call_after_refresh(self._switched)

    def _switched(self) -> None:
        self._switching = False
        self._paint(force=True)

    def on_screen_resume(self) -> None:
        self.call_after_refresh(self._paint, True)
        self._tick()
        if self._crash_due is not None:
            self._show_crash(self._crash_due)

    # ---- status, once a second -------------------------------------------------------------------
    def _tick(self) -> None:
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
        self._show_header()

    @work(thread=True, group="finalize")
    def _finalize(self, live: LiveRun) -> None:
        time.sleep(0.3)  # the ingest thread reads the last lines the job wrote as it exited
        info = live.finalize()
        self.app.call_from_thread(self._ended, live, info)

    def _ended(self, live: LiveRun, info: RunInfo | None) -> None:
        self._finalizing = False
        if live is not self.live or info is None:
            return
        self._tick()
        self._load_runs()
        failed = info.status in ("failed", "crashed")
        log_event("run ended", level=logging.ERROR if failed else logging.INFO, run=info.name, status=info.status,
                  exit_code=info.exit_code, error=info.error)
        if failed and (live.seen_alive or live.launched_here):
            if self.is_current:
                self._show_crash(info)
            else:
                self._crash_due = info
                self.napp._error(f"run {info.name} {info.status}: {info.error or 'see the Train tab'}")
        elif live.seen_alive:
            self.notify(f"run {info.name} {info.status} at step {info.step}", markup=False)

    def _show_header(self) -> None:
        live, state = self.live, self.liveness
        if live is None or state is None:
            return
        theme = self.app.theme_variables
        snap = live.store.snapshot()
        style = theme.get(STATUS_STYLE.get(state.status, ""), "")
        text = Text.assemble(("● ", style), (printable(live.name, newlines=False), "bold"), "  ",
                             (state.status, f"bold {style}"), "  ", (state.detail, "dim"))
        if snap.counters.malformed:
            text.append(printable(f"  │ {snap.counters.malformed} malformed telemetry line(s) skipped: "
                                  f"{snap.counters.last_error}", newlines=False), style=theme.get("warning", ""))
        for sink in snap.sinks.values():  # W&B / OTLP as the engine reports them (disabled ones are not news)
            if sink.state != "disabled":
                colour = "" if sink.state in ("ok", "configured") else theme.get("warning", "")
                text.append(printable(f"  │ {sink.name} {sink.state}" + (f" {sink.url}" if sink.url else ""),
                                      newlines=False), style=colour)
        if self.preset is not None:
            text.append(f"  │ layout {self.preset.name}{' (edited)' if self.preset_edited else ''}", style="dim")
        self.query_one("#run-header", Static).update(text)
        run = snap.run
        steps = f" {run.step}/{run.total}" if run.total else ""
        self.napp._update_status(run=f"{live.name} {state.status}{steps}")

    # ---- runs list -------------------------------------------------------------------------------
    @work(thread=True, exclusive=True, group="runs")
    def _load_runs(self) -> None:
        runs = self.napp.orchestrator.list_runs()
        self.app.call_from_thread(self._set_runs, runs)

    def _set_runs(self, runs: list[RunInfo]) -> None:
        self.run_list = runs
        self._show_runs()

    def _show_runs(self) -> None:
        tables = self.query("#runs-table")
        if not tables:
            return
        table = tables.first(DataTable)
        if not table.columns:
            table.add_columns("run", "status", "step", "loss", "val bpb", "duration")
        table.clear()
        for r in self.run_list:
            mark = "▶ " if self.live is not None and r.name == self.live.name else "  "
            table.add_row(Text(mark + printable(r.name, newlines=False)), r.status,
                          f"{r.step}/{r.total}" if r.total else str(r.step),
                          fmt.num(r.loss), fmt.num(r.val_bpb), fmt.duration(r.elapsed), key=r.name)

    @on(DataTable.RowSelected, "#runs-table")
    def _run_selected(self, event: DataTable.RowSelected) -> None:
        name = event.row_key.value
        if name:
            self.napp.active_run = name

    # ---- run actions -----------------------------------------------------------------------------
    def _live_run(self, what: str) -> LiveRun | None:
        """The attached run if it is alive, else a toast saying why `what` can't be done."""
        live = self.live
        if live is None:
            self.notify(f"No run to {what}: launch one with t on the Config tab", severity="warning")
            return None
        if not live.alive():
            status = self.liveness.status if self.liveness else "not running"
            self.notify(f"Run {live.name} is {status}: nothing to {what}", severity="warning", markup=False)
            return None
        return live

    def _request(self, live: LiveRun, kind: str, changes: dict[str, Any] | None = None) -> str | None:
        try:
            return live.request(kind, changes)
        except USER_ERRORS as e:
            self.napp._error(str(e))
            return None

    def action_save_now(self) -> None:
        live = self._live_run("save")
        if live is not None and self._request(live, "save_now"):
            self.notify(f"Save requested: {live.name} checkpoints at the next step", markup=False)

    def action_patch(self) -> None:
        live = self._live_run("patch")
        if live is None:
            return
        from nanochat_cli.screens.run_modals import PatchScreen

        def send(changes: dict[str, Any] | None) -> None:
            if changes and self._request(live, "patch", changes):
                shown = ", ".join(f"{k}={v}" for k, v in changes.items())
                self.notify(printable(f"Patch sent: {shown}; waiting for the engine's answer"), markup=False)
                log_event("patch sent", run=live.name, **changes)

        self.app.push_screen(PatchScreen(live.name, live.hot_values(), live.engine_config()), send)

    def action_stop(self) -> None:
        live = self._live_run("stop")
        if live is None:
            return
        from nanochat_cli.screens.confirm import ConfirmScreen

        step = live.store.run_state().step

        def answer(yes: bool | None) -> None:
            if yes:
                live.stopping = True
                self._tick()
                self._stop(live)

        self.app.push_screen(ConfirmScreen(f"Stop run {live.name} at step {step}? It saves a checkpoint, then "
                                           "exits (signals follow if it does not within a minute).", "Stop"), answer)

    @work(thread=True, group="stop")
    def _stop(self, live: LiveRun) -> None:
        try:
            result = self.napp.orchestrator.stop(live.name)
        except USER_ERRORS as e:
            self.app.call_from_thread(self.napp._error, str(e))
            return
        finally:
            live.stopping = False
        log_event("run stop", run=live.name, exit_code=result.exit_code, survivors=list(result.survivors))
        if not result.stopped:
            self.app.call_from_thread(self.napp._error, f"Run {live.name} NOT stopped: pid(s) "
                                      f"{', '.join(map(str, result.survivors))} outlived SIGKILL")
            return
        code = result.exit_code
        self.app.call_from_thread(self.notify, f"Run {live.name} stopped" +
                                  (f" (exit code {code})" if code is not None else ""), markup=False)

    def action_command(self) -> None:
        from nanochat_cli.screens.run_modals import CommandScreen, node_commands

        live = self.live
        if live is not None and live.spec is not None:
            commands = per_node_commands(live.spec, live.run.config_path)
        elif live is not None and live.record.get("command"):
            commands = node_commands(live.record["command"], int(live.record.get("nnodes", 1)))
        else:
            self._config_command()
            return
        note = "run this on each node, node 0 first" if len(commands) > 1 else f"run {live.name}, as launched"
        self.app.push_screen(CommandScreen(f"torchrun command: {live.name}", commands, note))

    def _config_command(self) -> None:
        """No launched run to show: the command the Config tab's config would run."""
        from nanochat_cli.screens.run_modals import CommandScreen

        s = self.napp.session
        try:
            if s.issues:
                raise AppError(f"config: {s.issues[0].message}")
            spec = spec_from_resolved(s.current)
        except USER_ERRORS as e:
            self.napp._error(str(e))
            return
        self.app.push_screen(CommandScreen(f"torchrun command: prefab {s.prefab}", preview_commands(spec),
                                           "the config as engine flags: runs as is, from any directory"))

    def action_error_details(self) -> None:
        if self.live is not None and self.live.final is not None and self.live.final.status in ("failed", "crashed"):
            self._show_crash(self.live.final)
        else:
            self.notify("The attached run has not failed", severity="warning")

    def _show_crash(self, info: RunInfo) -> None:
        from nanochat_cli.screens.run_modals import CrashScreen

        self._crash_due = None
        try:
            stderr = self.napp.orchestrator.stderr_tail(info.name, lines=30)
        except USER_ERRORS:
            stderr = ""
        error = printable(info.error, newlines=False) if info.error else None  # run text: shown, never obeyed
        self.app.push_screen(CrashScreen(info.name, info.status, info.exit_code, error, printable(stderr),
                                         printable(info.command)))

    # ---- views -----------------------------------------------------------------------------------
    def _tabs(self) -> TabbedContent | None:
        tabs = self.query("#train-tabs")
        return tabs.first(TabbedContent) if tabs else None

    def action_next_view(self) -> None:
        """The next dashboard tab (the Runs tab has its own key, r)."""
        tabs = self._tabs()
        if tabs is None:
            return
        ids = [p.id for p in tabs.query(TabPane) if p.id != RUNS_VIEW]
        at = ids.index(tabs.active) if tabs.active in ids else -1
        tabs.active = ids[(at + 1) % len(ids)]

    def action_runs(self) -> None:
        tabs = self._tabs()
        if tabs is not None:
            tabs.active = RUNS_VIEW
            self.query_one("#runs-table").focus()
        else:
            self.notify("No runs yet", severity="warning")

    # ---- palette -------------------------------------------------------------------------------
    def palette_commands(self) -> list[tuple[str, Any, str]]:
        """This tab's actions for the command palette (text, callback, help)."""
        return [
            ("Train: save checkpoint now", self.action_save_now, "ask the running job to checkpoint now"),
            ("Train: patch hot config…", self.action_patch, "change lr_scale, eval_every, … while it trains"),
            ("Train: stop run…", self.action_stop, "graceful stop: save, exit"),
            ("Train: show torchrun command", self.action_command, "copyable; one line per node"),
            ("Train: show run error", self.action_error_details, "exit code, error, stderr of a failed run"),
            ("Train: runs list", self.action_runs, "past and running runs; Enter attaches"),
            ("Layout: add panel…", self.action_add_panel, "add a registered panel to this tab"),
            ("Layout: select next panel", lambda: self.action_select_panel(1), "the panel layout edits act on (Tab)"),
            ("Layout: remove selected panel", self.action_remove_panel, "take the selected panel off this tab"),
            ("Layout: move selected panel back", lambda: self.action_move_panel(-1), "earlier in reading order"),
            ("Layout: move selected panel on", lambda: self.action_move_panel(1), "later in reading order"),
            ("Layout: refresh rate of selected panel…", self.action_refresh_rate, "repaints per second"),
            ("Layout: save as…", self.action_save_layout, "keep this layout as a YAML file of yours"),
            ("Layout: open…", self.action_open_layout, "switch to another layout"),
        ]
