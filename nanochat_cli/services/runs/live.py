"""The run the Train tab watches: its telemetry feed, its processes, and the requests sent to it.

Textual-free, so the status logic is tested without a UI. Everything comes from the run dir (run.json,
telemetry, pids/) and the orchestrator, never from an earlier session's memory: close the TUI while a
run trains, open it again, and attaching replays the run's history and goes on live.

Status while a process of the run lives comes from the telemetry store and the one liveness check
(procs.run_processes) each second; once all are gone, `finalize()` (off the UI thread: it replays the
file) asks `RunOrchestrator.info` how the run ended, which tells a clean end from a crash (no run_end)
and carries the exit code. Requests go through `RunOrchestrator.request`, the one control path.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from engine.config import HOT_PATCHABLE
from nanochat_cli.services.ingest import RunFeed
from nanochat_cli.services.registry import REGISTRY
from nanochat_cli.services.runs.launch import LaunchSpec, dotted_config
from nanochat_cli.services.runs.orchestrator import RunOrchestrator
from nanochat_cli.services.runs.procs import run_processes
from nanochat_cli.services.runs.status import ACTIVE, ENDED, RunInfo, hung_after
from nanochat_cli.services.text import duration, printable


@dataclass(frozen=True)
class Liveness:
    status: str  # starting | running | hung | stopping | ending | finished | stopped | failed | crashed | unknown
    detail: str  # one line for the header
    alive: bool


class LiveRun:
    """One attached run. `on_data` is called on an ingest thread after each batch (wake the UI there)."""

    def __init__(self, orch: RunOrchestrator, name: str, *, on_data: Callable[[], None] | None = None,
                 sources: Iterable[str] | None = None, launched_here: bool = False,
                 spec: LaunchSpec | None = None, resolved: dict[str, Any] | None = None):
        self.orch, self.name = orch, name
        self.run = orch.run(name)
        self.run_dir = self.run.path
        self.record = self.run.record()
        self.hung_after_s = spec.hung_after_s if spec is not None else hung_after(self.record)
        self.launched_here = launched_here  # the orchestrator holds its Popen: exit codes come from there
        self.spec, self.resolved = spec, resolved
        self._on_data = on_data
        names = list(sources) if sources is not None else [e.name for e in REGISTRY.telemetry_sources()]
        self.feed = RunFeed(self.run_dir, sources=names, on_batch=self._on_batch)
        self.store = self.feed.store
        self.pending: dict[str, str] = {}  # request id -> kind, until the engine's control_ack arrives
        self.final: RunInfo | None = None  # how it ended, once every process is gone (finalize)
        self.seen_alive = False  # a process was alive while attached: a failure now is news (crash modal)
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
        request_id = self.orch.request(self.name, kind, changes)
        self.pending[request_id] = kind
        return request_id

    def engine_config(self) -> dict[str, Any]:
        """The run's engine config: run_start's, or config.yaml before the run has started."""
        config = self.store.run_state().config
        return dict(config) if config else self.run.config()

    def config(self) -> dict[str, Any]:
        """The run's dotted config for panel thresholds: as launched here, else rebuilt from the engine's."""
        return self.resolved or dotted_config(self.engine_config(), self.hung_after_s)

    def hot_values(self) -> dict[str, Any]:
        """The hot-patchable fields as the engine has them now: its start config plus accepted patches."""
        config = self.engine_config()
        with self._lock:
            config.update(self._applied)
        return {k: config[k] for k in sorted(HOT_PATCHABLE) if k in config}

    # ---- process and status --------------------------------------------------------------------
    def alive(self) -> bool:
        if self.launched_here:
            self.orch.poll(self.name)  # reap our child: a zombie launcher is a dead one
        return bool(run_processes(self.run, self.record))

    def liveness(self, now: float, hung_after_s: float | None = None) -> Liveness:
        if self.final is not None:
            return Liveness(self.final.status, self._ended_detail(self.final), False)
        if not self.alive():
            return Liveness("ending", "process gone; reading how it ended…", False)
        self.seen_alive = True
        rs = self.store.run_state()
        last = rs.last_event_time or self.record.get("started")
        quiet = now - last if isinstance(last, int | float) else None
        threshold = self.hung_after_s if hung_after_s is None else hung_after_s
        pid = self.record.get("pid", "?")
        if quiet is not None and quiet > threshold:
            return Liveness("hung", f"no telemetry for {duration(quiet)}: hung? (x stops it)", True)
        if self.stopping:
            return Liveness("stopping", "stop requested: saving, then exiting…", True)
        if rs.status == "waiting":
            return Liveness("starting", f"pid {pid}: waiting for the first event…", True)
        if rs.status in ENDED:
            return Liveness("ending", f"run_end {rs.status}: process exiting…", True)
        return Liveness("running", f"pid {pid}", True)

    def finalize(self) -> RunInfo | None:
        """How the run ended, from its files (blocking: call off the UI thread). None while it still lives."""
        info = self.orch.info(self.name)
        if info.status in ACTIVE:
            return None
        self.final = info
        return info

    @staticmethod
    def _ended_detail(info: RunInfo) -> str:
        code = f"exit code {info.exit_code}" if info.exit_code is not None else "exit code unknown"
        if info.status in ("failed", "crashed"):
            return f"{code}: {printable(info.error or 'no error reported', newlines=False)} (e for details)"
        done = f"step {info.step}/{info.total} in {duration(info.elapsed)}"
        return done if info.exit_code in (None, 0) else f"{done}, {code}"
