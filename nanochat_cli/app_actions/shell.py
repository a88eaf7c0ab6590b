"""What the action mixins need from the app shell (`NanochatApp`), spelled out for type checkers. At run time
the mixins sit beside the shell in `NanochatApp`'s bases and reach these through `self`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from textual.app import App

    from nanochat_cli.services.config.session import ConfigSession
    from nanochat_cli.services.secrets import SecretStore

    class Shell(App[None]):
        base_dir: Path
        config_rev: int
        active_run: str | None
        pipeline: Any
        launched: dict[str, Any]
        online_checks: bool
        wandb_key_set: bool | None
        _orchestrator: Any

        @property
        def session(self) -> ConfigSession: ...
        @property
        def secrets(self) -> SecretStore: ...
        def _update_status(self, **changes: Any) -> None: ...
        def _wandb_text(self) -> str: ...
        def _check_wandb_key(self) -> None: ...
        def _error(self, message: str) -> None: ...
        def show_path(self, path: Path) -> str: ...
        def action_show_screen(self, name: str) -> None: ...
else:
    Shell = object
