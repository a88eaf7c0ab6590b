"""Where each puzzle stands: not started, in progress (edited, not verified since), failing or passing.

`--verify` of a learner's own file records its outcome with the file's hash; an edit after that makes the
record stale. Without a fresh record the file itself tells "not started" (every function still raises the
skeleton's NotImplementedError) from "in progress". The record lives in one JSON file, written atomically:
$NANOCHAT_PUZZLES_STATUS, else <base dir>/puzzles/status.json.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import time
from pathlib import Path

from engine.shared import atomic_write, base_dir
from puzzles.catalog import PUZZLES, Puzzle

STATUSES = ("not started", "in progress", "failing", "passing")
STUB_MARK = "not implemented yet"


def status_path() -> Path:
    return Path(os.environ.get("NANOCHAT_PUZZLES_STATUS") or base_dir() / "puzzles" / "status.json")


def file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def _load() -> dict:
    try:
        data = json.loads(status_path().read_text())
    except (OSError, ValueError):  # missing or unreadable: no records (a verify writes a fresh one)
        return {}
    return data if isinstance(data, dict) else {}


def record(puzzle: Puzzle, outcome: str, summary: str) -> None:
    """Remember the outcome ('not started', 'failing' or 'passing') of verifying the learner's file."""
    data = _load()
    data[puzzle.module] = {"hash": file_hash(puzzle.path), "status": outcome, "summary": summary,
                           "time": time.time()}
    atomic_write(status_path(), json.dumps(data, indent=1, sort_keys=True))


def status_of(puzzle: Puzzle) -> tuple[str, str]:
    """(status, one line of detail) for the learner's file."""
    entry = _load().get(puzzle.module)
    if isinstance(entry, dict) and entry.get("hash") == file_hash(puzzle.path) and entry.get("status") in STATUSES:
        return entry["status"], str(entry.get("summary", ""))
    if _untouched(puzzle):
        return "not started", "every function still raises NotImplementedError"
    return "in progress", "edited since the last --verify" if isinstance(entry, dict) else "not verified yet"


def _untouched(puzzle: Puzzle) -> bool:
    """Every public function of the skeleton still raises its NotImplementedError."""
    tree = ast.parse(puzzle.path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not node.name.startswith("_") \
                or isinstance(node, ast.FunctionDef) and node.name == "__init__":
            if not any(isinstance(n, ast.Raise) and STUB_MARK in ast.unparse(n) for n in node.body):
                return False
    return True


def all_statuses() -> list[tuple[Puzzle, str, str]]:
    return [(p, *status_of(p)) for p in PUZZLES]
