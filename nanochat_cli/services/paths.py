"""Where the app keeps its files: user config dir (prefabs, state, logs, secrets file) and the data base dir.

One env var redirects each root, so tests and sandboxes never touch the real home directory:
NANOCHAT_CLI_CONFIG_DIR for the app's own files, NANOCHAT_BASE_DIR for data and runs (as the engine).
"""

from __future__ import annotations

import os
from pathlib import Path

from engine.shared import base_dir  # data, tokenizers, runs and checkpoints: the engine's own rule

__all__ = ["APP_NAME", "base_dir", "crash_dir", "logs_dir", "secrets_path", "shipped_prefabs_dir", "state_path",
           "user_config_dir", "user_prefabs_dir"]

APP_NAME = "nanochat-cli"


def user_config_dir() -> Path:
    """$NANOCHAT_CLI_CONFIG_DIR, else the platform's user config dir (~/.config/nanochat-cli on Linux)."""
    env = os.environ.get("NANOCHAT_CLI_CONFIG_DIR")
    if env:
        return Path(env).expanduser()
    import platformdirs  # only needed when the env var is absent

    return Path(platformdirs.user_config_dir(APP_NAME, appauthor=False))


def user_prefabs_dir() -> Path:
    return user_config_dir() / "prefabs"


def state_path() -> Path:
    return user_config_dir() / "state.json"


def logs_dir() -> Path:
    return user_config_dir() / "logs"


def crash_dir() -> Path:
    return user_config_dir() / "crash"


def user_plugins_dir() -> Path:
    """Plugins of your own: one subpackage each (see docs/plugins.md)."""
    return user_config_dir() / "plugins"


def plugin_settings_path() -> Path:
    """Which plugins the user switched off (`nanochat-cli plugins disable NAME`)."""
    return user_config_dir() / "plugins.yaml"


def secrets_path() -> Path:
    """The file secret store, used only when no system keyring is available."""
    return user_config_dir() / "secrets.json"


def shipped_prefabs_dir() -> Path:
    """prefabs/ at the repo root, found relative to this package (source checkouts and editable installs)."""
    return Path(__file__).resolve().parents[2] / "prefabs"
