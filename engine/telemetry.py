"""The telemetry protocol: typed events the trainer appends to `<run_dir>/telemetry.jsonl`, one line each.

This is the only thing the TUI needs to watch a run. Rank 0 writes with `TelemetryWriter`; the TUI tails
the file with `TelemetryReader`. Every event carries `v` (schema version), `event` (its kind), `time` and
`run`. Additive fields keep `v`; a breaking change bumps `SCHEMA_VERSION` and older readers refuse the
newer lines instead of misreading them. Torch-free so the TUI imports it cheaply. See docs/protocol.md.
"""

from __future__ import annotations

import json
import os
import threading
import time
import traceback as tb
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator, model_validator

from engine.errors import EngineError
from engine.shared import one_line

SCHEMA_VERSION = 1
TELEMETRY_FILE = "telemetry.jsonl"
# longest line a reader parses; a longer one is one bad line (no event is anywhere near this: a run_start with
# its config is a few KB, an error's traceback tens of KB)
MAX_LINE_BYTES = 1 << 20


class EventParseError(EngineError, ValueError):
    """A telemetry line that is not a valid event (bad JSON, unknown event, wrong fields)."""


class NewerSchemaError(EventParseError):
    """A line written by a newer engine (schema version above ours): upgrade the reader."""


# -----------------------------------------------------------------------------
# events


class _Event(BaseModel):
    # extra="ignore": a newer writer may add fields without bumping v; NaN/inf serialize as "NaN"/"Infinity"
    model_config = ConfigDict(extra="ignore", ser_json_inf_nan="strings")

    v: int = Field(SCHEMA_VERSION, ge=1, le=SCHEMA_VERSION)
    time: float = Field(default_factory=time.time)
    run: str = ""  # filled in by the writer


class RunStartEvent(_Event):
    event: Literal["run_start"] = "run_start"
    config: dict[str, Any]
    world_size: int
    device: str
    dtype: str
    num_params: int
    num_flops_per_token: float
    num_iterations: int
    tokens_per_step: int
    engine_version: str
    pid: int
    run_dir: str
    resumed_from_step: int | None = None
    startup: dict[str, float] = Field(default_factory=dict)  # phase -> Unix time it ended (engine/startup.py)
    stage: str = "base"  # pipeline stage of the module that wrote it: base, sft, rl, eval


class StepEvent(_Event):
    event: Literal["step"] = "step"
    step: int
    total: int
    loss: float
    smooth_loss: float
    lr_mult: float
    muon_momentum: float
    tokens_per_sec: float
    mfu: float | None = None  # fraction of peak (0..1); only where the device's peak FLOPs are known
    dt: float
    t_data: float
    t_fwd_bwd: float
    t_optim: float
    mem_bytes: int
    tokens_seen: int
    elapsed: float
    eta: float | None = None


class EvalEvent(_Event):
    event: Literal["eval"] = "eval"
    step: int
    val_bpb: float | None = None  # pretraining: bits per byte on validation text
    val_loss: float | None = None  # SFT and others: mean loss per trained token on held-out data

    @model_validator(mode="after")
    def _one_measure(self) -> EvalEvent:
        if self.val_bpb is None and self.val_loss is None:
            raise ValueError("val_bpb or val_loss: at least one is needed")
        return self


class SampleEvent(_Event):
    event: Literal["sample"] = "sample"
    step: int
    prompt: str
    text: str


class CheckpointEvent(_Event):
    event: Literal["checkpoint"] = "checkpoint"
    step: int
    path: str
    reason: Literal["periodic", "final", "request", "stop"]
    seconds: float
    bytes: int


class ControlAckEvent(_Event):
    event: Literal["control_ack"] = "control_ack"
    request_id: str
    kind: str
    ok: bool
    message: str
    step: int
    applied: dict[str, Any] = Field(default_factory=dict)


class WarningEvent(_Event):
    event: Literal["warning"] = "warning"
    message: str


class ErrorEvent(_Event):
    event: Literal["error"] = "error"
    message: str
    traceback: str = ""
    step: int | None = None

    @field_validator("message")
    @classmethod
    def _one_line(cls, m: str) -> str:
        if "\n" in m:
            raise ValueError("must be one line (put details in traceback)")
        return m

    @classmethod
    def from_exception(cls, exc: BaseException, step: int | None = None) -> ErrorEvent:
        return cls(message=one_line(exc), traceback="".join(tb.format_exception(exc)), step=step)


class RunEndEvent(_Event):
    event: Literal["run_end"] = "run_end"
    status: Literal["finished", "stopped", "failed"]
    reason: str
    step: int
    elapsed: float


class SinkStatusEvent(_Event):
    """Health of one external sink (W&B, OpenTelemetry): sent at start, on each heartbeat and at close."""

    event: Literal["sink_status"] = "sink_status"
    sink: Literal["wandb", "otel"]
    ok: bool
    detail: str
    url: str | None = None  # the W&B run page (online); None offline and for OTel


class RolloutSample(BaseModel):
    model_config = ConfigDict(extra="ignore", ser_json_inf_nan="strings")
    prompt: str
    response: str
    reward: float


class RolloutEvent(_Event):
    """One RL step's rollouts: K samples per prompt, their rewards and a few of them to show."""

    event: Literal["rollout"] = "rollout"
    step: int
    prompts: int
    k: int  # samples per prompt
    reward_mean: float
    reward_std: float
    pass_at_k: dict[str, float] = Field(default_factory=dict)  # "1", "4", ... -> share of prompts solved
    mean_len: float  # sampled tokens per answer
    max_len: int
    tool_call_rate: float  # share of samples that called a tool
    samples: list[RolloutSample] = Field(default_factory=list)


class EvalResultEvent(_Event):
    """One task's score from an evaluation stage (CORE-style base eval, chat eval, ...)."""

    event: Literal["eval_result"] = "eval_result"
    suite: str  # "core", "chat", ...
    task: str
    metric: str  # "accuracy", "pass@1", ...
    value: float
    n: int  # examples scored
    baseline: float | None = None  # random-guess score of the task, where it has one
    centered: float | None = None  # (value - baseline) / (1 - baseline)
    step: int | None = None
    checkpoint: str | None = None


class PluginEvent(_Event):
    """An event of a plugin's own: `plugin` names it, `kind` says what `data` holds (documented by the plugin)."""

    event: Literal["plugin"] = "plugin"
    plugin: str
    kind: str
    step: int | None = None
    data: dict[str, Any] = Field(default_factory=dict)


_EVENT_CLASSES = (RunStartEvent, StepEvent, EvalEvent, SampleEvent, CheckpointEvent, ControlAckEvent,
                  WarningEvent, ErrorEvent, RunEndEvent, SinkStatusEvent, RolloutEvent, EvalResultEvent, PluginEvent)
EVENT_TYPES: dict[str, type[_Event]] = {c.model_fields["event"].default: c for c in _EVENT_CLASSES}
Event = Annotated[
    RunStartEvent | StepEvent | EvalEvent | SampleEvent | CheckpointEvent | ControlAckEvent | WarningEvent
    | ErrorEvent | RunEndEvent | SinkStatusEvent | RolloutEvent | EvalResultEvent | PluginEvent,
    Field(discriminator="event"),
]
_adapter: TypeAdapter[Event] = TypeAdapter(Event)


def parse_event(line: str | bytes) -> Event:
    """One JSON line -> its event model. Raises EventParseError (NewerSchemaError for a newer v), whatever
    the line holds: too long, nested too deep for any parser, not UTF-8."""
    if len(line) > MAX_LINE_BYTES:
        raise EventParseError(f"telemetry line: {len(line):,} bytes, over the {MAX_LINE_BYTES:,}-byte limit: "
                              f"{_clip(line)}")
    try:
        return _adapter.validate_json(line)
    except ValidationError as e:
        raise _diagnose(line, e) from None
    except (RecursionError, ValueError) as e:  # pydantic-core's own depth limit or a decoder error
        raise EventParseError(f"telemetry line: not a valid event ({type(e).__name__}): {_clip(line)}") from None


def _diagnose(line: str | bytes, err: ValidationError) -> EventParseError:
    # slow path, bad lines only: name the most useful cause, version first (a newer engine may add events)
    try:
        data = json.loads(line)
    except RecursionError:
        return EventParseError(f"telemetry line: JSON nested too deep: {_clip(line)}")
    except ValueError as e:
        return EventParseError(f"telemetry line: not valid JSON ({e}): {_clip(line)}")
    if not isinstance(data, dict):
        return EventParseError(f"telemetry line: expected a JSON object: {_clip(line)}")
    v = data.get("v")
    if isinstance(v, int) and v > SCHEMA_VERSION:
        return NewerSchemaError(f"telemetry line: schema v{v} is newer than this reader's v{SCHEMA_VERSION}: "
                                "upgrade nanochat-cli")
    name = data.get("event")
    if name not in EVENT_TYPES:
        known = ", ".join(EVENT_TYPES)
        return EventParseError(f"telemetry line: unknown event {name!r}: expected one of {known}")
    first = err.errors()[0]
    field = ".".join(str(p) for p in first["loc"][1:]) or "event"
    return EventParseError(f"telemetry line: {name}.{field}: {first['msg']}: {_clip(line)}")


def _clip(line: str | bytes, n: int = 120) -> str:
    s = line.decode("utf-8", "replace") if isinstance(line, bytes) else line
    return s if len(s) <= n else s[:n] + "…"


# -----------------------------------------------------------------------------
# writer (trainer, rank 0)


class TelemetryWriter:
    """Appends validated events to a JSONL file, one flushed line each. A no-op when disabled (ranks != 0)."""

    def __init__(self, path: str | Path, run: str, enabled: bool = True):
        self.path = Path(path)
        self.run = run
        self.enabled = enabled
        self._lock = threading.Lock()  # the trainer may emit from a checkpoint thread too
        self._f = None
        self.listeners: list[Callable[[_Event], None]] = []  # get each written event (e.g. engine.sinks)
        if enabled:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._f = open(self.path, "a", buffering=1, encoding="utf-8")

    def emit(self, event: str | _Event, /, **fields: Any) -> _Event | None:
        """emit("step", step=1, ...) or emit(StepEvent(...)). Returns the event written (None if disabled)."""
        if not self.enabled:
            return None
        if isinstance(event, str):
            cls = EVENT_TYPES.get(event)
            if cls is None:
                raise EngineError(f"telemetry: unknown event {event!r}: use one of {', '.join(EVENT_TYPES)}")
            unknown = sorted(set(fields) - cls.model_fields.keys())
            if unknown:
                raise EngineError(f"telemetry: {event}: unknown fields {unknown}: see docs/protocol.md")
            try:
                ev = cls(run=self.run, **fields)
            except ValidationError as e:
                err = e.errors()[0]
                field = ".".join(map(str, err["loc"]))
                raise EngineError(f"telemetry: {event}.{field}: {err['msg']}") from None
        else:
            if fields:
                raise EngineError("telemetry: emit(model) takes no extra fields: set them on the model")
            ev = event if event.run == self.run else event.model_copy(update={"run": self.run})
        line = ev.model_dump_json() + "\n"
        with self._lock:
            if self._f is None:
                raise EngineError(f"telemetry: {self.path}: writer is closed: emit before close()")
            self._f.write(line)  # line-buffered: the newline flushes it
        for listener in self.listeners:  # outside the lock: a listener may emit (sink_status) itself
            listener(ev)
        return ev

    def close(self) -> None:
        with self._lock:
            if self._f is not None:
                self._f.close()
                self._f = None

    def __enter__(self) -> TelemetryWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -----------------------------------------------------------------------------
# reader (TUI)


class TelemetryReader:
    """Incremental tail of a telemetry file: each read_new() returns the events of newly completed lines.

    A partial last line (no newline yet) waits for the next call. Bad lines are counted in `.malformed`
    (the last reason in `.last_error`) and skipped, one count per line whatever it holds: a line over
    MAX_LINE_BYTES is skipped up to its newline without being held in memory. If the file shrinks (replaced
    by a new run) the reader starts over from the top and counts it in `.restarts`.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.offset = 0  # byte offset just past the last complete line consumed
        self.malformed = 0
        self.last_error: str | None = None
        self.restarts = 0
        self._overlong = False  # inside a line past MAX_LINE_BYTES: skip up to its newline

    def replay(self) -> None:
        """Start again from the first line (the next read_new returns the whole file)."""
        self.offset = 0
        self.malformed = 0
        self.last_error = None
        self._overlong = False

    def read_new(self, max_bytes: int | None = None) -> list[Event]:
        """Events of the lines completed since the last call; at most ~max_bytes of them when given
        (so replaying a huge file needs little memory: call again until it returns [])."""
        while True:
            events, skipped = self._read(max_bytes)
            if events or not skipped:  # [] after skipping an overlong line would look like "caught up"
                return events

    def _read(self, max_bytes: int | None) -> tuple[list[Event], bool]:
        try:
            size = os.stat(self.path).st_size
        except FileNotFoundError:
            return [], False
        if size < self.offset:
            self.restarts += 1
            self.replay()
        if size == self.offset:
            return [], False
        budget = size - self.offset if max_bytes is None else min(size - self.offset, max_bytes)
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            chunk = f.read(budget)
            end = chunk.rfind(b"\n")
            # one line longer than max_bytes: read on to its end, but never past the line limit
            while end < 0 and f.tell() < size and len(chunk) <= MAX_LINE_BYTES:
                more = f.read(budget)
                nl = more.find(b"\n")
                end = len(chunk) + nl if nl >= 0 else -1
                chunk += more
        if end < 0:
            if len(chunk) > MAX_LINE_BYTES:  # no newline within the limit: drop what we have, skip to the next
                self.offset += len(chunk)
                self._bad_overlong(len(chunk))
                return [], True
            return [], False  # a partial last line: wait for its newline
        self.offset += end + 1
        lines = chunk[: end + 1].split(b"\n")
        if self._overlong:  # the tail of an overlong line, already counted
            lines = lines[1:]
            self._overlong = False
        events: list[Event] = []
        for raw in lines:
            if not raw.strip():
                continue
            try:
                events.append(parse_event(raw))
            except Exception as e:  # noqa: BLE001 — any line that does not parse is one bad line, never fatal
                self.malformed += 1
                self.last_error = str(e) if isinstance(e, EventParseError) else \
                    f"telemetry line: not a valid event ({type(e).__name__}): {_clip(raw)}"
        return events, True

    def _bad_overlong(self, n: int) -> None:
        if not self._overlong:
            self._overlong = True
            self.malformed += 1
            self.last_error = f"telemetry line: over the {MAX_LINE_BYTES:,}-byte limit, skipped to its newline"
