"""What the TUI needs before it can edit a config: plugins, the secret store and the config edit session.

Loading them costs about a quarter of a second (pydantic schemas, prefab YAML, the keyring backend scan,
plugin imports), so the app paints its shell first and loads them right after (nanochat_cli/app.py).
Everything heavy is imported here, inside `load_app_services`, never at module import.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nanochat_cli.services.config.session import ConfigSession
    from nanochat_cli.services.plugins import PluginReport
    from nanochat_cli.services.secrets import SecretStore
    from nanochat_cli.services.state import UIState


@dataclass
class AppServices:
    plugin_report: PluginReport
    secrets: SecretStore
    session: ConfigSession


def load_app_services(state: UIState, state_path: Path, secrets: SecretStore | None = None) -> AppServices:
    """Load plugins (first: their config categories are part of every prefab the session resolves), then
    the secret store and the edit session. Raises AppError for a broken plugin settings or prefab file."""
    from nanochat_cli.services.config.prefabs import PrefabStore
    from nanochat_cli.services.config.session import ConfigSession
    from nanochat_cli.services.plugins import load_user_plugins
    from nanochat_cli.services.registry import REGISTRY
    from nanochat_cli.services.secrets import SecretStore

    report = load_user_plugins(REGISTRY)  # in-repo, <config dir>/plugins/, entry points
    store = secrets or SecretStore()
    session = ConfigSession(state, state_path, PrefabStore(auth_flags=store.auth_flags))
    return AppServices(report, store, session)
