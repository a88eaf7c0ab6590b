"""IngestPipeline and RunFeed: sources feeding one MetricStore off the UI thread.

The UI never parses or waits: a source's worker thread reads and applies batches to the store under
its lock, then calls `on_batch` (e.g. `app.call_from_thread(...)` to wake the panels). Panels then
read only what changed (`store.changed(keys, since)`), coalesced to the latest values per frame.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from engine.shared import one_line
from nanochat_cli.services.ingest.sources import Batch, TelemetrySource
from nanochat_cli.services.ingest.store import MetricStore
from nanochat_cli.services.registry import REGISTRY, Registry

log = logging.getLogger(__name__)


class IngestPipeline:
    """One source → one store. start()/stop() run it on the source's thread; pump() runs it inline.

    Use one or the other for a given source, not both at once (a source reads from one thread).
    """

    def __init__(self, source: TelemetrySource, store: MetricStore,
                 on_batch: Callable[[Batch], None] | None = None):
        self.source = source
        self.store = store
        self.on_batch = on_batch  # called on the worker thread after each applied batch
        self._restarts = source.health().restarts

    def _deliver(self, batch: Batch) -> None:
        health = self.source.health()
        if health.restarts != self._restarts:  # the file was replaced: the old run's data is stale
            self._restarts = health.restarts
            self.store.reset()
        if batch:
            self.store.apply(batch)
        self.store.set_source_health(health)
        if self.on_batch is not None:
            self.on_batch(batch)

    def pump(self) -> int:
        """Read and apply everything available now, on this thread; returns the number of items."""
        n = 0
        while batch := self.source.read_available():
            self._deliver(batch)
            n += len(batch)
        self.store.set_source_health(self.source.health())
        return n

    def start(self) -> None:
        self.store.set_source_health(self.source.health())
        self.source.start(self._deliver)

    def stop(self) -> None:
        self.source.stop()
        self.store.set_source_health(self.source.health())


class RunFeed:
    """Everything the live screens need for one run: a store fed by the registered sources.

    Sources that cannot be created (a plugin's factory raised) are left out and listed in `errors` as
    (name, one-line error) for the UI to toast.
    """

    def __init__(self, run_dir: str | Path, sources: Iterable[str] = ("jsonl", "system"),
                 registry: Registry = REGISTRY, store: MetricStore | None = None,
                 on_batch: Callable[[Batch], None] | None = None):
        self.run_dir = Path(run_dir)
        self.store = store or MetricStore()
        self.pipelines: list[IngestPipeline] = []
        self.errors: list[tuple[str, str]] = []
        for name in sources:
            entry = registry.telemetry_source(name)
            if entry is None:
                known = ", ".join(e.name for e in registry.telemetry_sources())
                self.errors.append((name, f"unknown telemetry source: use one of {known}"))
                continue
            try:
                source: Any = entry.factory(self.run_dir)
            except Exception as e:
                self.errors.append((name, one_line(e)))
                log.warning("telemetry source %s: factory failed: %s", name, one_line(e), exc_info=True)
                continue
            self.pipelines.append(IngestPipeline(source, self.store, on_batch))

    def start(self) -> None:
        for p in self.pipelines:
            p.start()

    def stop(self) -> None:
        for p in self.pipelines:
            p.stop()

    def pump(self) -> int:
        return sum(p.pump() for p in self.pipelines)
