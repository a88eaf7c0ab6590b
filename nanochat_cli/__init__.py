"""nanochat-cli: a terminal app (Textual TUI + CLI) that configures, launches and watches `engine/` runs.

The app talks to the engine only through config files, the telemetry stream and the control
channel; `nanochat_cli.services` holds the UI-free logic (config, prefabs, secrets, state).
"""

from engine import __version__

__all__ = ["__version__"]
