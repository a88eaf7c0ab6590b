"""The public API for plugins: everything a plugin may import from nanochat-cli, in one place.

A plugin's `register(registry)` receives the `Registry`; what it passes to it and the base classes it
builds on are here. Anything else in `nanochat_cli` is internal and may change without notice; an
import-linter contract (.importlinter) keeps the in-repo plugins to this module. See docs/plugins.md.
"""

from nanochat_cli.errors import AppError
from nanochat_cli.services.ingest import MetricPoint, MetricStore, RunFeed, SourceHealth, ThreadedSource
from nanochat_cli.services.panels import Layout, PanelSpec, Thresholds, check_thresholds
from nanochat_cli.services.registry import CheckpointField, EngineExtension, Registry

__all__ = [
    "AppError",
    "CheckpointField",
    "EngineExtension",
    "Layout",
    "MetricPoint",
    "MetricStore",
    "PanelSpec",
    "Registry",
    "RunFeed",
    "SourceHealth",
    "ThreadedSource",
    "Thresholds",
    "check_thresholds",
]
