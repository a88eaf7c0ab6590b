"""Follow a run from its telemetry: what `nanochat-cli train` (headless) and `runs attach` print.

Plain Python: `poll()` reads only the bytes appended since the last call (TelemetryReader keeps the
offset; the history is replayed once, on the first poll), folds each event into a RunSummary and an
EtaEstimator, and hands back `Line`s worded by `describe` (the Events panel's words). `ended()` asks
the one liveness check, never re-reading the file. The caller renders (rich, plain) and sleeps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.telemetry import TelemetryReader
from nanochat_cli.services.ingest.describe import describe, sink_fields
from nanochat_cli.services.ingest.eta import EtaEstimator
from nanochat_cli.services.runs.orchestrator import RunOrchestrator
from nanochat_cli.services.runs.status import RunInfo, RunSummary
from nanochat_cli.services.text import duration, printable

CHUNK_BYTES = 1 << 20  # a long history is replayed in parts, so the first lines show at once


@dataclass(frozen=True)
class Line:
    level: str  # info | warn | error
    text: str  # printable, one line


@dataclass(frozen=True)
class Progress:
    step: int
    total: int
    loss: float
    tokens_per_sec: float
    elapsed: float  # training time the engine reports (since its process started)
    eta: float | None  # None while estimating

    @property
    def eta_text(self) -> str:
        return duration(self.eta) if self.eta is not None else "estimating…"


def step_line(ev: Any, eta: float | None) -> str:
    """The plain progress line for a step (when stdout is not a terminal)."""
    eta_s = duration(eta) if eta is not None else "estimating"
    return (f"step {ev.step:05d}/{ev.total:05d} | loss {ev.loss:.4f} (smooth {ev.smooth_loss:.4f}) | "
            f"lrm {ev.lr_mult:.2f} | {ev.tokens_per_sec:,.0f} tok/s | dt {ev.dt * 1000:.0f} ms | "
            f"elapsed {duration(ev.elapsed)} | eta {eta_s}")


class Follower:
    """One run's telemetry, followed from a byte offset. Not thread-safe: poll from one thread."""

    def __init__(self, orch: RunOrchestrator, name: str, log_every: int = 10):
        self.orch, self.name = orch, name
        self.run = orch.run(name)
        self.reader = TelemetryReader(self.run.telemetry_path)
        self.summary = RunSummary()
        self.eta = EtaEstimator()
        self.log_every = max(1, log_every)
        self.progress: Progress | None = None
        self._sinks: dict[str, str] = {}  # sink -> last state printed (changes only, not heartbeats)
        self._behind = False
        self._world_size = 1  # from run_start: a checkpoint's bytes are rank 0's share when > 1

    def poll(self, max_bytes: int | None = CHUNK_BYTES) -> tuple[list[Line], list[str]]:
        """New events since the last call: (event lines, plain step lines every `log_every` steps)."""
        lines: list[Line] = []
        steps: list[str] = []
        before = self.reader.offset
        events = self.reader.read_new(max_bytes=max_bytes)
        self._behind = max_bytes is not None and self.reader.offset - before >= max_bytes // 2
        for ev in events:
            self.summary.add(ev)
            kind = ev.event
            if kind == "step":
                self.eta.add(ev.step, ev.elapsed)
                eta = self.eta.eta(ev.total)
                self.progress = Progress(ev.step, ev.total, ev.loss, ev.tokens_per_sec, ev.elapsed, eta)
                if ev.step % self.log_every == 0 or ev.step == ev.total:
                    steps.append(step_line(ev, eta))
                continue
            if kind == "run_start":
                self.eta.restart()
                self.progress = None
                self._world_size = ev.world_size
            if kind == "sink_status":
                name, state, _, _ = sink_fields(ev)
                if self._sinks.get(name) == state:
                    continue
                self._sinks[name] = state
            line = describe(ev, self._world_size)
            if line is not None:
                # run_end and control_ack words already say how it went; warnings and errors get a label
                label = "" if kind in ("run_end", "control_ack") else {"warn": "warning: ",
                                                                        "error": "error: "}.get(line.level, "")
                said = kind in ("checkpoint", "run_end")  # their words name the step already
                where = f"step {line.step}: " if line.step is not None and not said else ""
                lines.append(Line(line.level, where + label + line.message))
        return lines, steps

    def caught_up(self) -> bool:
        """False while the last poll read a whole chunk (a long history comes in parts: read on)."""
        return not self._behind

    def ended(self) -> int | None:
        """The exit code once every process of the run is gone (None while one lives); no replay."""
        return self.orch.exited(self.name, self.summary)

    def info(self) -> RunInfo:
        """How the run stands, from what was followed (no replay)."""
        return self.orch.info(self.name, summary=self.summary)

    @property
    def malformed_note(self) -> str | None:
        r = self.reader
        if not r.malformed:
            return None
        return printable(f"{r.malformed} malformed telemetry line(s) skipped ({r.last_error})", newlines=False)
