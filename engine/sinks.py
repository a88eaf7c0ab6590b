"""Optional telemetry sinks: W&B metrics and OpenTelemetry spans, fed by the trainer's telemetry events.

Rank 0 builds one `Sinks` from the config and the telemetry writer hands it every event it writes
(`on_event`). From those events W&B logs the metrics of the step and eval events, and OpenTelemetry
gets one "step" trace per optimizer step with "fwd_bwd", "data" and "optim" children built from the
step event's timings, so the hot loop needs no extra timers. Checkpoints and evals are wrapped in
`span()`. Each sink reports its health as a `sink_status` event on start, every `heartbeat_s` and at close.

Both sinks are best-effort: training never waits on them, and one that fails at run time (no network,
a dead collector) warns once, reports ok=False and keeps out of the way. A missing package or a bad
endpoint is a config error and fails at start. wandb and opentelemetry are imported only when
configured; with neither, `span()` returns a shared nullcontext and `on_event` returns at once.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import queue
import random
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from engine import __version__
from engine.config import TrainConfig
from engine.errors import EngineError
from engine.shared import one_line
from engine.telemetry import SinkStatusEvent, WarningEvent, _Event

T = TypeVar("T")
Emit = Callable[[Any], Any]  # TelemetryWriter.emit: takes an event model


# the step event's fields that W&B logs, under the same names; eval adds val_bpb
STEP_METRICS = ("loss", "smooth_loss", "lr_mult", "muon_momentum", "tokens_per_sec", "mfu", "dt", "t_data",
                "t_fwd_bwd", "t_optim", "mem_bytes", "tokens_seen")
_NULL = nullcontext()  # reusable: entering it does nothing


def retry(fn: Callable[[], T], attempts: int = 3, base_s: float = 0.25, cap_s: float = 4.0,
          sleep: Callable[[float], None] = time.sleep) -> T:
    """Call fn until it returns, at most `attempts` times, sleeping a random 0..min(cap, base*2^k) between."""
    if attempts < 1:
        raise ValueError(f"retry: attempts={attempts}: must be >= 1")
    for k in range(attempts):
        try:
            return fn()
        except Exception:
            if k == attempts - 1:
                raise
            sleep(random.uniform(0, min(cap_s, base_s * 2**k)))  # full jitter: retries don't arrive in lockstep
    raise AssertionError("unreachable")


def masked_line(exc: BaseException | str) -> str:
    """One line of an error (engine.shared.one_line), with any W&B API key in it blanked out."""
    s = one_line(exc)
    key = os.environ.get("WANDB_API_KEY")
    return s.replace(key, "***") if key else s


def traces_url(endpoint: str) -> str:
    """The OTLP/HTTP traces URL: a bare collector address gets the standard /v1/traces path."""
    u = urllib.parse.urlsplit(endpoint)
    if u.scheme not in ("http", "https") or not u.hostname:
        raise EngineError(f"otel_endpoint: {endpoint!r} is not an http(s) URL: use e.g. http://localhost:4318")
    return endpoint if u.path not in ("", "/") else endpoint.rstrip("/") + "/v1/traces"


def _require(module: str, what: str) -> None:
    if importlib.util.find_spec(module) is None:  # finds the package without importing it
        raise EngineError(f"{what}: the {module} package is not installed: pip install 'nanochat-cli[telemetry]' "
                          f"or turn {what} off")


# -----------------------------------------------------------------------------
# W&B


class WandbSink:
    """Logs step/eval metrics to a W&B run from a worker thread (init and uploads never block the trainer)."""

    name = "wandb"
    MAX_CONSECUTIVE_FAILURES = 5  # rows that failed every retry in a row before the sink gives up

    def __init__(self, cfg: TrainConfig, run_dir: Path, notify: Callable[[WandbSink], None],
                 warn: Callable[[str], None], queue_size: int = 10_000):
        self.mode = cfg.wandb
        self._init_kwargs = dict(project=cfg.wandb_project, entity=cfg.wandb_entity, name=cfg.run, mode=cfg.wandb,
                                 dir=str(run_dir), config=cfg.model_dump())
        self._notify, self._warn = notify, warn
        self._q: queue.Queue[tuple[str, int, dict[str, Any]] | None] = queue.Queue(queue_size)
        self.ok, self.detail, self.url, self.where = True, f"{self.mode}: starting", None, ""
        self.logged = self.dropped = self.failed = 0
        self.exit_code = 0
        self.dead = False
        self._thread = threading.Thread(target=self._work, name="wandb-sink", daemon=True)
        self._thread.start()

    def on_event(self, ev: _Event) -> None:
        kind = ev.event
        if kind == "step":
            item = ("log", ev.step, {k: v for k in STEP_METRICS if (v := getattr(ev, k)) is not None})
        elif kind == "eval":
            item = ("log", ev.step, {k: v for k in ("val_bpb", "val_loss") if (v := getattr(ev, k)) is not None})
        elif kind == "control_ack" and ev.ok and ev.applied:
            item = ("config", ev.step, dict(ev.applied))  # hot patches show in the run's config
        elif kind == "run_end":
            self.exit_code = 1 if ev.status == "failed" else 0
            return
        else:
            return
        if self.dead:
            return
        try:
            self._q.put_nowait(item)
        except queue.Full:  # W&B is far behind (e.g. still connecting): keep memory bounded
            self.dropped += 1

    def status(self) -> SinkStatusEvent:
        if self.ok and not self.dead and self.where:
            self.detail = (f"{self.where}: {self.logged} rows logged, {self.failed} failed, {self.dropped} dropped, "
                           f"{self._q.qsize()} queued")
        return SinkStatusEvent(sink="wandb", ok=self.ok and not self.dead, detail=self.detail, url=self.url)

    def close(self, timeout_s: float) -> None:
        if self._thread.is_alive():
            try:
                self._q.put(None, timeout=timeout_s)
            except queue.Full:
                pass
            self._thread.join(timeout_s)
        if self._thread.is_alive():
            self._fail(f"still finishing after {timeout_s:.0f}s; the local copy is in {self.where or 'wandb/'} "
                       "(upload it with `wandb sync`)")

    # ---- worker thread -----------------------------------------------------------------------
    def _work(self) -> None:
        if self.mode == "online" and not os.environ.get("WANDB_API_KEY"):
            self._fail("online mode needs WANDB_API_KEY in the environment: store the key with "
                       "nanochat-cli (keyring) or use wandb=offline")
            return
        try:
            import wandb

            run = wandb.init(**self._init_kwargs, settings=wandb.Settings(silent=True, console="off"))
        except Exception as e:  # no network, bad key, wandb-core failed to start
            self._fail(f"init failed: {masked_line(e)}")
            return
        if self.mode == "online":
            self.url = run.url
            self.where = f"online run {run.url}"
        else:
            self.where = f"offline run in {Path(run.dir).parent} (upload with `wandb sync`)"
        self._notify(self)
        consecutive = 0
        while (item := self._q.get()) is not None:
            kind, step, data = item
            try:
                if kind == "log":
                    retry(partial(run.log, data, step=step))
                    self.logged += 1
                else:
                    retry(partial(run.config.update, data, allow_val_change=True))
                consecutive = 0
            except Exception as e:
                self.failed += 1
                consecutive += 1
                if consecutive >= self.MAX_CONSECUTIVE_FAILURES:
                    self._fail(f"logging failed {consecutive} times in a row: {masked_line(e)}")
                    break
        try:
            run.finish(exit_code=self.exit_code)
            wandb.teardown()  # finish() returns before wandb-core has flushed the run file; this waits for it
        except Exception as e:
            self._fail(f"finish failed: {masked_line(e)}")

    def _fail(self, why: str) -> None:
        if self.dead:
            return
        self.ok, self.dead, self.detail = False, True, f"{self.mode}: {why}"
        self._warn(f"W&B: {why}: training continues without W&B")
        self._notify(self)
        while True:  # drop whatever is queued so close() doesn't wait on it
            try:
                if self._q.get_nowait() is not None:
                    self.dropped += 1
            except queue.Empty:
                break


# -----------------------------------------------------------------------------
# OpenTelemetry


class _HealthExporter:
    """Wraps the real span exporter to count exported and failed spans (the SDK calls it from its own thread)."""

    def __init__(self, inner: Any, success: Any, failure: Any):
        self.inner, self._success, self._failure = inner, success, failure
        self.spans_ok = self.spans_failed = 0
        self.last_ok: bool | None = None  # None until the first export
        self.closing = False

    def export(self, spans: Any) -> Any:
        if self.closing and self.last_ok is False:
            result = self._failure  # the collector is down: don't wait a timeout per leftover batch at close
        else:
            try:
                result = self.inner.export(spans)
            except Exception:
                result = self._failure
        self.last_ok = result == self._success
        if self.last_ok:
            self.spans_ok += len(spans)
        else:
            self.spans_failed += len(spans)
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()  # the OTLP exporter also aborts its retry wait

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self.inner.force_flush(timeout_millis)


class _LastMessage(logging.Handler):
    """Keeps the SDK's last warning instead of printing one per failed batch; it goes into sink_status."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.message: str | None = None
        self.cause: str | None = None  # the last exception the SDK logged (e.g. connection refused)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.message = masked_line(record.getMessage())
            args = record.args if isinstance(record.args, tuple) else ()
            self.cause = next((masked_line(a) for a in args if isinstance(a, BaseException)), self.cause)
        except Exception:
            pass

    def text(self) -> str:
        if self.message and self.cause and self.cause not in self.message:
            return f"{self.message} (earlier: {self.cause})"
        return self.message or "export failed"


class OtelSink:
    """Spans through an SDK TracerProvider (not the global one) and a BatchSpanProcessor that exports off-thread."""

    name = "otel"

    def __init__(self, endpoint: str, run: str, exporter: Any = None, timeout_s: float = 5.0):
        from opentelemetry import context, trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExportResult

        self.url = traces_url(endpoint)
        if exporter is None:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporter = OTLPSpanExporter(endpoint=self.url, timeout=timeout_s)  # bounds each export, retries included
        self.health = _HealthExporter(exporter, SpanExportResult.SUCCESS, SpanExportResult.FAILURE)
        self._log = _LastMessage()
        logging.getLogger("opentelemetry").addHandler(self._log)
        self._processor = BatchSpanProcessor(self.health, schedule_delay_millis=1000)
        resource = Resource.create({"service.name": "nanochat-engine", "service.version": __version__,
                                    "nanochat.run": run})
        self._provider = TracerProvider(resource=resource)
        self._provider.add_span_processor(self._processor)
        self._tracer = self._provider.get_tracer("engine.train", __version__)
        self._root = context.Context()  # each step is its own trace, whatever span is current
        self._set_parent = trace.set_span_in_context
        self.warned = False

    def span(self, name: str, attrs: dict[str, Any]) -> AbstractContextManager[Any]:
        attributes = {k: v for k, v in attrs.items() if v is not None}
        return self._tracer.start_as_current_span(name, attributes=attributes)

    def on_event(self, ev: _Event) -> None:
        if ev.event != "step":
            return
        # the step just ended when its event was made; lay the phases end to end in loop order. With gradient
        # accumulation fwd_bwd and data interleave, so their durations are exact and their positions approximate.
        end = int(ev.time * 1e9)
        start = end - int(ev.dt * 1e9)
        step = self._tracer.start_span("step", context=self._root, start_time=start, attributes={
            "step": ev.step, "loss": ev.loss, "tokens_per_sec": ev.tokens_per_sec, "tokens_seen": ev.tokens_seen})
        parent = self._set_parent(step)
        t = start
        for name, seconds in (("fwd_bwd", ev.t_fwd_bwd), ("data", ev.t_data), ("optim", ev.t_optim)):
            phase = self._tracer.start_span(name, context=parent, start_time=t, attributes={"step": ev.step})
            t += int(seconds * 1e9)
            phase.end(end_time=t)
        step.end(end_time=end)

    def status(self) -> SinkStatusEvent:
        h = self.health
        ok = h.last_ok is not False
        detail = f"{self.url}: {h.spans_ok} spans exported, {h.spans_failed} failed"
        if not ok:
            detail += f"; last error: {self._log.text()}"
        return SinkStatusEvent(sink="otel", ok=ok, detail=detail)

    def close(self, timeout_s: float) -> None:
        # bounded without timeout_s: queued spans are exported, but once the collector has failed the leftover
        # batches are dropped at once, so close costs at most the export in flight (the exporter's timeout)
        self.health.closing = True
        try:
            self._provider.shutdown()
        finally:
            logging.getLogger("opentelemetry").removeHandler(self._log)


# -----------------------------------------------------------------------------
# the facade the trainer uses


class Sinks:
    """All configured sinks behind one object; empty (and free) when none is configured or rank != 0."""

    def __init__(self, emit: Emit | None = None, heartbeat_s: float = 15.0):
        self._sinks: list[WandbSink | OtelSink] = []
        self._otel: OtelSink | None = None
        self._emit = emit
        self._heartbeat_s = heartbeat_s
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None

    @classmethod
    def from_config(cls, cfg: TrainConfig, run_dir: str | Path, rank: int, emit: Emit | None = None, *,
                    otel_exporter: Any = None, otel_timeout_s: float = 5.0, heartbeat_s: float = 15.0) -> Sinks:
        """Sinks for this process. `emit` receives sink_status and warning events (pass TelemetryWriter.emit).

        Raises EngineError for what no retry can fix: a missing package or a malformed endpoint.
        `otel_exporter` replaces the OTLP exporter (tests pass an InMemorySpanExporter).
        """
        self = cls(emit, heartbeat_s)
        if rank != 0 or (cfg.wandb == "disabled" and not cfg.otel_endpoint):
            return self
        if cfg.wandb != "disabled":
            _require("wandb", "wandb")
        if cfg.otel_endpoint:
            traces_url(cfg.otel_endpoint)
            _require("opentelemetry.sdk", "otel_endpoint")
            if otel_exporter is None:
                _require("opentelemetry.exporter.otlp.proto.http", "otel_endpoint")
            self._otel = OtelSink(cfg.otel_endpoint, cfg.run, otel_exporter, otel_timeout_s)
            self._sinks.append(self._otel)
            self._report(self._otel)
        if cfg.wandb != "disabled":
            self._sinks.append(WandbSink(cfg, Path(run_dir), notify=self._report, warn=self._warn))
        self._heartbeat = threading.Thread(target=self._beat, name="sinks-heartbeat", daemon=True)
        self._heartbeat.start()
        return self

    def __bool__(self) -> bool:
        return bool(self._sinks)

    def on_event(self, ev: _Event) -> None:
        """Feed one written telemetry event to every sink. Never raises: a sink error is a warning."""
        if not self._sinks or ev.event == "sink_status":
            return
        for sink in self._sinks:
            try:
                sink.on_event(ev)
            except Exception as e:
                self._warn(f"{sink.name}: dropped a {ev.event} event: {masked_line(e)}")

    def span(self, name: str, **attrs: Any) -> AbstractContextManager[Any]:
        """`with sinks.span("checkpoint", step=s, reason=r):` times the block as an OTel span (no-op when off)."""
        if self._otel is None:
            return _NULL
        return self._otel.span(name, attrs)

    def close(self, timeout_s: float = 15.0) -> None:
        """Flush and stop every sink, then send a last sink_status. W&B gets timeout_s to finish its run.

        Call before the telemetry writer closes: the final statuses go through it.
        """
        self._stop.set()
        if self._heartbeat is not None:
            self._heartbeat.join()
        for sink in self._sinks:
            try:
                sink.close(timeout_s)
            except Exception as e:
                self._warn(f"{sink.name}: close failed: {masked_line(e)}")
            self._report(sink)
        self._sinks, self._otel = [], None

    def __enter__(self) -> Sinks:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- status -------------------------------------------------------------------------------
    def _beat(self) -> None:
        while not self._stop.wait(self._heartbeat_s):
            for sink in list(self._sinks):
                self._report(sink)

    def _report(self, sink: WandbSink | OtelSink) -> None:
        status = sink.status()
        if isinstance(sink, OtelSink) and not status.ok and not sink.warned:
            sink.warned = True  # once: the heartbeat keeps the status bar current after that
            self._warn(f"OpenTelemetry: exporting to {sink.url} fails ({status.detail.split('; ')[-1]}): "
                       "training continues, spans are dropped until the collector answers")
        self._send(status)

    def _warn(self, message: str) -> None:
        message = masked_line(message)
        print(f"engine.train: warning: {message}", file=sys.stderr, flush=True)
        self._send(WarningEvent(message=message))

    def _send(self, event: _Event) -> None:
        if self._emit is None:
            return
        try:
            self._emit(event)  # TelemetryWriter.emit is thread-safe: heartbeat, W&B worker and trainer share it
        except Exception:
            pass  # the writer is closed or failing: the trainer reports that itself
