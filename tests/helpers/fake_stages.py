"""Stand-ins for the pipeline's engine modules (train, sft, rl, base_eval, chat_eval): torch-free, quick, real.

`stage_orchestrator(base, tmp)` returns a RunOrchestrator whose "python" is a wrapper around this file: the
orchestrator's real command line (`python -m torch.distributed.run ... -m engine.<module> -- --config C`)
runs it in one process. Each module reads its config, checks its source checkpoint, writes real telemetry
(run_start with its stage, steps, eval val_loss, rollouts, eval_result, checkpoint, run_end), checkpoint
files in nanochat's layout and, for the eval modules, `eval_<suite>_<step>.json` beside the checkpoint.
Knobs, through the environment (inherited by the job):

    FAKE_FAIL_MODULE=sft   that module saves a checkpoint at step 1, then fails (exit 1)
    FAKE_SLOW_MODULE=sft   that module takes 0.2 s a step and obeys a stop request (saves, run_end stopped)
"""

from __future__ import annotations

import json
import os
import stat
import sys
import time
from pathlib import Path

PHASE_DIR = {"train": "base_checkpoints", "sft": "chatsft_checkpoints", "rl": "chatrl_checkpoints"}
STAGE = {"train": "base", "sft": "sft", "rl": "rl", "base_eval": "eval", "chat_eval": "eval"}
SOURCE = {"sft": ["base_checkpoints"], "rl": ["chatsft_checkpoints"], "base_eval": ["base_checkpoints"],
          "chat_eval": ["chatrl_checkpoints", "chatsft_checkpoints"]}


def stage_orchestrator(base: Path, tmp: Path):
    from nanochat_cli.services.runs import RunOrchestrator

    wrapper = tmp / "fake-stage-python"
    wrapper.write_text(f"#!/bin/sh\nexec {sys.executable} {Path(__file__).resolve()} \"$@\"\n")
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    return RunOrchestrator(base, python=str(wrapper))


def fake_specs(resolved: dict):
    """specs_from_resolved, with a stand-in config class for the post-training modules (same field mapping)."""
    from typing import Literal

    from pydantic import BaseModel, ConfigDict

    from nanochat_cli.services.config.schema import to_engine_config
    from nanochat_cli.services.runs.launch import LaunchSpec
    from nanochat_cli.services.runs.stages import modules_for, stage_values

    class FakeStageConfig(BaseModel):
        model_config = ConfigDict(extra="forbid")
        run: str = "x"
        base_dir: str | None = None
        device_type: Literal["", "cpu", "cuda", "mps"] = ""
        seed: int = 42
        source: str = "auto"
        source_step: int = -1
        num_iterations: int = 10
        eval_every: int = 5
        log_every: int = 1
        resume: bool = False
        model_tag: str | None = None

    class FakeEvalConfig(BaseModel):
        model_config = ConfigDict(extra="forbid")
        run: str = "x"
        base_dir: str | None = None
        source: str = "auto"
        source_step: int = -1

    resolved = {**resolved, "run.stage_options": ""}  # the real modules' own settings mean nothing here
    out = []
    for module in modules_for(resolved["run.stage"]):
        if module == "train":
            config = to_engine_config(resolved)
        else:
            cls = FakeEvalConfig if module.endswith("eval") else FakeStageConfig
            config = cls(**stage_values(resolved, module, cls.model_fields))
        out.append(LaunchSpec(config=config, nproc_per_node=1, module=f"engine.{module}",
                              stage=resolved["run.stage"]))
    return out


def _newest(base: Path, module: str) -> Path | None:
    for d in SOURCE[module]:
        root = base / d
        dirs = [p for p in root.iterdir() if any(p.glob("model_*.pt"))] if root.is_dir() else []
        if dirs:
            return max(dirs, key=lambda p: p.stat().st_mtime)
    return None


def _save(ckpt_dir: Path, step: int, module: str, source: str | None) -> None:
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    (ckpt_dir / f"model_{step:06d}.pt").write_bytes(b"fake weights")
    (ckpt_dir / f"meta_{step:06d}.json").write_text(json.dumps({"step": step, "stage": STAGE[module],
                                                                  "source": source}))


def main(argv: list[str]) -> int:
    import yaml

    from engine.telemetry import TelemetryWriter

    module = argv[argv.index("-m", argv.index("torch.distributed.run")) + 1].removeprefix("engine.")
    cfg = yaml.safe_load(Path(argv[argv.index("--config") + 1]).read_text())
    base, run = Path(cfg["base_dir"]), cfg["run"]
    run_dir = base / "runs" / run
    tel = TelemetryWriter(run_dir / "telemetry.jsonl", run=run)
    total = int(cfg.get("num_iterations", 4))
    if total < 1:
        total = 4
    source = None
    if module in SOURCE:
        src = cfg.get("source", "auto")
        source_dir = _newest(base, module) if src == "auto" else Path(src)
        if source_dir is None or not any(source_dir.glob("model_*.pt")):
            tel.emit("error", message=f"source: no checkpoint for {module} ({src})", traceback="")
            tel.emit("run_end", status="failed", reason="no source checkpoint", step=0, elapsed=0.0)
            return 1
        source = str(source_dir)
    ckpt_dir = base / PHASE_DIR[module] / (cfg.get("model_tag") or run) if module in PHASE_DIR else None
    start = 0
    if cfg.get("resume") and ckpt_dir is not None and ckpt_dir.is_dir():
        start = max(int(p.stem[6:]) for p in ckpt_dir.glob("model_*.pt"))
    tel.emit("run_start", config=cfg, world_size=1, device="cpu", dtype="float32", num_params=1000,
             num_flops_per_token=1.0, num_iterations=total if ckpt_dir else 0, tokens_per_step=64,
             engine_version="fake", pid=os.getpid(), run_dir=str(run_dir), stage=STAGE[module],
             resumed_from_step=start or None)
    t0 = time.time()
    fail = os.environ.get("FAKE_FAIL_MODULE") == module
    slow = os.environ.get("FAKE_SLOW_MODULE") == module
    control = None
    if slow:
        from engine.control import ControlChannel

        control = ControlChannel(run_dir)
    if module in ("base_eval", "chat_eval"):
        suite = "core" if module == "base_eval" else "chat"
        tasks = [("arithmetic_mc", 0.25), ("python_brackets", 0.5)] if suite == "core" else \
            [("Arithmetic", None), ("SpellCount", None), ("MultipleChoice", 0.25)]
        results = []
        for i, (task, baseline) in enumerate(tasks):
            value = 0.4 + 0.1 * i
            centered = (value - baseline) / (1 - baseline) if baseline is not None else None
            row = {"task": task, "metric": "accuracy", "value": value, "n": 20, "baseline": baseline,
                   "centered": centered}
            results.append(row)
            tel.emit("eval_result", suite=suite, checkpoint=source, step=0, **row)
        step = max(int(p.stem[6:]) for p in Path(source).glob("model_*.pt"))
        score = sum(r["centered"] if suite == "core" else r["value"] for r in results) / len(results)
        (Path(source) / f"eval_{suite}_{step:06d}.json").write_text(json.dumps(
            {"suite": suite, "step": step, "checkpoint": source, "results": results, "score": score}))
        tel.emit("run_end", status="finished", reason="done", step=0, elapsed=time.time() - t0)
        return 0
    for step in range(start + 1, total + 1):
        loss = 4.0 - 0.1 * step
        tel.emit("step", step=step, total=total, loss=loss, smooth_loss=loss, lr_mult=1.0, muon_momentum=0.9,
                 tokens_per_sec=100.0, dt=0.01, t_data=0.0, t_fwd_bwd=0.01, t_optim=0.0, mem_bytes=1,
                 tokens_seen=64 * step, elapsed=time.time() - t0, eta=None)
        if module == "sft" and (step == 1 or step == total):
            tel.emit("eval", step=step - 1 if step == 1 else step, val_loss=3.0 - 0.2 * step)
        if module == "rl":
            reward = min(1.0, 0.1 * step)
            tel.emit("rollout", step=step, prompts=2, k=4, reward_mean=reward, reward_std=0.1,
                     pass_at_k={"1": reward, "4": min(1.0, 2 * reward)}, mean_len=20.0 + step, max_len=40,
                     tool_call_rate=0.5, samples=[{"prompt": f"What is {step}+1?", "response": str(step + 1),
                                                   "reward": 1.0}])
        if control is not None:
            time.sleep(0.2)
            if any(req.kind == "stop" for req in control.poll(step)):
                _save(ckpt_dir, step, module, source)
                tel.emit("run_end", status="stopped", reason="stop requested", step=step, elapsed=time.time() - t0)
                return 0
        if fail and step == start + 1:
            _save(ckpt_dir, step, module, source)
            tel.emit("error", message=f"{module} failed on purpose", traceback="")
            tel.emit("run_end", status="failed", reason="failed on purpose", step=step, elapsed=time.time() - t0)
            return 1
    if module == "train":
        tel.emit("eval", step=total, val_bpb=2.0)
    _save(ckpt_dir, total, module, source)
    tel.emit("checkpoint", step=total, path=str(ckpt_dir / f"model_{total:06d}.pt"), reason="final", seconds=0.01,
             bytes=12)
    tel.emit("run_end", status="finished", reason="done", step=total, elapsed=time.time() - t0)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
