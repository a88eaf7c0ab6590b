"""Evaluate a base checkpoint: CORE-style tasks, val bits-per-byte and a few samples (`python -m engine.base_eval`).

Also runs under torchrun (gloo on CPU): the ranks split each task's examples and the counts are summed.
Rank 0 writes telemetry (`run_start` stage "eval", one `eval_result` per task, `eval`, `sample`, `run_end`)
and the results beside the checkpoint, atomically: `<ckpt_dir>/eval_core_<step:06d>.json`. The control
channel is polled before each CORE task, before the bpb pass and before the samples (engine/eval_control.py):
a stop ends the run "stopped" with no results file; save_now and patch are answered as rejected.
"""

from __future__ import annotations

if __name__ == "__main__":
    from engine.lifeline import tie_to_launcher

    tie_to_launcher()

import json
import os
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from engine.base_eval_config import BaseEvalConfig
from engine.checkpoint import resolve_source
from engine.errors import EngineError
from engine.stage import StageRun, stage_main

SAMPLE_PROMPTS = ["The Python standard library", "def main():", "import os\n", "class Config:"]


def eval_file(ckpt_dir: Path, suite: str, step: int) -> Path:
    return Path(ckpt_dir) / f"eval_{suite}_{step:06d}.json"


def core_results(model, tokenizer, tasks, device, max_per_task: int, max_len: int | None,
                 before: Callable[[int], None] | None = None) -> list[dict[str, Any]]:
    """One {task, metric, value, n, baseline, centered} per CORE task (identical on every rank).

    `before(done)` runs before each task on every rank, with the number of tasks scored so far."""
    from engine.common import print0
    from engine.core_eval import centered, evaluate_task, subsample

    out = []
    for task in tasks:
        if before is not None:
            before(len(out))
        t0 = time.time()
        task = subsample(task, max_per_task)
        acc, n = evaluate_task(model, tokenizer, task, device, max_len)
        row = {"task": task.label, "metric": "accuracy", "value": acc, "n": n, "baseline": task.baseline,
               "centered": centered(acc, task.baseline)}
        out.append(row)
        print0(f"{task.label:<28} {task.task_type:<18} {task.num_fewshot}-shot | acc {acc:.4f} | centered "
               f"{row['centered']:+.4f} | n {n} | {time.time() - t0:.1f}s")
    return out


def run_eval(run: StageRun) -> str:
    import torch

    from engine import __version__
    from engine.common import init_distributed, print0
    from engine.core_eval import load_bundle, shipped_bundle
    from engine.eval_control import EvalControl, Stopped
    from engine.inference_load import load_model

    cfg: BaseEvalConfig = run.cfg
    info = init_distributed(cfg.device_type)
    tasks = load_bundle(cfg.bundle or shipped_bundle()) if cfg.core else []  # a bad bundle fails before the model
    ckpt_dir, step = resolve_source(run.base, "base_eval", cfg.source, cfg.source_step)
    run.step = step
    model, tokenizer, meta = load_model(ckpt_dir, step, info.device, cfg.tokenizer_dir)
    torch.manual_seed(cfg.seed)
    checkpoint = str(ckpt_dir / f"model_{step:06d}.pt")
    run.tel.emit("run_start", config=cfg.model_dump(), world_size=info.world_size, device=str(info.device),
                 dtype="float32", num_params=model.num_params(), num_flops_per_token=float(model.estimate_flops()),
                 num_iterations=0, tokens_per_step=0, engine_version=__version__, pid=os.getpid(),
                 run_dir=str(run.run_dir), resumed_from_step=None, stage="eval")
    print0(f"evaluating {checkpoint} ({model.num_params():,} params) on {len(tasks)} CORE tasks, world "
           f"{info.world_size}")

    control = EvalControl(run.run_dir, info, run.tel, "CORE tasks")
    try:
        results, score, val_bpb, samples = evaluate(run, cfg, model, tokenizer, meta, info, tasks, step, checkpoint,
                                                    lambda done: control.poll(done, len(tasks), step))
    except Stopped:
        print0("evaluation stopped: no results file written")
        return "stopped"

    if info.master:
        from engine.shared import atomic_write

        doc = {"suite": "core", "step": step, "checkpoint": checkpoint, "results": results, "score": score,
               "val_bpb": val_bpb, "samples": [{"prompt": p, "text": t} for p, t in samples],
               "bundle": str(cfg.bundle or shipped_bundle()), "max_per_task": cfg.max_per_task, "time": time.time()}
        path = eval_file(ckpt_dir, "core", step)
        atomic_write(path, json.dumps(doc, indent=2))
        print0(f"results written to {path}")
    return "finished"


def evaluate(run: StageRun, cfg: BaseEvalConfig, model, tokenizer, meta: dict, info, tasks, step: int,
             checkpoint: str, poll: Callable[[int], None]) -> tuple[list[dict[str, Any]], float | None,
                                                                  float | None, list[tuple[str, str]]]:
    """CORE results, score, val bpb and samples, each emitted as telemetry; `poll(done)` answers the control
    channel before each CORE task, the bpb pass and the samples (every rank alike: samples are rank 0's)."""
    from engine.common import print0

    results = core_results(model, tokenizer, tasks, info.device, cfg.max_per_task, model.config.sequence_len,
                           before=poll)
    for row in results:
        run.tel.emit("eval_result", suite="core", step=step, checkpoint=checkpoint, **row)
    score = sum(r["centered"] for r in results) / len(results) if results else None
    if score is not None:
        print0(f"CORE score (mean centered accuracy): {score:.4f}")
    poll(len(tasks))
    val_bpb = bpb(cfg, model, tokenizer, meta, info, run.base) if cfg.bpb_tokens > 0 else None
    if val_bpb is not None:
        run.tel.emit("eval", step=step, val_bpb=val_bpb)
        print0(f"val bpb: {val_bpb:.4f}")
    poll(len(tasks))
    samples = make_samples(model, tokenizer, cfg) if info.master and cfg.samples else []
    for prompt, text in samples:
        run.tel.emit("sample", step=step, prompt=prompt, text=text)
        print0(f"sample | {prompt!r} -> {text!r}")
    return results, score, val_bpb, samples


def bpb(cfg: BaseEvalConfig, model, tokenizer, meta: dict, info, base: Path) -> float:
    from engine.corpus import resolve_data_dir
    from engine.dataloader import make_loader
    from engine.loss_eval import evaluate_bpb

    data_dir = cfg.data_dir or (meta.get("data_dir") if isinstance(meta.get("data_dir"), str) else None)
    if data_dir and not Path(data_dir).is_dir() and not cfg.data_dir:
        data_dir = None  # the run's data moved: fall back to the embedded corpus
    data_dir = resolve_data_dir(data_dir, base)
    T = model.config.sequence_len
    per_step = cfg.device_batch_size * T * info.world_size
    steps = max(1, cfg.bpb_tokens // per_step)
    loader = make_loader(tokenizer, cfg.device_batch_size, T, "val", data_dir, info.rank, info.world_size,
                         info.device)
    return evaluate_bpb(model, loader, steps, tokenizer.token_bytes().to(info.device), nullcontext())


def make_samples(model, tokenizer, cfg: BaseEvalConfig) -> list[tuple[str, str]]:
    from engine.engine import Engine

    engine = Engine(model, tokenizer)
    out = []
    for prompt in SAMPLE_PROMPTS[:cfg.samples]:
        tokens = tokenizer.encode(prompt, prepend=tokenizer.get_bos_token_id())
        rows, _ = engine.generate_batch(tokens, num_samples=1, max_tokens=cfg.sample_tokens, temperature=0.0)
        out.append((prompt, tokenizer.decode(rows[0][len(tokens):])))
    return out


def main(argv: list[str] | None = None) -> int:
    return stage_main("engine.base_eval", BaseEvalConfig, run_eval, argv,
                      "CORE-style evaluation of a base checkpoint, plus val bpb and samples.")


if __name__ == "__main__":
    try:
        sys.exit(main())
    except EngineError as e:  # pragma: no cover - stage_main turns these into lines already
        print(f"engine.base_eval: error: {e}", file=sys.stderr)
        sys.exit(2)
