"""Eval-stage results kept beside a checkpoint: `<ckpt_dir>/eval_<suite>_<step:06d>.json`, written by
engine.base_eval (suite "core") and engine.chat_eval (suite "chat"):
`{"suite", "step", "checkpoint", "results": [{task, metric, value, n, baseline, centered}], "score"}`.

Read leniently, each file on its own: one that cannot be read is listed with a one-line problem instead of
hiding the others. Torch-free."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_FILE_RE = re.compile(r"^eval_([a-z0-9_]+)_(\d{6})\.json$")
SUITE_TITLE = {"core": "CORE", "chat": "chat eval"}


@dataclass(frozen=True)
class TaskScore:
    task: str
    metric: str
    value: float
    n: int | None = None
    baseline: float | None = None
    centered: float | None = None


@dataclass(frozen=True)
class SuiteResult:
    suite: str  # "core", "chat", ...
    step: int
    path: Path
    score: float | None = None  # core: mean centred accuracy; chat: mean accuracy
    tasks: list[TaskScore] = field(default_factory=list)
    problem: str | None = None  # set when the file could not be read

    @property
    def title(self) -> str:
        return SUITE_TITLE.get(self.suite, self.suite)


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def read_suite(path: Path) -> SuiteResult:
    m = _FILE_RE.match(path.name)
    suite, step = (m.group(1), int(m.group(2))) if m else ("?", -1)
    try:
        data = json.loads(path.read_text())
        rows = data["results"]
        if not isinstance(rows, list):
            raise TypeError("results is not a list")
        tasks = [TaskScore(str(r["task"]), str(r.get("metric", "accuracy")), float(r["value"]),
                           int(r["n"]) if isinstance(r.get("n"), int) else None, _num(r.get("baseline")),
                           _num(r.get("centered"))) for r in rows]
    except (OSError, ValueError, KeyError, TypeError) as e:
        return SuiteResult(suite, step, path, problem=f"{path.name}: unreadable ({type(e).__name__}: {e}): "
                                                      "run the eval stage again to rewrite it")
    return SuiteResult(str(data.get("suite", suite)), step, path, _num(data.get("score")), tasks)


def stage_evals(ckpt_dir: Path, step: int) -> list[SuiteResult]:
    """Every eval file of `step` in `ckpt_dir`, CORE first, then chat, then any other suite by name."""
    try:
        names = sorted(p.name for p in Path(ckpt_dir).iterdir())
    except OSError:
        return []
    found = [read_suite(Path(ckpt_dir) / n) for n in names
             if (m := _FILE_RE.match(n)) and int(m.group(2)) == step]
    order = {"core": 0, "chat": 1}
    return sorted(found, key=lambda r: (order.get(r.suite, 2), r.suite))


def table_rows(result: SuiteResult) -> list[tuple[str, str, str, str, str, str]]:
    """(task, metric, value, baseline, centred, n) as text, for the TUI and the CLI alike."""
    def f(v: float | None, signed: bool = False) -> str:
        return "-" if v is None else (f"{v:+.3f}" if signed else f"{v:.3f}")
    return [(t.task, t.metric, f(t.value), f(t.baseline), f(t.centered, True), "-" if t.n is None else str(t.n))
            for t in result.tasks]


def score_line(result: SuiteResult) -> str:
    if result.problem:
        return result.problem
    what = "mean centred accuracy" if result.suite == "core" else "mean accuracy"
    score = f"{result.score:.4f}" if result.score is not None else "-"
    return f"{result.title} score {score} ({what}) over {len(result.tasks)} tasks · {result.path.name}"
