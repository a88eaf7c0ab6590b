"""A pipeline's folder and record: `<base>/pipelines/<name>/pipeline.json` (what ran, as which run, how it
ended) and `report.md`, both written atomically. Re-running the pipeline reads the record and skips what
finished."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from engine.shared import atomic_write
from nanochat_cli.errors import AppError

RECORD = "pipeline.json"
REPORT = "report.md"


@dataclass
class Attempt:
    """One launch of one engine module of a stage."""

    run: str  # the run's name under <base>/runs/
    status: str = "running"  # running | finished | stopped | failed
    started: float = 0.0
    ended: float | None = None
    exit_code: int | None = None
    resumed: bool = False


@dataclass
class StepRecord:
    """One engine module of a stage and its attempts, newest last."""

    stage: str  # base | sft | rl | eval
    module: str  # train | sft | rl | base_eval | chat_eval
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return bool(self.attempts) and self.attempts[-1].status == "finished"

    @property
    def last(self) -> Attempt | None:
        return self.attempts[-1] if self.attempts else None

    @property
    def seconds(self) -> float:
        """Wall time over every attempt."""
        return sum((a.ended or time.time()) - a.started for a in self.attempts if a.started)


@dataclass
class PipelineRecord:
    name: str
    prefab: str
    overrides: dict[str, Any]
    steps: list[StepRecord]
    created: float = 0.0
    status: str = "running"  # running | finished | stopped | failed
    finished: float | None = None

    @property
    def done(self) -> bool:
        return all(s.done for s in self.steps)

    def step(self, module: str) -> StepRecord:
        return next(s for s in self.steps if s.module == module)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, default=str)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PipelineRecord:
        steps = [StepRecord(s["stage"], s["module"], [Attempt(**a) for a in s.get("attempts", [])])
                 for s in d["steps"]]
        return cls(d["name"], d["prefab"], dict(d.get("overrides") or {}), steps, d.get("created", 0.0),
                   d.get("status", "running"), d.get("finished"))


@dataclass(frozen=True)
class PipelineDir:
    path: Path

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def record_path(self) -> Path:
        return self.path / RECORD

    @property
    def report_path(self) -> Path:
        return self.path / REPORT

    def read(self) -> PipelineRecord | None:
        """The record, None when there is none yet; a damaged one is a one-line error naming the file."""
        try:
            data = json.loads(self.record_path.read_text())
            return PipelineRecord.from_dict(data)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise AppError(f"{self.record_path}: unreadable pipeline record ({type(e).__name__}: {e}): delete "
                           "the folder to start the pipeline again") from None

    def write(self, record: PipelineRecord) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write(self.record_path, record.to_json())

    def report(self) -> str | None:
        try:
            return self.report_path.read_text()
        except OSError:
            return None


def pipelines_root(base: Path) -> Path:
    return Path(base) / "pipelines"


def list_pipelines(base: Path) -> list[PipelineDir]:
    """Every pipeline folder under the base dir, newest first (by record mtime)."""
    root = pipelines_root(base)
    dirs = [PipelineDir(d) for d in root.iterdir() if (d / RECORD).is_file()] if root.is_dir() else []
    return sorted(dirs, key=lambda d: d.record_path.stat().st_mtime, reverse=True)


def find_report(base: Path, run: str | None = None) -> PipelineDir | None:
    """The pipeline that ran `run` (any of its stages), else the newest pipeline with a report; None if none."""
    found = [d for d in list_pipelines(base) if d.report_path.is_file()]
    if run:
        for d in found:
            try:
                record = d.read()
            except AppError:
                continue
            if record is not None and any(a.run == run for s in record.steps for a in s.attempts):
                return d
    return found[0] if found else None
