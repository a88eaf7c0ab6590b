"""The TUI's remembered state between sessions: last screen, loaded prefab and its unsaved overrides, the Chat
tab's model and mode.

Plain JSON in the user config dir, written atomically. Overrides hold config values only; secrets
have no config fields, so none can end up here.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from engine.shared import atomic_write
from nanochat_cli.errors import AppError
from nanochat_cli.services import paths


@dataclass
class UIState:
    screen: str = "config"
    prefab: str = "cpu-tiny"
    overrides: dict[str, Any] = field(default_factory=dict)  # dotted config keys -> values
    debug: bool = False
    chat_checkpoint: str = ""  # the model the Chat tab had loaded (a checkpoint dir or model file), "" for none
    chat_mode: str = ""  # its mode: "chat" or "continue"


_TYPES = {"screen": str, "prefab": str, "overrides": dict, "debug": bool, "chat_checkpoint": str, "chat_mode": str}


def load_state(path: Path | None = None) -> UIState:
    """The saved state, or the defaults when there is none yet."""
    path = Path(path) if path else paths.state_path()
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return UIState()
    except json.JSONDecodeError as e:
        raise AppError(f"{path}: not valid JSON ({e.msg}): delete the file to reset the UI state") from None
    if not isinstance(raw, dict):
        raise AppError(f"{path}: expected a JSON object: delete the file to reset the UI state")
    values = {}
    for f in fields(UIState):
        if f.name in raw:
            if not isinstance(raw[f.name], _TYPES[f.name]):
                raise AppError(f"{path}: {f.name}: {raw[f.name]!r} is not a {_TYPES[f.name].__name__}: "
                                  "delete the file to reset the UI state")
            values[f.name] = raw[f.name]
    return UIState(**values)


def save_state(state: UIState, path: Path | None = None) -> None:
    path = Path(path) if path else paths.state_path()
    atomic_write(path, json.dumps(asdict(state), indent=1, sort_keys=True) + "\n")
