"""Run a puzzle module in a child process and read the puzzles' status, for the CLI and the screen."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from nanochat_cli.plugin_api import AppError
from puzzles import catalog, status
from puzzles.errors import PuzzleError

MODES = {"run": [], "verify": ["--verify"], "peek": ["--peek"]}
TIMEOUT_S = 300  # a verify takes seconds; a hung learner's loop must not hold the screen forever


@dataclass(frozen=True)
class Row:
    number: int
    module: str
    title: str
    goal: str
    status: str
    detail: str


def puzzle(number: str | int) -> catalog.Puzzle:
    try:
        return catalog.get(number)
    except PuzzleError as e:
        raise AppError(str(e)) from None


def rows() -> list[Row]:
    return [Row(p.number, p.module, p.title, p.goal, st, detail) for p, st, detail in status.all_statuses()]


def command(p: catalog.Puzzle, mode: str, oracle: str = "engine") -> list[str]:
    if mode not in MODES:
        raise AppError(f"puzzles: mode {mode!r}: use run, verify or peek")
    extra = ["--oracle", oracle] if oracle != "engine" and mode != "run" else []
    return [sys.executable, "-m", p.module, *MODES[mode], *extra]


def repo_root() -> Path:
    """The folder holding the `puzzles` package: the child's working dir, so `-m puzzles.0N_x` resolves."""
    return catalog.HERE.parent


def run(p: catalog.Puzzle, mode: str, oracle: str = "engine", capture: bool = True) -> tuple[int, str]:
    """(exit code, stdout + stderr when captured). A child that outlives TIMEOUT_S is killed (exit code 124)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    try:
        proc = subprocess.run(command(p, mode, oracle), cwd=repo_root(), env=env, text=True, timeout=TIMEOUT_S,
                              capture_output=capture)
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or "") if isinstance(e.stdout, str) else ""
        return 124, out + f"\nstopped after {TIMEOUT_S} s: look for a loop that never ends\n"
    return proc.returncode, ((proc.stdout or "") + (proc.stderr or "")) if capture else ""
