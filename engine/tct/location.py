"""Is a data dir TCT windows? (Light: the app asks it of every config it shows.)"""

from __future__ import annotations

import json
from pathlib import Path

FORMAT = "tct-windows"  # meta.json's format in a folder `python -m engine.tct.prepare` wrote
SCHEME = "tct:"  # a data_dir "tct:NAME": windows prepared on first use (engine/tct_windows.py)


def is_window_dir(path: str | Path) -> bool:
    """Whether `path` holds prepared TCT windows (its meta.json says so)."""
    meta = Path(path) / "meta.json"
    if not meta.is_file():
        return False
    try:
        return json.loads(meta.read_text(encoding="utf-8")).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def uses_tct(data_dir: str | None) -> bool:
    """A `tct:NAME` data dir or a folder of prepared windows: trained with the TCT tokenizer."""
    if not data_dir:
        return False
    return data_dir.startswith(SCHEME) or is_window_dir(Path(data_dir).expanduser())


def window_dir_for(spec: str, base: str | Path, context_size: int) -> Path:
    """Where the windows a `tct:NAME` data dir stands for live under `base` (for this context size)."""
    return Path(base) / "tct_data" / f"{spec[len(SCHEME):] or 'workflows'}-ctx{context_size}"
