"""One status model for a run, whoever asks (`runs list`, `runs attach`, headless train, the Train tab).

A run is *running* while any of its processes lives and telemetry keeps coming, *hung* while they live
but nothing came for `hung_after_s` (one threshold: the run's `telemetry.hung_after_s`, recorded in
run.json at launch), and once every process is gone it *finished*, *stopped* or *failed* as its run_end
event says, or *crashed* when it died without one. *unknown*: no process was ever recorded and no
run_end was written (a folder the orchestrator did not start).

`RunSummary` folds telemetry events one at a time, so a follower feeds it as lines arrive and a
listing replays a file once; `classify` turns (alive, summary, quiet time) into the status.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nanochat_cli.services.config.schema import DEFAULT_HUNG_AFTER_S, HUNG_KEY

RUNNING, HUNG = "running", "hung"
FINISHED, STOPPED, FAILED, CRASHED, UNKNOWN = "finished", "stopped", "failed", "crashed", "unknown"
ACTIVE = (RUNNING, HUNG)  # a process of the run lives
ENDED = (FINISHED, STOPPED, FAILED, CRASHED, UNKNOWN)

# the one hung threshold is a config field (telemetry.hung_after_s); its key and default live with the schema
__all__ = ["ACTIVE", "CRASHED", "DEFAULT_HUNG_AFTER_S", "ENDED", "FAILED", "FINISHED", "HUNG", "HUNG_KEY", "RUNNING",
           "STOPPED", "UNKNOWN", "RunInfo", "RunSummary", "classify", "hung_after"]


def hung_after(record: dict[str, Any]) -> float:
    """The run's hung threshold: what its launch recorded, else the default."""
    value = record.get("hung_after_s")
    return float(value) if isinstance(value, int | float) and value > 0 else DEFAULT_HUNG_AFTER_S


@dataclass
class RunSummary:
    """What the telemetry says so far; `add` one event at a time (replay once, then follow)."""

    run: str = ""
    step: int = 0
    total: int = 0
    loss: float | None = None
    val_bpb: float | None = None
    elapsed: float | None = None
    eta: float | None = None
    error: str | None = None
    started: float | None = None  # run_start's time
    last_event_time: float | None = None
    end_status: str | None = None  # run_end's status
    end_reason: str = ""

    def add(self, ev: Any) -> None:
        kind = getattr(ev, "event", None)
        self.last_event_time = getattr(ev, "time", None) or self.last_event_time
        if kind == "run_start":
            self.run, self.total, self.started = ev.run, ev.num_iterations, ev.time
            self.step = ev.resumed_from_step or 0
            self.end_status, self.end_reason = None, ""  # a resumed run starts over
        elif kind == "step":
            self.step, self.total, self.loss, self.elapsed, self.eta = ev.step, ev.total, ev.loss, ev.elapsed, ev.eta
        elif kind == "eval" and ev.val_bpb is not None:
            self.val_bpb = ev.val_bpb
        elif kind == "error":
            self.error = ev.message
        elif kind == "run_end":
            self.end_status, self.end_reason, self.step, self.elapsed = ev.status, ev.reason, ev.step, ev.elapsed

    def extend(self, events: Any) -> None:
        for ev in events:
            self.add(ev)


def classify(*, alive: bool, summary: RunSummary, launched: bool, quiet_s: float | None,
             hung_after_s: float) -> str:
    """The status from what is known now. `quiet_s`: seconds since the newest event (or the launch)."""
    if alive:
        return HUNG if quiet_s is not None and quiet_s > hung_after_s else RUNNING
    if summary.end_status is not None:
        return summary.end_status
    return CRASHED if launched else UNKNOWN


@dataclass
class RunInfo:
    """What we know about one run, from its files and processes alone (works after the app restarts)."""

    name: str
    run_dir: Path
    status: str  # running | hung | finished | stopped | failed | crashed | unknown
    pid: int | None = None
    step: int = 0
    total: int = 0
    loss: float | None = None
    val_bpb: float | None = None
    started: float | None = None
    elapsed: float | None = None
    error: str | None = None
    exit_code: int | None = None
    command: str = ""
    hung_after_s: float = DEFAULT_HUNG_AFTER_S
    pids: list[int] = field(default_factory=list)  # processes of the run alive when this was made
    record: dict[str, Any] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        return self.status in ACTIVE
