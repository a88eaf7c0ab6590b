"""Telemetry sources: where a run's events come from. Each is registered by name in the plugin registry.

A source hands over batches of items (engine telemetry events, or `MetricPoint`s) either on demand,
`read_available()`, or from its own background thread, `start(callback)` / `stop()`. Built-ins:

- "jsonl": the run's `telemetry.jsonl`. Replays the file from the top on attach, then tails it: a
  watchfiles (inotify on Linux) watcher on the run dir wakes the thread when the file changes, and a
  timeout re-reads anyway, so a missed notification costs at most `poll_s`. Partial last lines wait for
  their newline; malformed lines are counted in `health()` and skipped, never fatal.
- "system": this machine's GPU (NVML) or CPU/RAM (psutil) readings every `interval_s`, as "sys.*" series.

W&B and OTLP are written by the engine; the TUI only shows their state, from the run's config and the
engine's `sink_status` reports (see store.SinkStatus), so they are not sources here.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from watchfiles._rust_notify import RustNotify  # watchfiles' documented low-level watcher

from engine.errors import EngineError
from engine.shared import one_line
from engine.telemetry import TELEMETRY_FILE, TelemetryReader
from nanochat_cli.services.ingest.store import MetricPoint, SourceHealth
from nanochat_cli.services.ingest.system import SystemProbe

log = logging.getLogger(__name__)

Batch = list[Any]  # engine telemetry events and/or MetricPoints


@runtime_checkable
class TelemetrySource(Protocol):
    name: str

    def read_available(self) -> Batch:
        """What is ready now, without blocking; [] when nothing is. May return part; call again until []."""
        ...

    def start(self, callback: Callable[[Batch], None]) -> None:
        """Deliver batches to `callback` from a background thread until stop(); an empty batch means only
        health() changed."""
        ...

    def stop(self) -> None: ...

    def health(self) -> SourceHealth: ...


class ThreadedSource:
    """Base class: subclasses implement read_available() and may override wait() to sleep until data comes."""

    name = "source"
    poll_s = 1.0

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._state = "idle"
        self._error: str | None = None

    def read_available(self) -> Batch:
        raise NotImplementedError

    def wait(self, timeout: float) -> None:
        """Block until new data may be ready, `timeout` passes, or stop() is called."""
        self._stop.wait(timeout)

    def health(self) -> SourceHealth:
        return SourceHealth(self.name, self._state, last_error=self._error)

    def start(self, callback: Callable[[Batch], None]) -> None:
        if self._thread is not None:
            raise EngineError(f"telemetry source {self.name}: already started: call stop() first")
        self._stop.clear()
        self._state = "polling"
        self._thread = threading.Thread(target=self._run, args=(callback,), name=f"ingest-{self.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self._state = "stopped"

    def _run(self, callback: Callable[[Batch], None]) -> None:
        seen = self.health()
        try:
            while not self._stop.is_set():
                try:
                    batch = self.read_available()
                    if batch:
                        seen = self.health()
                        callback(batch)
                        continue  # a long replay comes in parts: keep reading before sleeping
                    self.wait(self.poll_s)
                    if self.health() != seen:  # e.g. the watcher started or failed: tell the UI
                        seen = self.health()
                        callback([])
                except Exception as e:  # keep ingesting: record it for the UI, back off, try again
                    self._error = one_line(e)
                    log.warning("telemetry source %s: %s", self.name, self._error, exc_info=True)
                    self._stop.wait(self.poll_s)
        finally:
            self._closed()

    def _closed(self) -> None:
        """Runs on the worker thread as it exits: release what wait() opened."""


# -----------------------------------------------------------------------------
# local JSONL


class JsonlSource(ThreadedSource):
    """Tails `<run_dir>/telemetry.jsonl` (replayed from its first line on attach)."""

    name = "jsonl"

    def __init__(self, run_dir: str | Path, *, poll_s: float = 1.0, debounce_ms: int = 100, step_ms: int = 10,
                 force_polling: bool = False, chunk_bytes: int = 1 << 20):
        super().__init__()
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / TELEMETRY_FILE
        self.poll_s = poll_s  # longest wait when a change notification is missed
        self.debounce_ms = debounce_ms  # under a steady stream of writes, wake at least this often
        self.step_ms = step_ms  # after a write, wake once the file has been quiet this long
        self.force_polling = force_polling  # for network filesystems without inotify
        self.chunk_bytes = chunk_bytes
        self._reader = TelemetryReader(self.path)
        self._notify: RustNotify | None = None
        self._watched_ino: int | None = None

    def read_available(self) -> Batch:
        return self._reader.read_new(max_bytes=self.chunk_bytes)

    def replay(self) -> None:
        """Read the file again from its first line (the next reads return everything)."""
        self._reader.replay()

    def health(self) -> SourceHealth:
        r = self._reader
        detail = str(self.path) if self.path.exists() else f"waiting for {self.path}"
        return SourceHealth(self.name, self._state, r.malformed, r.last_error or self._error, r.restarts, detail)

    def wait(self, timeout: float) -> None:
        try:
            ino = os.stat(self.run_dir).st_ino
        except FileNotFoundError:
            ino = None
        if self._notify is not None and ino != self._watched_ino:  # run dir removed or replaced: watch anew
            self._close_notify()
        if self._notify is None:
            if ino is None:
                self._state = "polling"
                self._stop.wait(timeout)
                return
            try:
                self._notify = RustNotify([str(self.run_dir)], False, self.force_polling, 100, False, False)
            except Exception as e:  # e.g. out of inotify watches: polling still works
                self._error = f"file watcher unavailable, polling every {timeout:g}s: {one_line(e)}"
                self._state = "polling"
                self._stop.wait(timeout)
                return
            self._watched_ino, self._state = ino, "watching"
            return  # read once more now that the watcher runs: nothing written before it is missed
        try:
            self._notify.watch(self.debounce_ms, self.step_ms, int(timeout * 1000), self._stop)
        except Exception:
            self._close_notify()  # start a fresh watcher on the next wait
            raise

    def _close_notify(self) -> None:
        if self._notify is not None:
            self._notify.close()
            self._notify, self._watched_ino = None, None

    def _closed(self) -> None:
        self._close_notify()


# -----------------------------------------------------------------------------
# this machine


class SystemSource(ThreadedSource):
    """SystemProbe readings every `interval_s` as MetricPoints named "sys.<key>" (x = unix time)."""

    name = "system"

    def __init__(self, interval_s: float = 1.0, probe: SystemProbe | None = None):
        super().__init__()
        self.interval_s = interval_s
        self.probe = probe or SystemProbe()
        self._next = 0.0  # monotonic time the next reading is due

    def read_available(self) -> Batch:
        now = time.monotonic()
        if now < self._next:
            return []
        self._next = now + self.interval_s
        t = time.time()
        return [MetricPoint(f"sys.{k}", t, v) for k, v in self.probe.read().items()]

    def wait(self, timeout: float) -> None:
        self._stop.wait(max(0.0, min(timeout, self._next - time.monotonic())))

    def health(self) -> SourceHealth:
        detail = self.probe.backend_note or f"{self.probe.backend}: {', '.join(self.probe.gpu_names)}"
        return SourceHealth(self.name, self._state, last_error=self._error, detail=detail)

    def _closed(self) -> None:
        self.probe.close()


def register_builtin_sources(registry: Any) -> None:
    """Register "jsonl" and "system" (done for the global REGISTRY at import; call it for a fresh Registry)."""
    registry.register_telemetry_source("jsonl", JsonlSource, "the run's telemetry.jsonl (tailed, replayed on attach)",
                                       builtin=True)
    registry.register_telemetry_source("system", lambda run_dir: SystemSource(),
                                       "this machine's GPU (NVML) or CPU/RAM (psutil)", builtin=True)
