"""The public API for plugins: everything a plugin may import from nanochat-cli, in one place.

A plugin's `register(registry)` receives the `Registry`; what it passes to it and the base classes it
builds on are here. Anything else in `nanochat_cli` is internal and may change without notice; an
import-linter contract (.importlinter) keeps the in-repo plugins to this module. See docs/plugins.md.
"""

from nanochat_cli.errors import AppError
from nanochat_cli.services.chat_modes import ChatMode, ModeRequest, ModeResult, cached_load
from nanochat_cli.services.ingest import MetricPoint, MetricStore, RunFeed, SourceHealth, ThreadedSource
from nanochat_cli.services.panels import Layout, PanelSpec, Thresholds, check_thresholds
from nanochat_cli.services.registry import CheckpointField, EngineExtension, Registry, ScreenEntry

__all__ = [
    "AppError",
    "ChatMode",
    "CheckpointField",
    "EngineExtension",
    "Layout",
    "MetricPoint",
    "MetricStore",
    "ModeRequest",
    "ModeResult",
    "PanelSpec",
    "Registry",
    "RunFeed",
    "ScreenEntry",
    "SourceHealth",
    "ThreadedSource",
    "Thresholds",
    "cached_load",
    "check_thresholds",
]  # and PluginScreen (the base of a plugin's screen), loaded on first use by __getattr__ below


def __getattr__(name: str) -> object:
    # PluginScreen pulls in Textual: only a plugin's screen module asks for it, so the CLI stays quick
    if name == "PluginScreen":
        from nanochat_cli.screens.plugin import PluginScreen

        return PluginScreen
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
