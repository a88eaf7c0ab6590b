"""UI-free services behind the TUI and the CLI: config schema and prefabs, secrets, UI state, paths.

Nothing here imports textual or torch, so the CLI starts fast and the services test without a terminal.
"""
