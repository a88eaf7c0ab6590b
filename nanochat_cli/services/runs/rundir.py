"""Where a run lives: `<base>/runs/<name>/` and the files in it. Every other module asks `RunDir` for a path.

    config.yaml          the resolved engine config the job was started with (`--config`)
    run.json             the launcher's record: command, pid, start, nproc, hung threshold, exit code
    stdout.log, stderr.log   captured output of the whole torchrun process tree
    telemetry.jsonl, control.jsonl   the protocol files (docs/protocol.md)
    pids/rank-<r>.json   each rank's pid, written by the rank itself (engine/lifeline.py)
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from engine.control import CONTROL_FILE
from engine.lifeline import PIDS_DIR
from engine.safe_yaml import YamlError, load_yaml_file
from engine.shared import atomic_write
from engine.telemetry import TELEMETRY_FILE
from nanochat_cli.errors import AppError

RUN_RECORD = "run.json"
CONFIG_FILE = "config.yaml"
STDOUT_LOG = "stdout.log"
STDERR_LOG = "stderr.log"


@dataclass(frozen=True)
class RunDir:
    """One run's folder. Cheap to make; nothing is read until asked."""

    path: Path

    @property
    def name(self) -> str:
        return self.path.name

    # ---- paths -----------------------------------------------------------------------------------
    @property
    def record_path(self) -> Path:
        return self.path / RUN_RECORD

    @property
    def config_path(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def telemetry_path(self) -> Path:
        return self.path / TELEMETRY_FILE

    @property
    def control_path(self) -> Path:
        return self.path / CONTROL_FILE

    @property
    def stdout_path(self) -> Path:
        return self.path / STDOUT_LOG

    @property
    def stderr_path(self) -> Path:
        return self.path / STDERR_LOG

    @property
    def pids_path(self) -> Path:
        return self.path / PIDS_DIR

    def exists(self) -> bool:
        return self.path.is_dir()

    def is_run(self) -> bool:
        """A folder some launcher or engine wrote into (not just any folder under runs/)."""
        return self.path.is_dir() and (self.record_path.exists() or self.telemetry_path.exists())

    # ---- the launcher's record -------------------------------------------------------------------
    def record(self) -> dict[str, Any]:
        """run.json ({} when the run was not started by the orchestrator, or the file is torn or not JSON)."""
        try:
            data = json.loads(self.record_path.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError):
            return {}
        return data if isinstance(data, dict) else {}

    def write_record(self, record: dict[str, Any]) -> None:
        atomic_write(self.record_path, json.dumps(record, indent=2) + "\n")

    def update_record(self, **changes: Any) -> dict[str, Any]:
        record = {**self.record(), **changes}
        self.write_record(record)
        return record

    # ---- the engine config -----------------------------------------------------------------------
    def write_config(self, engine_config: dict[str, Any]) -> Path:
        atomic_write(self.config_path, yaml.safe_dump(engine_config, sort_keys=False))
        return self.config_path

    def config(self) -> dict[str, Any]:
        """config.yaml as written at launch ({} when missing, damaged or refused by the bounded loader)."""
        try:
            data = load_yaml_file(self.config_path, what="run config")
        except YamlError:
            return {}
        return data if isinstance(data, dict) else {}

    # ---- ranks -----------------------------------------------------------------------------------
    def rank_pids(self) -> list[dict[str, Any]]:
        """What each rank wrote about itself: [{"pid", "rank", "ticks", "time"}, ...] (bad files skipped)."""
        out = []
        try:
            files = sorted(self.pids_path.glob("rank-*.json"))
        except OSError:
            return []
        for f in files:
            try:
                data = json.loads(f.read_text(encoding="utf-8"))
            except (OSError, ValueError, RecursionError):
                continue
            if isinstance(data, dict) and isinstance(data.get("pid"), int) and data["pid"] > 0:
                out.append(data)
        return out

    def clear_rank_pids(self) -> None:
        """Forget the ranks of an earlier launch (a resume starts new ones)."""
        for f in self.pids_path.glob("rank-*.json"):
            f.unlink(missing_ok=True)

    # ---- captured output -------------------------------------------------------------------------
    def stderr_tail(self, lines: int = 20) -> str:
        try:
            with open(self.stderr_path, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - 64 * 1024))
                return "\n".join(f.read().decode(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class RunsRoot:
    """`<base>/runs/`: finds run dirs by name and picks fresh names."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def get(self, name: str) -> RunDir:
        """The run dir of an existing run; a one-line error naming the fix otherwise."""
        if not name or name != Path(name).name or name in (".", ".."):
            raise AppError(f"run '{name}': not a run name: see `nanochat-cli runs list`")
        run = RunDir(self.path / name)
        if not run.exists():
            raise AppError(f"run '{name}': no such run under {self.path}: see `nanochat-cli runs list`")
        return run

    def dirs(self) -> Iterator[RunDir]:
        if not self.path.is_dir():
            return
        for d in self.path.iterdir():
            if d.is_dir():
                yield RunDir(d)

    def unique_name(self, name: str) -> str:
        """Never reuse a run dir silently: demo, demo-2, demo-3, …"""
        if not (self.path / name).exists():
            return name
        n = 2
        while (self.path / f"{name}-{n}").exists():
            n += 1
        return f"{name}-{n}"

    def newest(self) -> str | None:
        """The most recently started run (run.json's start time, else the dir's mtime)."""
        best: tuple[float, str] | None = None
        for run in self.dirs():
            if not run.is_run():
                continue
            started = run.record().get("started")
            key = (float(started) if isinstance(started, int | float) else run.path.stat().st_mtime, run.name)
            best = key if best is None or key > best else best
        return best[1] if best else None
