"""Crash dumps: traceback, UI state and versions in <config>/crash/, known secrets masked, mode 0600."""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from dataclasses import asdict
from importlib import metadata
from pathlib import Path
from typing import Any

from engine import __version__
from engine.shared import atomic_write
from nanochat_cli.services import paths
from nanochat_cli.services.fileio import private_dir
from nanochat_cli.services.masking import mask, remember_secret


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "unknown"


def write_crash_dump(error: BaseException, state: Any, log_path: Path, secrets: list[str] | None = None) -> Path:
    """Traceback + UI state + versions to <config>/crash/crash-<time>-<pid>.txt; returns its path.

    `secrets` are values to mask besides those the masker already knows (the store's, the env's).
    """
    for value in secrets or []:
        remember_secret(value)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    body = "\n".join(
        [
            f"nanochat-cli {__version__} crashed at {time.strftime('%Y-%m-%d %H:%M:%S %z')}",
            f"python {sys.version.split()[0]}, textual {_version('textual')}, platform {sys.platform}",
            f"app log: {log_path}",
            "",
            "".join(traceback.format_exception(error)),
            "UI state:",
            json.dumps(asdict(state), indent=2, default=str),
            "",
        ]
    )
    path = private_dir(paths.crash_dir()) / f"crash-{stamp}-{os.getpid()}.txt"
    atomic_write(path, mask(body), mode=0o600)
    return path
