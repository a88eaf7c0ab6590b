"""Telemetry ingest for the live screens: sources → pipeline (worker thread) → MetricStore → panels.

Typical use from the UI (no Textual here; the UI wires `on_batch` to its own wake-up):

    feed = RunFeed(run_dir, on_batch=lambda batch: app.call_from_thread(app.refresh_panels))
    feed.start()                  # replays telemetry.jsonl, then tails it; probes this machine
    snap = feed.store.snapshot()  # per frame: run state, latest values, counters, sink status
    pts = feed.store.decimate("loss", width=chart_columns)
    feed.stop()

Importing this package registers the built-in sources ("jsonl", "system") in the global REGISTRY.
"""

from nanochat_cli.services.ingest.pipeline import IngestPipeline, RunFeed
from nanochat_cli.services.ingest.sources import (
    Batch,
    JsonlSource,
    SystemSource,
    TelemetrySource,
    ThreadedSource,
    register_builtin_sources,
)
from nanochat_cli.services.ingest.store import (
    DEFAULT_CAPACITY,
    STEP_METRICS,
    Counters,
    LogEntry,
    MetricPoint,
    MetricStore,
    RunState,
    Sample,
    Series,
    SinkStatus,
    SourceHealth,
    StoreSnapshot,
    minmax_decimate,
)
from nanochat_cli.services.ingest.system import SystemProbe
from nanochat_cli.services.registry import REGISTRY

if REGISTRY.telemetry_source("jsonl") is None:
    register_builtin_sources(REGISTRY)

__all__ = [
    "DEFAULT_CAPACITY", "STEP_METRICS", "Batch", "Counters", "IngestPipeline", "JsonlSource", "LogEntry",
    "MetricPoint", "MetricStore", "RunFeed", "RunState", "Sample", "Series", "SinkStatus", "SourceHealth",
    "StoreSnapshot", "SystemProbe", "SystemSource", "TelemetrySource", "ThreadedSource", "minmax_decimate",
    "register_builtin_sources",
]
