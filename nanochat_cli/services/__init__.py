"""UI-free services behind the TUI and the CLI: the plugin registry and loader (registry.py, plugins.py),
config schema and prefabs (config/), layouts and panel alerts (panels.py), telemetry ingest (ingest/),
runs (orchestrator.py), checkpoints (checkpoints/), secrets, UI state, paths and atomic writes.

Plain Python: nothing here imports textual, rich, screens or widgets (an import-linter contract in
.importlinter checks it). Only evaluating and chatting with a checkpoint (checkpoints/evaluate.py,
checkpoints/chat.py) load torch; everything else stays light, so the CLI starts fast and the services test
without a terminal.
"""
