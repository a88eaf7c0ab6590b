"""Pipeline stages as launches: which engine module(s) a stage runs, the config each one gets, and which
checkpoint it would start from.

A resolved config's `run.stage` picks the modules (base: engine.train; sft: engine.sft; rl: engine.rl; eval:
engine.base_eval then engine.chat_eval). Each module has its own pydantic config class (in a torch-free
`engine.<module>_config`); the app fills the keys every stage shares (run, base_dir, device_type, seed, source,
cadence, horizon, resume) where the class has them, then `run.stage_options` (key=value pairs) on top, and
the class validates the lot.

`starts_from()` answers the Config tab's question without torch: the checkpoint dir and step that
`source: auto` (or an explicit path) gives, or one line saying none exists and what to run first.
"""

from __future__ import annotations

import importlib
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from engine.config import explain
from engine.shared import PHASE_DIRS
from nanochat_cli.errors import AppError

STAGE_MODULES: dict[str, tuple[str, ...]] = {
    "base": ("train",), "sft": ("sft",), "rl": ("rl",), "eval": ("base_eval", "chat_eval"),
}
# engine module -> (module that defines its config class, class name); the contract names the classes
CONFIG_CLASSES: dict[str, tuple[str, str]] = {
    "train": ("engine.config", "TrainConfig"), "sft": ("engine.sft_config", "SFTConfig"),
    "rl": ("engine.rl_config", "RLConfig"), "base_eval": ("engine.base_eval_config", "BaseEvalConfig"),
    "chat_eval": ("engine.chat_eval_config", "ChatEvalConfig"),
}
# engine module -> the checkpoint phases `source: auto` looks in, first match wins (docs: POSTTRAIN contract)
SOURCE_PHASES: dict[str, tuple[str, ...]] = {
    "sft": ("base",), "rl": ("sft",), "base_eval": ("base",), "chat_eval": ("rl", "sft"),
}
# what to run to get a checkpoint of a phase, for the "nothing to start from" line
MAKE_PHASE = {"base": "nanochat-cli train --prefab cpu-tiny", "sft": "nanochat-cli train --prefab cpu-tiny-sft",
              "rl": "nanochat-cli train --prefab cpu-tiny-rl"}
# eval runs two modules, each in its own run: <run.name>-core, <run.name>-chat
RUN_SUFFIX = {"base_eval": "core", "chat_eval": "chat"}
# app config key -> the stage config field it fills (where the stage's class has that field)
SHARED_KEYS: dict[str, str] = {
    "run.name": "run", "run.base_dir": "base_dir", "training.seed": "seed", "run.start_from": "source",
    "run.start_step": "source_step", "training.num_iterations": "num_iterations",
    "training.device_batch_size": "device_batch_size", "telemetry.eval_every": "eval_every",
    "telemetry.save_every": "save_every", "telemetry.log_every": "log_every", "run.resume": "resume",
    "run.model_tag": "model_tag",
}


def modules_for(stage: str) -> tuple[str, ...]:
    try:
        return STAGE_MODULES[stage]
    except KeyError:
        raise AppError(f"run.stage: {stage!r} is not a stage: use one of {', '.join(STAGE_MODULES)}") from None


def config_class(module: str) -> type[BaseModel]:
    """The pydantic config class of engine module `module` (torch-free modules, imported on first use)."""
    where, name = CONFIG_CLASSES[module]
    try:
        cls = getattr(importlib.import_module(where), name)
    except (ImportError, AttributeError) as e:
        raise AppError(f"engine.{module}: not available in this install ({type(e).__name__}: {e}): update "
                       "nanochat-cli to a version with post-training stages") from None
    return cls


def parse_options(text: str) -> dict[str, str]:
    """'a=1 b="x y"' -> {'a': '1', 'b': 'x y'}; a one-line error naming run.stage_options otherwise."""
    out: dict[str, str] = {}
    try:
        items = shlex.split(text or "")
    except ValueError as e:
        raise AppError(f"run.stage_options: {e}: quote values with spaces, e.g. tasks='a b'") from None
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip().lstrip("-").replace("-", "_")
        if not sep or not key:
            raise AppError(f"run.stage_options: {item!r} is not key=value: write e.g. num_samples=4")
        out[key] = value
    return out


def stage_values(resolved: dict[str, Any], module: str, fields: dict[str, Any],
                 stage_fields: set[str] | None = None) -> dict[str, Any]:
    """The values the app gives stage module `module` whose config class has `fields` (name -> FieldInfo).
    `stage_fields`: every field of the stage's modules (eval has two): an option that only the other module
    has is left to it, one that none has is an error."""
    values: dict[str, Any] = {}
    for key, name in SHARED_KEYS.items():
        if name in fields and key in resolved:
            values[name] = resolved[key]
    if "device_type" in fields:
        device = resolved.get("hardware.device", "auto")
        values["device_type"] = "" if device == "auto" else device
    if "run" in values and len(modules_for(resolved.get("run.stage", "base"))) > 1:
        values["run"] = f"{values['run']}-{RUN_SUFFIX[module]}"  # eval: one run per module
    options = parse_options(resolved.get("run.stage_options", ""))
    known = set(fields) | (stage_fields or set())
    unknown = sorted(set(options) - known)
    if unknown:
        modules = " or ".join(f"engine.{m}" for m in modules_for(resolved.get("run.stage", "base"))) \
            if stage_fields else f"engine.{module}"
        raise AppError(f"run.stage_options: {unknown[0]}: not a setting of {modules}: use one of "
                       f"{', '.join(sorted(known))}")
    return {**values, **{k: v for k, v in options.items() if k in fields}}


def build_config(resolved: dict[str, Any], module: str) -> BaseModel:
    """The validated config object of stage module `module` for the resolved app config."""
    cls = config_class(module)
    others = [m for m in modules_for(resolved.get("run.stage", "base")) if m not in (module, "train")]
    stage_fields = set().union(*(config_class(m).model_fields for m in others)) if others else None
    values = stage_values(resolved, module, cls.model_fields, stage_fields)
    try:
        return cls.model_validate(values)
    except ValidationError as e:
        raise AppError(explain(e, f"engine.{module} config")) from None


# ---- where a stage starts from (torch-free) ------------------------------------------------------------------

@dataclass(frozen=True)
class StartPoint:
    """The checkpoint a stage module would load, or why there is none (`problem`, one line with the fix)."""

    module: str
    ckpt_dir: Path | None = None
    step: int | None = None
    problem: str | None = None

    def line(self) -> str:
        if self.problem:
            return f"engine.{self.module}: {self.problem}"
        return f"engine.{self.module} starts from {self.ckpt_dir} step {self.step}"


def _steps(ckpt_dir: Path) -> list[int]:
    """Complete steps (meta and model both there) of one checkpoint dir."""
    try:
        names = set(p.name for p in ckpt_dir.iterdir())
    except OSError:
        return []
    return sorted(int(n[5:11]) for n in names if n.startswith("meta_") and n.endswith(".json") and len(n) == 16
                  and n[5:11].isdigit() and f"model_{n[5:11]}.pt" in names)


def _newest_dir(root: Path) -> Path | None:
    """The checkpoint dir under `root` with the newest complete step file (by mtime)."""
    best: tuple[float, Path] | None = None
    if not root.is_dir():
        return None
    for d in root.iterdir():
        steps = _steps(d) if d.is_dir() and not d.name.startswith(".") else []
        if steps:
            mtime = (d / f"model_{steps[-1]:06d}.pt").stat().st_mtime
            best = (mtime, d) if best is None or mtime > best[0] else best
    return best[1] if best else None


def start_point(base: Path, module: str, source: str = "auto", step: int = -1) -> StartPoint:
    """Where `module` starts: `source` auto (newest checkpoint of the previous stage), a dir or a model file."""
    if module not in SOURCE_PHASES:
        return StartPoint(module)  # pretraining starts from scratch (or run.init_from)
    if source == "auto":
        ckpt_dir = None
        for phase in SOURCE_PHASES[module]:
            ckpt_dir = _newest_dir(Path(base) / PHASE_DIRS[phase])
            if ckpt_dir is not None:
                break
        if ckpt_dir is None:
            phase = SOURCE_PHASES[module][-1]
            return StartPoint(module, problem=f"no {phase} checkpoint in {Path(base) / PHASE_DIRS[phase]}: train one "
                                              f"first with {MAKE_PHASE[phase]}")
    else:
        path = Path(source).expanduser()
        if path.is_file() and path.name.startswith("model_") and path.suffix == ".pt":
            ckpt_dir, step = path.parent, int(path.stem[6:]) if path.stem[6:].isdigit() else step
        else:
            ckpt_dir = path
    steps = _steps(ckpt_dir)
    if not steps:
        return StartPoint(module, problem=f"run.start_from: {ckpt_dir} holds no complete checkpoint: give a "
                                          "checkpoint dir or model_XXXXXX.pt file, or auto")
    if step >= 0 and step not in steps:
        return StartPoint(module, problem=f"run.start_step: {step} is not a saved step of {ckpt_dir}: use one of "
                                          f"{', '.join(map(str, steps[-5:]))} or -1")
    return StartPoint(module, ckpt_dir, step if step >= 0 else steps[-1])


def starts_from(resolved: dict[str, Any], base: Path) -> list[StartPoint]:
    """For each module of the config's stage, the checkpoint it starts from (empty for base pretraining)."""
    stage = resolved.get("run.stage", "base")
    if stage == "base":
        return []
    return [start_point(base, m, resolved.get("run.start_from", "auto"), resolved.get("run.start_step", -1))
            for m in modules_for(stage)]
