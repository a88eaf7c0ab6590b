"""The run the Train screen watches: its telemetry feed, its process, and the requests sent to it.

Textual-free, so the status logic is tested without a UI. Everything comes from the run dir (run.json,
telemetry.jsonl) and the orchestrator, never from an earlier session's memory: close the TUI while a
run trains, open it again, and attaching replays the run's history and goes on live.

Status while the process lives comes from telemetry and a cheap pid check each second; once the process
is gone, `finalize()` (run it off the UI thread: it replays the whole file) asks `RunOrchestrator.info`
how the run ended, which tells a clean end from a crash (no run_end) and carries the exit code.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from engine.config import HOT_PATCHABLE
from engine.control import send_request
from nanochat_cli.services.ingest import RunFeed
from nanochat_cli.services.orchestrator import HUNG_AFTER_S, RUN_RECORD, LaunchSpec, RunInfo, RunOrchestrator
from nanochat_cli.services.registry import REGISTRY
from nanochat_cli.widgets.train.fmt import duration

ENDED = ("finished", "stopped", "failed", "crashed", "unknown")


def read_record(run_dir: Path) -> dict[str, Any]:
    """run.json of a run dir ({} when the run was not started by the orchestrator or the file is torn)."""
    try:
        data = json.loads((run_dir / RUN_RECORD).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def pid_alive(pid: Any) -> bool:
    """True while the process exists and is not a zombie."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:  # another user's process: it exists (as the orchestrator sees it too)
        return True


def newest_run(runs_dir: Path) -> str | None:
    """The most recently started run under `runs_dir` (run.json's start time, else the dir's mtime)."""
    if not runs_dir.is_dir():
        return None
    best: tuple[float, str] | None = None
    for d in runs_dir.iterdir():
        if not d.is_dir() or not ((d / RUN_RECORD).exists() or (d / "telemetry.jsonl").exists()):
            continue
        started = read_record(d).get("started")
        key = (float(started) if isinstance(started, int | float) else d.stat().st_mtime, d.name)
        best = key if best is None or key > best else best
    return best[1] if best else None


@dataclass(frozen=True)
class Liveness:
    status: str  # starting | running | hung | ending | finished | stopped | failed | crashed | unknown
    detail: str  # one line for the header
    alive: bool


class LiveRun:
    """One attached run. `on_data` is called on an ingest thread after each batch (wake the UI there)."""

    def __init__(self, orch: RunOrchestrator, name: str, *, on_data: Callable[[], None] | None = None,
                 sources: Iterable[str] | None = None, launched_here: bool = False,
                 spec: LaunchSpec | None = None, resolved: dict[str, Any] | None = None):
        self.orch, self.name = orch, name
        self.run_dir = orch.run_dir(name)
        self.record = read_record(self.run_dir)
        self.launched_here = launched_here  # the orchestrator holds its Popen: exit codes come from there
        self.spec, self.resolved = spec, resolved
        self._on_data = on_data
        names = list(sources) if sources is not None else [e.name for e in REGISTRY.telemetry_sources()]
        self.feed = RunFeed(self.run_dir, sources=names, on_batch=self._on_batch)
        self.store = self.feed.store
        self.pending: dict[str, str] = {}  # request id -> kind, until the engine's control_ack arrives
        self.final: RunInfo | None = None  # how it ended, once the process is gone (finalize)
        self.seen_alive = False  # the process was alive while attached: a failure now is news (crash modal)
        self.stopping = False
        self._lock = threading.Lock()
        self._acks: list[Any] = []  # control_ack events seen by the ingest thread, drained by the UI
        self._applied: dict[str, Any] = {}  # hot keys changed by accepted patches, replay included

    # ---- feed ----------------------------------------------------------------------------------
    def start(self) -> None:
        self.feed.start()

    def close(self) -> None:
        self.feed.stop()

    def _on_batch(self, batch: list[Any]) -> None:
        acks = [ev for ev in batch if getattr(ev, "event", None) == "control_ack"]
        if acks:
            with self._lock:
                self._acks.extend(acks)
                for ev in acks:
                    if ev.ok and ev.kind == "patch":
                        self._applied.update(ev.applied)
        if self._on_data is not None:
            self._on_data()

    def take_acks(self) -> list[tuple[Any, bool]]:
        """New control_ack events as (event, answers one of our requests); the pending ones are settled."""
        with self._lock:
            acks, self._acks = self._acks, []
        return [(ev, self.pending.pop(ev.request_id, None) is not None) for ev in acks]

    # ---- requests ------------------------------------------------------------------------------
    def request(self, kind: str, changes: dict[str, Any] | None = None) -> str:
        """Send save_now / patch / stop; the answer comes back as a control_ack (see take_acks)."""
        request_id = send_request(self.run_dir, kind, changes)
        self.pending[request_id] = kind
        return request_id

    def engine_config(self) -> dict[str, Any]:
        """The run's engine config: run_start's, or config.yaml before the run has started."""
        config = self.store.run_state().config
        if config:
            return dict(config)
        from engine.safe_yaml import YamlError, load_yaml_file

        try:
            data = load_yaml_file(self.run_dir / "config.yaml")
        except YamlError:  # missing or damaged: the panel shows no hot values rather than failing
            return {}
        return data if isinstance(data, dict) else {}

    def hot_values(self) -> dict[str, Any]:
        """The hot-patchable fields as the engine has them now: its start config plus accepted patches."""
        config = self.engine_config()
        with self._lock:
            config.update(self._applied)
        return {k: config[k] for k in sorted(HOT_PATCHABLE) if k in config}

    # ---- process and status --------------------------------------------------------------------
    def alive(self) -> bool:
        if self.launched_here:
            return self.orch.poll(self.name) is None
        return pid_alive(self.record.get("pid"))

    def liveness(self, now: float, hung_after: float = HUNG_AFTER_S) -> Liveness:
        if self.final is not None:
            return Liveness(self.final.status, self._ended_detail(self.final), False)
        alive = self.alive()
        if not alive:
            return Liveness("ending", "process gone; reading how it ended…", False)
        self.seen_alive = True
        rs = self.store.run_state()
        last = rs.last_event_time or self.record.get("started")
        quiet = now - last if isinstance(last, int | float) else None
        if quiet is not None and quiet > hung_after:
            return Liveness("hung", f"no telemetry for {duration(quiet)}: hung? (x stops it)", True)
        if self.stopping:
            return Liveness("stopping", "stop requested: saving, then exiting…", True)
        if rs.status == "waiting":
            return Liveness("starting", f"pid {self.record.get('pid', '?')}: waiting for the first event…", True)
        if rs.status in ENDED:
            return Liveness("ending", f"run_end {rs.status}: process exiting…", True)
        return Liveness("running", f"pid {self.record.get('pid', '?')}", True)

    def finalize(self) -> RunInfo | None:
        """How the run ended, from its files (blocking: call off the UI thread). None while it still lives."""
        info = self.orch.info(self.name)
        if info.status in ("running", "hung"):
            return None
        self.final = info
        return info

    @staticmethod
    def _ended_detail(info: RunInfo) -> str:
        code = f"exit code {info.exit_code}" if info.exit_code is not None else "exit code unknown"
        if info.status in ("failed", "crashed"):
            return f"{code}: {info.error or 'no error reported'} (e for details)"
        done = f"step {info.step}/{info.total} in {duration(info.elapsed)}"
        return done if info.exit_code in (None, 0) else f"{done}, {code}"
