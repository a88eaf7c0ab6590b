"""The app's private folders (atomic writes are engine.shared.atomic_write, shared with the engine)."""

from __future__ import annotations

from pathlib import Path


def private_dir(path: Path) -> Path:
    """Create `path` (and parents) with mode 0700, tightening it if it exists: a dir of the app's own files
    (logs, crash dumps) that other users have no business reading."""
    path = Path(path)
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.stat().st_mode & 0o077:
        path.chmod(0o700)
    return path
