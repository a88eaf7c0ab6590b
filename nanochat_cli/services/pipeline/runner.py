"""Run base → SFT → RL → eval as one pipeline, each engine module a run of its own, resumable.

The plan: for prefab P, each stage's config is the shipped or user prefab `P-<stage>` when there is one
(cpu-tiny-sft, …), else P with `run.stage` set; `--set` overrides apply to every stage, `stage:key=value`
ones to that stage only. Each module after the first starts from the checkpoint its previous stage wrote
in this pipeline (pinned, not `auto`, so another run's newer checkpoint is never picked up).

Re-running the same pipeline skips the modules that finished; an interrupted training module resumes from
its own checkpoint (`--resume`) when it saved one, else starts again under a fresh run name. The record
(state.py) is written before and after every launch. The launch itself is the caller's `launch(spec)`:
headless, a Rich follower (headless.run_headless); in tests, `launch_and_wait`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from engine.shared import PHASE_DIRS
from nanochat_cli.errors import AppError
from nanochat_cli.services.config.schema import STAGES
from nanochat_cli.services.pipeline.state import Attempt, PipelineDir, PipelineRecord, StepRecord, pipelines_root
from nanochat_cli.services.runs.launch import LaunchSpec, specs_from_resolved
from nanochat_cli.services.runs.orchestrator import RunOrchestrator
from nanochat_cli.services.runs.rundir import RunDir
from nanochat_cli.services.runs.stages import RUN_SUFFIX, modules_for
from nanochat_cli.services.runs.status import ACTIVE

POLL_S = 0.5

PHASE_OF_MODULE = {"train": "base", "sft": "sft", "rl": "rl"}  # modules that train and write checkpoints
# the module whose checkpoint a module starts from, in pipeline order of preference
SOURCE_MODULES = {"sft": ("train",), "rl": ("sft",), "base_eval": ("train",), "chat_eval": ("rl", "sft")}

Launch = Callable[[LaunchSpec], Any]  # start the spec and return once every process of its run is gone


@dataclass(frozen=True)
class StagePlan:
    stage: str
    prefab: str  # the prefab its config came from
    resolved: dict[str, Any]


def split_overrides(overrides: dict[str, Any]) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """{'k': v, 'sft:k': w} -> ({'k': v}, {'sft': {'k': w}}); an unknown stage prefix is a one-line error."""
    common: dict[str, Any] = {}
    per: dict[str, dict[str, Any]] = {}
    for key, value in overrides.items():
        stage, sep, rest = key.partition(":")
        if not sep:
            common[key] = value
        elif stage in STAGES and rest:
            per.setdefault(stage, {})[rest] = value
        else:
            raise AppError(f"--set {key}: {stage!r} is not a stage: prefix a key with one of "
                           f"{', '.join(STAGES)}, e.g. sft:training.num_iterations=20")
    return common, per


def plan(store: Any, prefab: str, overrides: dict[str, Any] | None = None,
         stages: Iterable[str] = STAGES) -> list[StagePlan]:
    """Each stage's resolved config (see the module doc); `store` is a PrefabStore."""
    common, per = split_overrides(overrides or {})
    names = {p.name for p in store.list()}
    base = store.get(prefab).name
    out = []
    for stage in stages:
        if stage not in STAGES:
            raise AppError(f"--stages: {stage!r} is not a stage: use some of {', '.join(STAGES)}")
        own = base if stage == "base" else f"{base}-{stage}"
        source = own if own in names else base
        extra = {**common, **per.get(stage, {})}
        if source == base:
            extra = {"run.stage": stage, **extra}
        resolved = store.resolve(source, extra)
        if resolved["run.stage"] != stage:
            raise AppError(f"prefab {source}: run.stage is {resolved['run.stage']}, not {stage}: fix the prefab or "
                           f"drop it to use {base} with run.stage={stage}")
        out.append(StagePlan(stage, source, resolved))
    return out


def checkpoint_dir(base: Path, run: RunDir, module: str) -> Path:
    """Where the run of a training module keeps its checkpoints: <base>/<phase dir>/<model_tag>."""
    try:
        tag = run.config().get("model_tag") or run.name
    except AppError:
        tag = run.name
    return Path(base) / PHASE_DIRS[PHASE_OF_MODULE[module]] / str(tag)


def _has_checkpoint(ckpt_dir: Path) -> bool:
    return ckpt_dir.is_dir() and any(ckpt_dir.glob("model_*.pt"))


class Pipeline:
    """One pipeline: its folder, plan and record. `run(launch)` runs what is left of it."""

    def __init__(self, base: Path, orch: RunOrchestrator, name: str, prefab: str, plans: list[StagePlan],
                 overrides: dict[str, Any] | None = None,
                 specs: Callable[[dict[str, Any]], list[LaunchSpec]] = specs_from_resolved):
        self.base, self.orch, self.name, self.plans, self.specs = Path(base), orch, name, plans, specs
        self.dir = PipelineDir(pipelines_root(self.base) / name)
        record = self.dir.read()
        if record is None:
            steps = [StepRecord(p.stage, m) for p in plans for m in modules_for(p.stage)]
            record = PipelineRecord(name, prefab, dict(overrides or {}), steps, created=time.time())
        else:
            known = {s.module for s in record.steps}
            record.steps += [StepRecord(p.stage, m) for p in plans for m in modules_for(p.stage) if m not in known]
        self.record = record
        self.stopped = False  # set by stop(): the running module was asked to stop, nothing more starts

    # ---- finding one again ----------------------------------------------------------------------------------
    @classmethod
    def open(cls, base: Path, orch: RunOrchestrator, prefab: str, plans: list[StagePlan],
             overrides: dict[str, Any] | None = None, new: bool = False, **kw: Any) -> Pipeline:
        """The unfinished pipeline of this prefab (newest) to continue, or a new one (also when `new`)."""
        root = pipelines_root(base)
        stem = plans[0].resolved.get("run.name") or prefab
        if not new and root.is_dir():
            candidates = sorted((d for d in root.iterdir() if d.name == stem or d.name.startswith(f"{stem}-")),
                                key=lambda d: d.stat().st_mtime, reverse=True)
            for d in candidates:
                rec = PipelineDir(d).read()
                if rec is not None and rec.prefab == prefab and rec.status != "finished":
                    return cls(base, orch, d.name, prefab, plans, rec.overrides | dict(overrides or {}), **kw)
            done = next((d for d in candidates if (rec := PipelineDir(d).read()) and rec.prefab == prefab), None)
            if done is not None and not new:
                return cls(base, orch, done.name, prefab, plans, overrides, **kw)
        name, n = stem, 2
        while (root / name).exists():
            name, n = f"{stem}-{n}", n + 1
        return cls(base, orch, name, prefab, plans, overrides, **kw)

    # ---- running ----------------------------------------------------------------------------------------------
    def save(self) -> None:
        self.dir.write(self.record)

    def _finished_run(self, module: str) -> RunDir | None:
        step = next((s for s in self.record.steps if s.module == module), None)
        if step is None or not step.done or step.last is None:
            return None
        return RunDir(self.orch.runs_dir / step.last.run)

    def source_for(self, module: str) -> Path | None:
        """The checkpoint dir the module starts from: what its previous stage wrote in this pipeline."""
        for prev in SOURCE_MODULES.get(module, ()):
            run = self._finished_run(prev)
            if run is not None:
                return checkpoint_dir(self.base, run, prev)
        return None

    def _spec(self, plan: StagePlan, module: str) -> LaunchSpec:
        resolved = dict(plan.resolved)
        own = str(resolved.get("run.name", ""))
        if plan.stage == "base":
            resolved["run.name"] = self.name
        elif not own.endswith(f"-{plan.stage}"):  # a stage prefab names its runs itself (cpu-tiny-sft)
            resolved["run.name"] = f"{self.name}-{plan.stage}"
        source = self.source_for(module)
        if source is not None:
            resolved["run.start_from"], resolved["run.start_step"] = str(source), -1
        specs = {s.module: s for s in self.specs(resolved)}
        return specs[f"engine.{module}"]

    def _attempt_spec(self, step: StepRecord, spec: LaunchSpec) -> tuple[LaunchSpec, Attempt]:
        """Resume the last attempt when it left a checkpoint of its own; else a fresh run name."""
        last = step.last
        if last is not None and step.module in PHASE_OF_MODULE and "resume" in type(spec.config).model_fields:
            run = RunDir(self.orch.runs_dir / last.run)
            if _has_checkpoint(checkpoint_dir(self.base, run, step.module)):
                cfg = spec.config.model_copy(update={"run": last.run, "resume": True})
                return replace(spec, config=cfg), Attempt(last.run, started=time.time(), resumed=True)
        name = self.orch.runs.unique_name(spec.config.run)
        update: dict[str, Any] = {"run": name}
        if "model_tag" in type(spec.config).model_fields:
            update["model_tag"] = name
        return replace(spec, config=spec.config.model_copy(update=update)), Attempt(name, started=time.time())

    def pending(self) -> list[StepRecord]:
        return [s for s in self.record.steps if not s.done and any(p.stage == s.stage for p in self.plans)]

    def run(self, launch: Launch, on_step: Callable[[StepRecord, Attempt], None] | None = None) -> PipelineRecord:
        """Run every module that has not finished, in order; stop at the first that does not finish."""
        self.record.status = "running"
        self.save()
        plans = {p.stage: p for p in self.plans}
        for step in self.pending():
            if self.stopped:
                break
            if step.last is not None and self._alive(step.last.run):
                attempt = step.last  # still running from before (a TUI quit leaves it going): wait for it
                if on_step is not None:
                    on_step(step, attempt)
                self._wait(attempt.run)
                self._settle(attempt)
            else:
                spec, attempt = self._attempt_spec(step, self._spec(plans[step.stage], step.module))
                step.attempts.append(attempt)
                self.save()
                if on_step is not None:
                    on_step(step, attempt)
                try:
                    launch(spec)
                finally:
                    self._settle(attempt)
            if attempt.status == "running":  # stop() came while it runs: it goes on, the record says so
                self.record.status = "stopped"
                break
            if attempt.status != "finished":
                self.record.status = "stopped" if attempt.status == "stopped" or self.stopped else "failed"
                break
        else:
            if all(s.done for s in self.record.steps if s.stage in plans):
                self.record.status, self.record.finished = "finished", time.time()
        self.save()
        return self.record

    def _alive(self, run: str) -> bool:
        try:
            return self.orch.info(run).status in ACTIVE
        except AppError:
            return False

    def _wait(self, run: str) -> None:
        while not self.stopped and self.orch.exited(run) is None:
            time.sleep(POLL_S)

    def _settle(self, attempt: Attempt) -> None:
        """Record how the attempt's run ended ("running" while a process of it lives)."""
        try:
            info = self.orch.info(attempt.run)
            if info.status in ACTIVE:
                attempt.status = "running"
            else:
                attempt.status = info.status if info.status in ("finished", "stopped") else "failed"
                attempt.exit_code, attempt.ended = info.exit_code, attempt.ended or time.time()
        except AppError:  # it never got a run dir
            attempt.status, attempt.ended = "failed", time.time()
        self.save()

    def stop(self) -> None:
        """Start nothing more (the caller stops the running module through the orchestrator)."""
        self.stopped = True

    def current_run(self) -> str | None:
        for step in self.record.steps:
            if step.last is not None and step.last.status == "running":
                return step.last.run
        return None


def launch_and_wait(orch: RunOrchestrator) -> Launch:
    """The plain launch: start the run and wait for its launcher to exit (no output)."""
    def launch(spec: LaunchSpec) -> int | None:
        info = orch.launch(spec)
        return orch.wait(info.name)
    return launch


def stage_run_names(record: PipelineRecord) -> dict[str, str]:
    """module -> the run of its newest attempt."""
    return {s.module: s.last.run for s in record.steps if s.last is not None}


__all__ = ["Pipeline", "StagePlan", "launch_and_wait", "plan", "split_overrides", "stage_run_names", "RUN_SUFFIX"]
