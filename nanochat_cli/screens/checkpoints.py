"""Checkpoints tab: every checkpoint under the base dir (ours and stock nanochat's) with its shape, val bpb and
compatibility with the active config (the Config tab's prefab + overrides), and what can be done with one.

The listing comes from the CheckpointRegistry (torch-free, index-cached) in a worker thread, so a big base dir
never freezes the UI; it is refreshed when the tab is shown and whenever the config changes. Actions on the
selected row: resume training from it (full state) or start a run from its weights (RunOrchestrator, then the
Train tab), evaluate it (val bpb + the eval prompts, in a worker thread; the report shows inline and is cached),
chat with it (the Chat tab), apply the remedy of its compatibility reasons to the active config, delete it
(after a confirmation). Each action has a key in the footer and an entry in the command palette.
"""

from __future__ import annotations

import logging
import threading
from functools import partial
from pathlib import Path
from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.reactive import var
from textual.widgets import DataTable, Static

from nanochat_cli.errors import USER_ERRORS
from nanochat_cli.logging_setup import log_event
from nanochat_cli.screens.base import AppScreen, screen_commands
from nanochat_cli.services.checkpoints.compat import Compat, CompatReason
from nanochat_cli.services.checkpoints.entries import CheckpointEntry
from nanochat_cli.services.checkpoints.registry import CheckpointRegistry
from nanochat_cli.services.compute import config_device
from nanochat_cli.widgets.checkpoints.detail import CheckpointDetail, describe
from nanochat_cli.widgets.checkpoints.table import FILTERS, CheckpointTable, keep, status_of
from nanochat_cli.widgets.shell.empty_state import EmptyState

Row = tuple[CheckpointEntry, Compat]
EVAL_NEW_TOKENS = 64  # tokens per eval prompt completion (the CLI's default)


class Scanned(Message):
    """A scan finished (posted from the worker thread: post_message is thread-safe and never blocks)."""

    def __init__(self, scan: int, base: Path, rows: list[Row], error: str | None) -> None:
        super().__init__()
        self.scan, self.base, self.rows, self.error = scan, base, rows, error


class Evaluated(Message):
    def __init__(self, entry: CheckpointEntry, error: str | None) -> None:
        super().__init__()
        self.entry, self.error = entry, error


class CheckpointsScreen(AppScreen):
    SCREEN_NAME = "checkpoints"
    COMMANDS = {screen_commands}
    BINDINGS = [
        Binding("t", "resume", "Resume", tooltip="Resume training from the selected checkpoint (full state)"),
        Binding("w", "from_weights", "From weights", tooltip="Start a new run from the selected checkpoint's weights"),
        Binding("e", "evaluate", "Evaluate", tooltip="Val bpb and the eval prompts' completions, shown below"),
        Binding("c", "chat", "Chat", tooltip="Load the selected checkpoint into the Chat tab"),
        Binding("a", "apply_remedy", "Apply fix", tooltip="Set the suggested overrides on the active config"),
        Binding("delete,x", "delete", "Delete", tooltip="Delete the selected checkpoint step (asks first)"),
        Binding("f", "cycle_filter", "Filter", tooltip="Show all / loadable / compatible checkpoints"),
        Binding("p", "edit_prompts", "Eval prompts", tooltip="Edit the prompts every evaluation completes"),
        Binding("r", "rescan", "Rescan", tooltip="Read the checkpoint dirs again"),
        Binding("m", "report", "Report", show=False, tooltip="The pipeline report (nanochat-cli pipeline) of this run"),
    ]

    filter: var[str] = var("all")

    def compose_body(self) -> ComposeResult:
        with Vertical(id="body"):
            yield Static("", id="ckpt-where", markup=False)
            yield CheckpointTable(id="ckpt-table")
            yield CheckpointDetail(id="ckpt-detail")
            yield EmptyState("", id="ckpt-empty")

    def on_mount(self) -> None:
        self._lock = threading.Lock()  # the registry (and its index file) is used from worker threads
        self._registry: CheckpointRegistry | None = None
        self._rows: list[Row] = []
        self._scans = 0  # a scan's results are shown only if no newer scan started meanwhile
        self._evaluating: CheckpointEntry | None = None
        self._scanned = False
        self._scanning = False
        self.watch(self.app, "config_rev", self._config_changed, init=False)
        # until the first scan lands (seconds on a busy machine) say what is happening, not an empty table
        for widget in ("#ckpt-where", CheckpointTable, CheckpointDetail):
            self.query_one(widget).display = False
        where = self.napp.show_path(self._base(self.napp.session.current))
        self.query_one(EmptyState).set_text(f"Scanning checkpoints under {where}…",
                                            "Each checkpoint's meta is read and checked against the active config.")
        self.query_one(CheckpointTable).focus()

    # ---- listing -------------------------------------------------------------------------------
    def on_screen_resume(self) -> None:
        self.action_rescan()

    def _config_changed(self, _rev: int) -> None:
        if self.is_current:  # otherwise the next visit rescans
            self.action_rescan()

    def _base(self, resolved: dict[str, Any]) -> Path:
        return Path(resolved.get("run.base_dir") or self.napp.base_dir).expanduser()

    def action_rescan(self) -> None:
        self._scans += 1
        self._scanning = True
        if self._scanned:
            self._show_where()
        resolved = dict(self.napp.session.current)
        problems = [i.message for i in self.napp.session.issues]
        self.run_worker(partial(self._scan, self._scans, resolved, problems), thread=True, group="ckpt-scan")

    def _scan(self, scan: int, resolved: dict[str, Any], problems: list[str]) -> None:
        base = self._base(resolved)
        try:
            with self._lock:
                if self._registry is None or self._registry.base != base:
                    self._registry = CheckpointRegistry(base)
                if problems:  # an invalid config has no shape to compare against: say so on every row
                    reason = CompatReason("error", f"the active config has {len(problems)} problem(s) (first: "
                                                   f"{problems[0]}): compatibility not checked",
                                          "fix them on the Config tab")
                    rows = [(e, Compat("incompatible", [reason])) for e in self._registry.scan()]
                else:
                    rows = self._registry.with_compat(resolved)
            error = None
        except USER_ERRORS as e:
            rows, error = [], str(e)
        self.post_message(Scanned(scan, base, rows, error))

    def on_scanned(self, message: Scanned) -> None:
        if message.error:
            self.napp._error(message.error)
        if message.scan != self._scans:
            return
        self._rows, self._where, self._scanned = message.rows, self.napp.show_path(message.base), True
        self._scanning = False
        self._show_rows()

    def watch_filter(self) -> None:
        if self.is_mounted and self._scanned:
            self._show_rows()

    def _show_rows(self) -> None:
        self.query_one(CheckpointTable).show(self._shown())
        self._show_where()
        for widget in ("#ckpt-where", CheckpointTable, CheckpointDetail):
            self.query_one(widget).display = bool(self._rows)
        empty = self.query_one(EmptyState)
        empty.display = not self._rows
        empty.set_text(f"No checkpoints under {self._where}",
                       "Training writes them to <base>/base_checkpoints/<tag>/; stock nanochat's base, chatsft "
                       "and chatrl checkpoint dirs are listed too (r rescans).")
        self._show_detail()

    def _shown(self) -> list[Row]:
        return [r for r in self._rows if keep(*r, self.filter)]

    def _show_where(self) -> None:
        s = self.napp.session
        n, shown = len(s.overrides), len(self._shown())
        config = s.prefab + (f" + {n} override{'s' if n > 1 else ''}" if n else "")
        count = f"{shown} of {len(self._rows)}" if shown != len(self._rows) else str(shown)
        self.query_one("#ckpt-where", Static).update(
            f"{count} checkpoint{'s' if len(self._rows) != 1 else ''} under {self._where}, newest first · filter: "
            f"{self.filter} (f) · checked against {config}" + (" · rescanning…" if self._scanning else ""))

    def on_data_table_row_highlighted(self, _event: DataTable.RowHighlighted) -> None:
        self._show_detail()

    def _selected(self) -> Row | None:
        key = self.query_one(CheckpointTable).selected_key()
        return next((r for r in self._rows if r[0].key == key), None)

    def _show_detail(self) -> None:
        detail = self.query_one(CheckpointDetail)
        row = self._selected()
        if row is None:
            detail.show("No checkpoint matches the filter (f changes it)." if self._rows else "")
        else:
            detail.show(describe(*row, self.napp.show_path, self.app.theme_variables))
        ev = self._evaluating
        detail.evaluating(f"evaluating {ev.label} step {ev.step}…" if ev is not None else None)

    # ---- actions -------------------------------------------------------------------------------
    def action_report(self) -> None:
        row = self._selected()
        self.napp.show_report((row[0].run or row[0].tag) if row is not None else None)

    def _pick(self, loadable: bool = True) -> Row | None:
        row = self._selected()
        if row is None:
            self.notify("No checkpoint selected", severity="warning")
            return None
        entry = row[0]
        if loadable and not entry.complete:
            self.napp._error(f"{entry.label} step {entry.step} is {entry.status} ({entry.problem}): it is never "
                             "loaded; delete it or pick another")
            return None
        return row

    def action_cycle_filter(self) -> None:
        self.filter = FILTERS[(FILTERS.index(self.filter) + 1) % len(FILTERS)]

    def action_resume(self) -> None:
        self._start("resume")

    def action_from_weights(self) -> None:
        self._start("weights")

    def _start(self, mode: str) -> None:
        row = self._pick()
        if row is None:
            return
        entry = row[0]
        resolved = dict(self.napp.session.current)
        try:
            with self._lock:
                baseline = self._registry.baseline(entry, resolved, mode)
        except USER_ERRORS as e:
            self.napp._error(str(e))
            return
        spec = baseline.spec
        device = baseline.resolved.get("hardware.device", "auto")
        where = f"{spec.nproc_per_node} process{'es' if spec.nproc_per_node > 1 else ''} on {device}"
        if mode == "resume":
            question = f"Resume run {spec.config.run} from step {entry.step} ({where})?"
        else:
            question = f"Start run {spec.config.run} from the weights of {entry.label} step {entry.step} ({where})?"
        from nanochat_cli.screens.confirm import ConfirmScreen

        self.app.push_screen(ConfirmScreen(question, "Start"),
                             lambda yes: self._launch(entry, baseline) if yes else None)

    def _launch(self, entry: CheckpointEntry, baseline: Any) -> None:
        """Start it the way the Train tab launches runs (off the UI thread), which then shows it live."""
        log_event("run from checkpoint", mode=baseline.mode, checkpoint=str(entry.model_file),
                  run=baseline.spec.config.run)
        self.napp.launch_run(baseline.spec, baseline.resolved)

    def action_evaluate(self) -> None:
        if self._evaluating is not None:
            ev = self._evaluating
            self.notify(f"Evaluating {ev.label} step {ev.step} already: wait for it to finish", severity="warning")
            return
        row = self._pick()
        if row is None:
            return
        entry = row[0]
        resolved = dict(self.napp.session.current)
        self._evaluating = entry
        self._show_detail()
        log_event("checkpoint eval started", checkpoint=str(entry.model_file))
        self.run_worker(partial(self._evaluate, entry, resolved), thread=True, group="ckpt-eval")

    def _evaluate(self, entry: CheckpointEntry, resolved: dict[str, Any]) -> None:
        from nanochat_cli.services.checkpoints.evaluate import eval_data_dir, evaluate

        try:
            report = evaluate(entry.model_file, tokens=resolved.get("telemetry.eval_tokens", 65536),
                              max_new_tokens=EVAL_NEW_TOKENS, data_dir=eval_data_dir(entry, resolved),
                              device=config_device(resolved))
            with self._lock:
                self._registry.store_eval(entry, report)
        except USER_ERRORS as e:
            self.post_message(Evaluated(entry, str(e)))
        except (OSError, RuntimeError) as e:  # torch failing to read or run the weights
            self.post_message(Evaluated(entry, f"{entry.model_file}: evaluation failed ({type(e).__name__}: {e})"))
        else:
            self.post_message(Evaluated(entry, None))

    def on_evaluated(self, message: Evaluated) -> None:
        entry, error = message.entry, message.error
        self._evaluating = None
        if error:
            self.napp._error(error)
        else:
            bpb = entry.eval.val_bpb
            log_event("checkpoint evaluated", checkpoint=str(entry.model_file), val_bpb=bpb)
            self.notify(f"Evaluated {entry.label} step {entry.step}"
                        + (f": val bpb {bpb:.4f}" if bpb is not None else ""))
        self._show_detail()

    def action_chat(self) -> None:
        row = self._pick()
        if row is None:
            return
        from nanochat_cli.screens.chat import ChatScreen

        self.napp.action_show_screen("chat")
        if isinstance(self.app.screen, ChatScreen):
            self.app.screen.open_checkpoint(str(row[0].model_file))

    def action_apply_remedy(self) -> None:
        row = self._pick(loadable=False)
        if row is None:
            return
        entry, compat = row
        fixes: dict[str, Any] = {}
        for reason in compat.reasons:
            fixes.update(reason.overrides)
        if not fixes:
            self.notify(f"{entry.label} step {entry.step}: no config change to apply"
                        + (" (it fits the active config)" if compat.level == "compatible" else ""))
            return
        unknown = [k for k in fixes if k not in self.napp.session.specs]
        if unknown:
            self.napp._error(f"{unknown[0]}: not a field of the active config (is its plugin installed?): "
                             "set the other fields by hand on the Config tab")
            return
        for key, value in fixes.items():
            self.napp.set_override(key, value)
        shown = " ".join(f"{k}={'none' if v is None else v}" for k, v in fixes.items())
        log_event("checkpoint remedy applied", checkpoint=str(entry.model_file), overrides=fixes)
        self.notify(f"Active config: set {shown}")

    def action_delete(self) -> None:
        row = self._pick(loadable=False)
        if row is None:
            return
        entry, compat = row
        if self._evaluating is not None and self._evaluating.key == entry.key:
            self.notify("It is being evaluated: delete it when that is done", severity="warning")
            return
        from nanochat_cli.formatting import file_size
        from nanochat_cli.screens.confirm import ConfirmScreen

        files = entry.files()
        question = (f"Delete {entry.label} step {entry.step} ({status_of(entry, compat)}, "
                    f"{file_size(entry.size_bytes)}, "
                    f"{len(files)} file{'s' if len(files) != 1 else ''} in {self.napp.show_path(entry.path)})? "
                    "This cannot be undone.")
        self.app.push_screen(ConfirmScreen(question, "Delete"), lambda yes: self._delete(entry) if yes else None)

    def _delete(self, entry: CheckpointEntry) -> None:
        try:
            with self._lock:
                removed = self._registry.delete(entry)
        except OSError as e:
            self.napp._error(f"{entry.path}: could not delete step {entry.step} ({e.strerror}): check permissions")
            return
        log_event("checkpoint deleted", level=logging.WARNING, checkpoint=str(entry.path), step=entry.step,
                  files=len(removed))
        self.notify(f"Deleted {entry.label} step {entry.step} ({len(removed)} files)")
        self.action_rescan()

    def action_edit_prompts(self) -> None:
        from nanochat_cli.widgets.checkpoints.prompts import open_prompt_set_editor

        open_prompt_set_editor(self.napp)
