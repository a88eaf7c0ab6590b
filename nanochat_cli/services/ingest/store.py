"""MetricStore: what the panels draw, written by ingest threads and read by the UI thread.

Memory is fixed up front and does not grow with run length: each metric keeps its last `capacity`
points exactly (a numpy ring) plus a min/max envelope of the whole run (buckets that merge pairwise
when full, so a spike is never averaged away); the event log, samples and control acks are bounded
deques. One lock guards everything; writers apply whole batches under it and readers copy out small
results, so neither side holds it for long. Every change bumps `version`, and each key (a metric name,
or a topic: "run", "log", "samples", "acks", "sinks", "sources") remembers the version that last
touched it, so the UI can skip repainting panels whose data did not change.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from engine.telemetry import (
    CheckpointEvent,
    ControlAckEvent,
    ErrorEvent,
    EvalEvent,
    EvalResultEvent,
    RolloutEvent,
    RunEndEvent,
    RunStartEvent,
    SampleEvent,
    StepEvent,
    WarningEvent,
)
from nanochat_cli.services.ingest.describe import describe, sink_fields
from nanochat_cli.services.ingest.eta import EtaEstimator
from nanochat_cli.services.lazy_module import LazyModule

np = LazyModule("numpy")  # imported on first use: ~50 ms the app's first paint does not need

DEFAULT_CAPACITY = 4096  # exact points kept per metric; the envelope keeps capacity // 2 buckets of the rest
MAX_SERIES = 256  # a source inventing metric names cannot grow the store without bound
STEP_METRICS = ("loss", "smooth_loss", "lr_mult", "muon_momentum", "tokens_per_sec", "mfu", "dt", "t_data",
                "t_fwd_bwd", "t_optim", "mem_bytes")


PLUGIN_EVENTS = 512  # plugin events kept per plugin


@dataclass(frozen=True, slots=True)
class MetricPoint:
    """One value of a named series; what non-engine sources (system probe, plugins) deliver."""

    name: str
    x: float  # step for training metrics, unix time for machine metrics
    y: float


# -----------------------------------------------------------------------------
# series


class _Envelope:
    """Min and max point of each bucket of `stride` consecutive points; full → merge neighbours, double stride."""

    def __init__(self, buckets: int):
        self.size = max(2, buckets - buckets % 2)
        self.lo = np.full((self.size, 2), np.nan)  # (x, y) of each bucket's minimum
        self.hi = np.full((self.size, 2), np.nan)
        self.n = 0  # closed buckets
        self.stride = 1
        self._fill = 0  # points in the open bucket
        self._lo = [math.nan, math.inf]
        self._hi = [math.nan, -math.inf]

    def add(self, x: float, y: float) -> None:
        if y < self._lo[1]:  # NaN compares False both ways: it never becomes an extreme
            self._lo = [x, y]
        if y > self._hi[1]:
            self._hi = [x, y]
        self._fill += 1
        if self._fill == self.stride:
            self._close()

    def _close(self) -> None:
        lo, hi = self._lo, self._hi
        self.lo[self.n] = lo if math.isfinite(lo[1]) else (math.nan, math.nan)
        self.hi[self.n] = hi if math.isfinite(hi[1]) else (math.nan, math.nan)
        self.n += 1
        self._fill = 0
        self._lo, self._hi = [math.nan, math.inf], [math.nan, -math.inf]
        if self.n == self.size:
            self._merge()

    def _merge(self) -> None:
        half = self.size // 2
        for arr, pick in ((self.lo, np.fmin), (self.hi, np.fmax)):
            a, b = arr[0::2].copy(), arr[1::2].copy()
            y = pick(a[:, 1], b[:, 1])  # fmin/fmax ignore a NaN side
            take_b = (y == b[:, 1]) & (y != a[:, 1])
            arr[:half] = np.where(take_b[:, None], b, a)
            arr[half:] = np.nan
        self.n = half
        self.stride *= 2

    def points(self) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = self.lo[: self.n], self.hi[: self.n]
        if self._fill and math.isfinite(self._lo[1]):
            lo = np.vstack([lo, self._lo])
            hi = np.vstack([hi, self._hi])
        first = np.where((lo[:, 0] <= hi[:, 0])[:, None], lo, hi)  # keep x order within each bucket
        second = np.where((lo[:, 0] <= hi[:, 0])[:, None], hi, lo)
        pts = np.stack([first, second], axis=1).reshape(-1, 2)
        pts = pts[np.isfinite(pts[:, 1])]
        keep = np.ones(len(pts), dtype=bool)
        keep[1:] = (pts[1:] != pts[:-1]).any(axis=1)  # a bucket whose min is its max gives one point
        pts = pts[keep]
        return pts[:, 0].copy(), pts[:, 1].copy()


class Series:
    """One metric: the last `capacity` points exactly, and a min/max envelope of every point ever added."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY):
        self.capacity = capacity
        self._x = np.zeros(capacity)
        self._y = np.zeros(capacity)
        self._head = 0  # next slot to write
        self.count = 0  # points ever appended
        self._env = _Envelope(capacity // 2)

    def append(self, x: float, y: float) -> None:
        i = self._head
        self._x[i] = x
        self._y[i] = y
        self._head = 0 if i + 1 == self.capacity else i + 1
        self.count += 1
        self._env.add(x, y)

    def recent(self, last: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Copies of the newest `last` points (all kept ones by default), oldest first."""
        n = min(self.count, self.capacity)
        if last is not None:
            n = min(n, max(0, last))
        idx = (np.arange(self._head - n, self._head)) % self.capacity
        return self._x[idx], self._y[idx]

    def history(self) -> tuple[np.ndarray, np.ndarray]:
        """The whole run: exact while it fits the ring, else the min/max envelope (spikes kept)."""
        if self.count <= self.capacity:
            return self.recent()
        return self._env.points()


def minmax_decimate(xs: np.ndarray, ys: np.ndarray, width: int) -> list[tuple[float, float]]:
    """At most ~2*width points: split into `width` buckets, keep each bucket's min and max in x order.

    Non-finite values are dropped (a chart cannot draw them; the NaN threshold reports them instead).
    """
    xs, ys = np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)
    ok = np.isfinite(ys)
    xs, ys = xs[ok], ys[ok]
    n, width = len(ys), max(1, int(width))
    if n <= 2 * width:
        return list(zip(xs.tolist(), ys.tolist(), strict=True))
    k = -(-n // width)  # points per bucket
    padded = np.pad(ys, (0, k * width - n), mode="edge").reshape(width, k)
    base = np.arange(width) * k
    a = np.minimum(base + padded.argmin(axis=1), n - 1)
    b = np.minimum(base + padded.argmax(axis=1), n - 1)
    idx = np.unique(np.concatenate([a, b]))  # sorted, so x order is kept and duplicates vanish
    return list(zip(xs[idx].tolist(), ys[idx].tolist(), strict=True))


# -----------------------------------------------------------------------------
# what the store holds besides series


@dataclass
class RunState:
    run: str = ""
    status: str = "waiting"  # waiting | running | finished | stopped | failed
    step: int = 0
    total: int = 0
    tokens_seen: int = 0
    elapsed: float = 0.0
    eta: float | None = None  # seconds left, measured by EtaEstimator; None while estimating
    started: float | None = None  # unix time of run_start
    last_event_time: float | None = None  # unix time the newest event was made (its `time`)
    world_size: int = 0
    device: str = ""
    dtype: str = ""
    num_params: int = 0
    resumed_from_step: int | None = None
    last_checkpoint: str | None = None
    reason: str = ""  # run_end's reason
    error: str | None = None  # the last error event's message
    config: dict[str, Any] = field(default_factory=dict)  # run_start's resolved engine config
    stage: str = "base"  # run_start's pipeline stage: base, sft, rl, eval

    def live_elapsed(self, now: float) -> float:
        """Elapsed training time, advanced by the wall time since the last event while the run trains."""
        if self.status == "running" and self.last_event_time is not None:
            return self.elapsed + max(0.0, now - self.last_event_time)
        return self.elapsed


@dataclass(frozen=True, slots=True)
class LogEntry:
    time: float
    kind: str  # the event kind: eval, checkpoint, control_ack, warning, error, run_start, run_end, sink_status
    level: str  # info | warn | error
    message: str
    step: int | None = None


@dataclass(frozen=True, slots=True)
class Sample:
    step: int
    prompt: str
    text: str
    time: float


@dataclass(frozen=True, slots=True)
class RolloutAnswer:
    """One sampled answer of an RL step, with the reward the task gave it."""

    step: int
    prompt: str
    response: str
    reward: float


@dataclass(frozen=True, slots=True)
class EvalResult:
    """One task's score from an eval stage (the newest per suite and task is kept)."""

    suite: str
    task: str
    metric: str
    value: float
    n: int
    baseline: float | None = None
    centered: float | None = None
    step: int | None = None


ROLLOUT_METRICS = ("reward_mean", "reward_std", "mean_len", "max_len", "tool_call_rate")


@dataclass(frozen=True)
class SinkStatus:
    """W&B or OTLP as far as the TUI can tell: the engine writes to them; we show what it reports."""

    name: str  # "wandb" | "otel"
    state: str  # disabled | configured (no report yet) | ok | degraded | down
    detail: str = ""
    url: str | None = None  # W&B run page, when the engine reports one
    heartbeat: float | None = None  # unix time of the engine's last report on this sink


@dataclass(frozen=True)
class SourceHealth:
    name: str
    state: str  # idle | watching | polling | stopped | error
    malformed: int = 0  # lines that were not valid events
    last_error: str | None = None  # one line
    restarts: int = 0  # times the file shrank and was read again from the top
    detail: str = ""


@dataclass(frozen=True)
class Counters:
    events: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    malformed: int = 0  # summed over sources
    last_error: str | None = None  # the newest one line from any source
    dropped_series: int = 0  # points for new metric names past MAX_SERIES


@dataclass(frozen=True)
class StoreSnapshot:
    """A consistent copy of everything but the series (fetch those per panel with decimate)."""

    version: int
    run: RunState
    latest: dict[str, float]
    counters: Counters
    sinks: dict[str, SinkStatus]
    sources: dict[str, SourceHealth]


# -----------------------------------------------------------------------------
# the store


class MetricStore:
    """Thread-safe metric store. Writers: apply(batch), append(). Readers: snapshot(), decimate(), ..."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY, log_size: int = 1000, samples_size: int = 64,
                 acks_size: int = 256, answers_size: int = 64, results_size: int = 256):
        self.capacity = capacity
        self._acks_size = acks_size
        self._results_size = results_size
        self._lock = threading.Lock()
        self._log: deque[LogEntry] = deque(maxlen=log_size)
        self._samples: deque[Sample] = deque(maxlen=samples_size)
        self._answers: deque[RolloutAnswer] = deque(maxlen=answers_size)
        self._version = 0
        self._clear()

    def _clear(self) -> None:
        self._series: dict[str, Series] = {}
        self._latest: dict[str, float] = {}
        self._versions: dict[str, int] = {}
        self._run = RunState()
        self._log.clear()
        self._samples.clear()
        self._answers.clear()
        self._results: OrderedDict[tuple[str, str], EvalResult] = OrderedDict()
        self._acks: OrderedDict[str, ControlAckEvent] = OrderedDict()
        self._events = 0
        self._by_kind: dict[str, int] = {}
        self._dropped = 0
        self._sinks: dict[str, SinkStatus] = {}
        self._sources: dict[str, SourceHealth] = {}
        self._eta = EtaEstimator()
        self._plugin_events: dict[str, deque[Any]] = {}

    # --- writing

    def apply(self, items: Iterable[Any]) -> int:
        """Apply a batch of telemetry events and MetricPoints; returns how many were events."""
        n = 0
        with self._lock:
            self._version += 1
            for item in items:
                if isinstance(item, MetricPoint):
                    self._point(item.name, item.x, item.y)
                    continue
                kind = getattr(item, "event", None)
                handler = _HANDLERS.get(kind)
                if handler is not None:  # other kinds (a newer engine's) are counted but not drawn
                    handler(self, item)
                self._events += 1
                self._by_kind[kind] = self._by_kind.get(kind, 0) + 1
                self._run.last_event_time = getattr(item, "time", None) or self._run.last_event_time
                n += 1
            if n:
                self._touch("run")
        return n

    def append(self, name: str, x: float, y: float) -> None:
        """Add one point to a series (for sources that are not engine telemetry)."""
        with self._lock:
            self._version += 1
            self._point(name, x, y)

    def set_source_health(self, health: SourceHealth) -> None:
        with self._lock:
            if self._sources.get(health.name) != health:
                self._version += 1
                self._sources[health.name] = health
                self._touch("sources")

    def reset(self) -> None:
        """Forget everything (the telemetry file was replaced by a new run); version keeps counting up."""
        with self._lock:
            self._clear()
            self._version += 1

    def _touch(self, key: str) -> None:
        self._versions[key] = self._version

    def _point(self, name: str, x: float, y: float) -> None:
        s = self._series.get(name)
        if s is None:
            if len(self._series) >= MAX_SERIES:
                self._dropped += 1
                return
            s = self._series[name] = Series(self.capacity)
        s.append(x, y)
        self._latest[name] = y
        self._versions[name] = self._version

    def _log_event(self, ev: Any) -> None:
        """The event's line (describe: the same words the headless follower prints) into the log."""
        line = describe(ev, self._run.world_size)
        if line is not None:
            self._log.append(LogEntry(ev.time, ev.event, line.level, line.message, line.step))
            self._touch("log")

    # --- per event kind (called under the lock)

    def _on_step(self, ev: StepEvent) -> None:
        x = ev.step
        for name in STEP_METRICS:
            y = getattr(ev, name)
            if y is not None:
                self._point(name, x, float(y))
        r = self._run
        self._eta.add(ev.step, ev.elapsed)
        r.step, r.total, r.tokens_seen, r.elapsed = ev.step, ev.total, ev.tokens_seen, ev.elapsed
        r.eta = self._eta.eta(ev.total)
        if r.status == "waiting":
            r.status = "running"

    def _on_eval(self, ev: EvalEvent) -> None:
        if ev.val_bpb is not None:
            self._point("val_bpb", ev.step, ev.val_bpb)
        if ev.val_loss is not None:
            self._point("val_loss", ev.step, ev.val_loss)
        self._log_event(ev)

    def _on_sample(self, ev: SampleEvent) -> None:
        self._samples.append(Sample(ev.step, ev.prompt, ev.text, ev.time))
        self._touch("samples")

    def _on_rollout(self, ev: RolloutEvent) -> None:
        for name in ROLLOUT_METRICS:
            self._point(name, ev.step, float(getattr(ev, name)))
        ks = sorted((int(k), v) for k, v in ev.pass_at_k.items() if str(k).isdigit())
        if ks:  # pass@1 and pass@k at the largest k sampled (the panel's two lines)
            self._point("pass_at_1", ev.step, float(dict(ks).get(1, ks[0][1])))
            self._point("pass_at_k", ev.step, float(ks[-1][1]))
        for sample in ev.samples:
            self._answers.append(RolloutAnswer(ev.step, sample.prompt, sample.response, sample.reward))
        self._touch("rollouts")
        r = self._run
        if ev.step > r.step:
            r.step = ev.step
        if r.status == "waiting":
            r.status = "running"

    def _on_eval_result(self, ev: EvalResultEvent) -> None:
        key = (ev.suite, ev.task)
        self._results.pop(key, None)
        self._results[key] = EvalResult(ev.suite, ev.task, ev.metric, ev.value, ev.n, ev.baseline, ev.centered,
                                        ev.step)
        while len(self._results) > self._results_size:
            self._results.popitem(last=False)
        self._touch("results")
        self._log_event(ev)

    def _on_run_start(self, ev: RunStartEvent) -> None:
        self._run = RunState(
            run=ev.run, status="running", step=ev.resumed_from_step or 0, total=ev.num_iterations,
            started=ev.time, world_size=ev.world_size, device=ev.device, dtype=ev.dtype, num_params=ev.num_params,
            resumed_from_step=ev.resumed_from_step, last_checkpoint=self._run.last_checkpoint, config=ev.config,
            stage=getattr(ev, "stage", "base"))  # older writers have no stage
        self._eta.restart()
        self._log_event(ev)
        self._sinks = _sinks_from_config(ev.config, self._sinks)
        self._touch("sinks")

    def _on_checkpoint(self, ev: CheckpointEvent) -> None:
        self._run.last_checkpoint = ev.path
        self._log_event(ev)

    def _on_ack(self, ev: ControlAckEvent) -> None:
        self._acks[ev.request_id] = ev
        self._acks.move_to_end(ev.request_id)
        while len(self._acks) > self._acks_size:
            self._acks.popitem(last=False)
        self._touch("acks")
        self._log_event(ev)

    def _on_warning(self, ev: WarningEvent) -> None:
        self._log_event(ev)

    def _on_error(self, ev: ErrorEvent) -> None:
        self._run.error = ev.message
        self._log_event(ev)

    def _on_run_end(self, ev: RunEndEvent) -> None:
        r = self._run
        r.status, r.reason, r.step, r.elapsed, r.eta = ev.status, ev.reason, ev.step, ev.elapsed, 0.0
        self._log_event(ev)

    def _on_sink_status(self, ev: Any) -> None:
        # an engine that reports its sinks (W&B, OTLP) sends these; read leniently, fields are additive
        name, state, detail, url = sink_fields(ev)
        prev = self._sinks.get(name)
        url = url or (prev.url if prev else None)
        self._sinks[name] = SinkStatus(name, state, detail, url, ev.time)
        self._touch("sinks")
        if prev is None or prev.state != state:  # log changes, not every heartbeat
            self._log_event(ev)

    # --- reading

    @property
    def version(self) -> int:
        return self._version

    def key_version(self, key: str) -> int:
        """Version that last changed `key` (a metric or topic); `prefix*` matches every key with that prefix."""
        with self._lock:
            if key.endswith("*"):
                p = key[:-1]
                return max((v for k, v in self._versions.items() if k.startswith(p)), default=0)
            return self._versions.get(key, 0)

    def changed(self, keys: Iterable[str], since: int) -> bool:
        """Has any of `keys` changed after version `since`? (Panels repaint only then.)"""
        return any(self.key_version(k) > since for k in keys)

    def latest(self, name: str) -> float | None:
        with self._lock:
            return self._latest.get(name)

    def series_names(self) -> list[str]:
        with self._lock:
            return list(self._series)

    def count(self, name: str) -> int:
        """Points ever appended to `name` (0 if unknown)."""
        with self._lock:
            s = self._series.get(name)
            return s.count if s else 0

    def window(self, name: str, last: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Exact newest points of a series (at most `capacity`), oldest first; empty arrays if unknown."""
        with self._lock:
            s = self._series.get(name)
            return s.recent(last) if s else (np.empty(0), np.empty(0))

    def decimate(self, name: str, width: int, last: int | None = None) -> list[tuple[float, float]]:
        """Points to draw `name` in a chart `width` columns wide: the whole run, or its newest `last` points."""
        with self._lock:
            s = self._series.get(name)
            if s is None:
                return []
            xs, ys = s.history() if last is None else s.recent(last)
        return minmax_decimate(xs, ys, width)

    def run_state(self) -> RunState:
        with self._lock:
            return replace(self._run)

    def log(self, last: int | None = None) -> list[LogEntry]:
        with self._lock:
            entries = list(self._log)
        return entries if last is None else entries[-last:]

    def plugin_events(self, plugin: str, kind: str | None = None, last: int | None = None) -> list[Any]:
        """The newest `plugin` events of one plugin (of one kind), oldest first (PLUGIN_EVENTS each at most)."""
        with self._lock:
            events = list(self._plugin_events.get(plugin, ()))
        if kind is not None:
            events = [e for e in events if e.kind == kind]
        return events if last is None else events[-last:]

    def samples(self) -> list[Sample]:
        with self._lock:
            return list(self._samples)

    def answers(self) -> list[RolloutAnswer]:
        """The newest sampled RL answers with their rewards, oldest first."""
        with self._lock:
            return list(self._answers)

    def results(self) -> list[EvalResult]:
        """Eval-stage results, the newest per suite and task, in arrival order."""
        with self._lock:
            return list(self._results.values())

    def ack(self, request_id: str) -> ControlAckEvent | None:
        """The engine's answer to a control request, once it has arrived."""
        with self._lock:
            return self._acks.get(request_id)

    def snapshot(self) -> StoreSnapshot:
        with self._lock:
            malformed = sum(h.malformed for h in self._sources.values())
            errors = [h.last_error for h in self._sources.values() if h.last_error]
            counters = Counters(self._events, dict(self._by_kind), malformed, errors[-1] if errors else None,
                                self._dropped)
            return StoreSnapshot(self._version, replace(self._run), dict(self._latest), counters, dict(self._sinks),
                                 dict(self._sources))


def _sinks_from_config(config: dict[str, Any], prev: dict[str, SinkStatus]) -> dict[str, SinkStatus]:
    """What the run's config says about W&B and OTLP, until the engine reports on them itself."""
    mode = config.get("wandb", "disabled")
    if mode == "disabled":
        wandb = SinkStatus("wandb", "disabled", "W&B logging is off (telemetry.wandb)")
    else:
        where = "/".join(p for p in (config.get("wandb_entity"), config.get("wandb_project", "nanochat")) if p)
        note = "online" if mode == "online" else "offline: upload later with `wandb sync`"
        wandb = SinkStatus("wandb", "configured", f"{note}, project {where}; no report from the engine yet")
    endpoint = config.get("otel_endpoint")
    if endpoint:
        otel = SinkStatus("otel", "configured", f"OTLP to {endpoint}; no report from the engine yet")
    else:
        otel = SinkStatus("otel", "disabled", "OpenTelemetry is off (telemetry.otel_endpoint)")
    out = {"wandb": wandb, "otel": otel}
    for name, s in prev.items():  # a live report beats what the config implies
        if s.heartbeat is not None and s.state != "disabled":
            out[name] = s
    return out


def _on_plugin(store: MetricStore, ev: Any) -> None:
    """A plugin's own event: kept per plugin (bounded) for its panels, which repaint on "plugin.<name>"."""
    if len(store._plugin_events) >= MAX_SERIES and ev.plugin not in store._plugin_events:
        store._dropped += 1
        return
    store._plugin_events.setdefault(ev.plugin, deque(maxlen=PLUGIN_EVENTS)).append(ev)
    store._touch(f"plugin.{ev.plugin}")


_HANDLERS = {
    "plugin": _on_plugin,
    "step": MetricStore._on_step,
    "eval": MetricStore._on_eval,
    "sample": MetricStore._on_sample,
    "run_start": MetricStore._on_run_start,
    "checkpoint": MetricStore._on_checkpoint,
    "control_ack": MetricStore._on_ack,
    "warning": MetricStore._on_warning,
    "error": MetricStore._on_error,
    "run_end": MetricStore._on_run_end,
    "sink_status": MetricStore._on_sink_status,
    "rollout": MetricStore._on_rollout,
    "eval_result": MetricStore._on_eval_result,
}
