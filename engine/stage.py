"""What every post-training stage module (`engine.rl`, `engine.base_eval`, …) shares with `engine.train`.

Flags generated from a stage's pydantic config class (same `--config FILE.yaml` + `--key=value` rules as
`engine.train`), the newest checkpoint of the previous stage (`source: auto`), and the run wrapper that
owns the run dir, the telemetry writer and the `run_end` event however the stage ends.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from engine.config import explain, load_yaml_config
from engine.errors import EngineError
from engine.shared import PHASE_DIRS, base_dir, one_line

# the stage whose checkpoints a stage starts from when its source is `auto` (the contract's table)
PREVIOUS_STAGE = {"sft": ("sft", "base"), "rl": ("rl", "sft"), "base_eval": ("eval", "base")}


def _allows_none(annotation: Any) -> bool:
    return annotation is None or type(None) in typing.get_args(annotation) or (
        isinstance(annotation, types.UnionType) and type(None) in annotation.__args__)


def build_stage_parser(cls: type[BaseModel], prog: str, description: str) -> argparse.ArgumentParser:
    """`--flag` per field of `cls` (`--x/--no-x` for booleans), plus `--config`."""
    p = argparse.ArgumentParser(prog=prog, description=description)
    p.add_argument("--config", help="YAML file with config keys (flat, or in sections); flags override it")
    for name, f in cls.model_fields.items():
        flag = "--" + name.replace("_", "-")
        if f.annotation is bool:
            p.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, default=None, help=f.description)
        else:
            p.add_argument(flag, dest=name, default=None, help=f.description, metavar=name.upper())
    return p


def parse_stage_config(cls: type[BaseModel], argv: list[str] | None, prog: str, description: str = "") -> Any:
    """Flags over --config over defaults; any problem is an EngineError of one line."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--"]:
        argv = argv[1:]
    args = build_stage_parser(cls, prog, description).parse_args(argv)
    values: dict[str, Any] = {}
    if args.config:
        values = {k: v for k, v in load_yaml_config(args.config).items()}
        unknown = sorted(set(values) - set(cls.model_fields))
        if unknown:
            raise EngineError(f"{args.config}: unknown key {unknown[0]!r} for {prog}: use one of "
                              f"{', '.join(cls.model_fields)}")
    values.update({k: v for k, v in vars(args).items() if k != "config" and v is not None})
    for name, f in cls.model_fields.items():
        if values.get(name) in ("", "none", "None") and _allows_none(f.annotation):
            values[name] = None
    try:
        return cls(**values)
    except ValidationError as e:
        raise EngineError(explain(e, args.config or "flags")) from None


def stage_base(cfg: Any) -> Path:
    return Path(cfg.base_dir).expanduser() if getattr(cfg, "base_dir", None) else base_dir()


def resolve_source(base: Path, stage: str, source: str, step: int = -1) -> tuple[Path, int]:
    """(checkpoint dir, step) a stage starts from: `source` is a checkpoint dir, a model_XXXXXX.pt file or
    `auto` (the newest checkpoint dir, by mtime, of the previous stage under `base`); step -1 = newest."""
    from engine.checkpoint import complete_steps
    from engine.inference_load import resolve_checkpoint

    if source != "auto":
        return resolve_checkpoint(source, None if step < 0 else step)
    phase = PREVIOUS_STAGE[stage][1]
    root = Path(base) / PHASE_DIRS[phase]
    dirs = [d for d in root.iterdir() if d.is_dir() and complete_steps(d)] if root.is_dir() else []
    if not dirs:
        hint = "nanochat-cli train --prefab cpu-tiny" if phase == "base" else f"the {phase} stage"
        raise EngineError(f"source: no {phase} checkpoint in {root}: train one first with {hint}, or pass "
                          "--source PATH")
    newest = max(dirs, key=lambda d: max(p.stat().st_mtime for p in d.glob("meta_*.json")))
    return resolve_checkpoint(newest, None if step < 0 else step)


class StageRun:
    """The run dir, telemetry writer and ending of one stage process (rank 0 writes the telemetry)."""

    def __init__(self, prog: str, cfg: Any):
        from engine.lifeline import record_pid
        from engine.telemetry import TELEMETRY_FILE, TelemetryWriter

        self.prog, self.cfg = prog, cfg
        self.base = stage_base(cfg)
        self.run_dir = self.base / "runs" / cfg.run
        self.rank = int(os.environ.get("RANK", 0))
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            record_pid(self.run_dir, self.rank)
        except OSError as e:
            raise EngineError(f"run dir {self.run_dir}: not writable ({e.strerror}): set --base-dir or "
                              "NANOCHAT_BASE_DIR to a writable folder") from None
        self.tel = TelemetryWriter(self.run_dir / TELEMETRY_FILE, run=cfg.run, enabled=self.rank == 0)
        self.step = 0  # the step reached, for run_end

    def run(self, body: Callable[[StageRun], str]) -> int:
        """Run `body(self)` -> "finished"/"stopped"; errors become one line, `run_end` is always written."""
        from engine.common import cleanup_distributed

        t0, status, reason, code = time.time(), "failed", "", 1
        try:
            status = body(self)
            reason, code = ("completed" if status == "finished" else "stop requested"), 0
        except EngineError as e:
            reason = one_line(e)
            self.tel.emit("error", message=reason, traceback="", step=None)
            print(f"{self.prog}: error: {reason}", file=sys.stderr)
        except KeyboardInterrupt:
            status, reason, code = "stopped", "interrupted (SIGINT)", 130
        except Exception as e:
            reason = one_line(e)
            self.tel.emit("error", message=reason, traceback=traceback.format_exc(), step=None)
            traceback.print_exc()
            print(f"{self.prog}: error: {reason}", file=sys.stderr)
        finally:
            self.tel.emit("run_end", status=status, reason=reason, step=self.step, elapsed=time.time() - t0)
            self.tel.close()
            cleanup_distributed()
        return code


def stage_main(prog: str, cls: type[BaseModel], body: Callable[[StageRun], str], argv: list[str] | None,
               description: str = "") -> int:
    """Parse the config (exit 2 on a bad one), then run `body` inside a StageRun."""
    try:
        cfg = parse_stage_config(cls, argv, prog, description)
        run = StageRun(prog, cfg)
    except EngineError as e:
        print(f"{prog}: error: {one_line(e)}", file=sys.stderr)
        return 2
    return run.run(body)
