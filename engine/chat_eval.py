"""Chat evaluation: `python -m engine.chat_eval [flags]` (torchrun-able; ranks split the examples).

Scores a chat checkpoint (default: the newest RL one, else the newest SFT one) on tasks with right answers.
Generative tasks (arithmetic with the calculator tool, spelling) sample `num_samples` answers per question
through the KV-cache Engine, running tool calls, and the task scores the text: a question passes when any
sample is right (pass@k). Categorical tasks (multiple choice) take the answer letter with the highest
logit after the prompt, among the letters offered. Each task's result is an `eval_result` event, and all of
them go to `<checkpoint dir>/eval_chat_<step>.json` (written atomically), which the Checkpoints tab reads.

The control channel is polled every `poll_every` examples (every rank at the same points): `stop` ends the
run after the example window in progress, status "stopped", without the results file (a partial score would
read as a complete one; the finished tasks' `eval_result` events are in the telemetry); `save_now` and
`patch` are answered with a rejection, since an evaluation has no state to save and no hot settings.
"""

from __future__ import annotations

if __name__ == "__main__":  # before torch's slow import: a worker must not outlive its launcher
    from engine.lifeline import tie_to_launcher

    tie_to_launcher()

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from engine import __version__
from engine.chat_eval_config import ChatEvalConfig
from engine.checkpoint import model_file, resolve_source
from engine.common import DistInfo, EngineError, compute_dtype, print0
from engine.config import parse_config
from engine.engine import Engine
from engine.eval_control import EvalControl, Stopped
from engine.shared import atomic_write, base_dir
from engine.sinks import Sinks
from engine.startup import StartupClock
from engine.tasks import Task, build_task, load_gsm8k_jsonl, load_mc_rows
from engine.telemetry import TelemetryWriter
from engine.tokenizer import Tokenizer
from engine.train import run_training

SUITE = "chat"


def parse_chat_eval_config(argv: list[str] | None = None) -> ChatEvalConfig:
    return parse_config(argv, ChatEvalConfig, "engine.chat_eval", "Score a chat checkpoint on tasks.")


def _split(text: str) -> list[str]:
    return [p.strip() for p in text.split(",") if p.strip()]


def eval_tasks(cfg: ChatEvalConfig) -> list[Task]:
    """The tasks to score: offline ones on their held-out "eval" split, then the files given (first N rows)."""
    tasks = [build_task(name, "eval", cfg.num_examples, cfg.seed) for name in _split(cfg.tasks)]
    for key, loader in (("gsm8k", load_gsm8k_jsonl), ("mc", load_mc_rows)):
        for path in _split(getattr(cfg, key)):
            if not Path(path).expanduser().is_file():
                raise EngineError(f"{key}: {path}: no such file: fix the path or drop it from {key}")
            task, report = loader(path, name=Path(path).stem)
            if not len(task):
                raise EngineError(f"{key}: {report.summary()}: no usable rows")
            tasks.append(task[:cfg.num_examples])
    if not tasks:
        raise EngineError("chat_eval: no tasks to score: set tasks, gsm8k or mc")
    return tasks


def letter_ids(tokenizer: Tokenizer, letters: list[str]) -> list[int]:
    """The token id each answer letter starts with, as the rendered reply writes it."""
    return [tokenizer.encode(letter)[0] for letter in letters]


@torch.no_grad()
def score_categorical(model: torch.nn.Module, tokenizer: Tokenizer, task: Task, indices: list[int],
                      batch_size: int = 8) -> int:
    """How many of the examples `indices` the model answers right by the logits of the offered letters."""
    device = next(model.parameters()).device
    bos = tokenizer.get_bos_token_id()
    right = 0
    for start in range(0, len(indices), batch_size):
        batch = [task[i] for i in indices[start:start + batch_size]]
        prompts = [tokenizer.render_for_completion(c) for c in batch]
        width = max(len(p) for p in prompts)
        ids = torch.tensor([p + [bos] * (width - len(p)) for p in prompts], dtype=torch.long, device=device)
        logits = model(ids)  # causal: the padding after a prompt never changes its last position
        for row, (conversation, prompt) in enumerate(zip(batch, prompts, strict=True)):
            letters = conversation.get("letters") or task.letters
            scores = logits[row, len(prompt) - 1, letter_ids(tokenizer, letters)]
            right += task.evaluate(conversation, letters[int(scores.argmax())])
    return right


def score_generative(engine: Engine, tokenizer: Tokenizer, task: Task, indices: list[int], num_samples: int = 1,
                     temperature: float = 0.0, top_k: int | None = 50, max_new_tokens: int = 128,
                     seed: int = 42) -> int:
    """How many examples pass: any of `num_samples` sampled answers (tool calls run) is right."""
    passed = 0
    for i in indices:
        conversation = task[i]
        prompt = tokenizer.render_for_completion(conversation)
        rows, _ = engine.generate_batch(prompt, num_samples=num_samples, max_tokens=max_new_tokens,
                                        temperature=temperature, top_k=top_k, seed=seed + i)
        answers = [tokenizer.decode(row[len(prompt):]) for row in rows]
        passed += any(task.evaluate(conversation, a) for a in answers)
    return passed


def evaluate_task(model: torch.nn.Module, tokenizer: Tokenizer, task: Task, *, rank: int = 0, world_size: int = 1,
                  num_samples: int = 1, temperature: float = 0.0, top_k: int | None = 50, max_new_tokens: int = 128,
                  batch_size: int = 8, seed: int = 42, tool: Callable[[str], str] | None = None,
                  window: int = 0, between: Callable[[], None] | None = None) -> dict[str, Any]:
    """One task's result {task, metric, value, n, baseline, centered}; ranks score their stride and add up.

    With `window` > 0 the examples go in windows of that many (each rank takes its stride of a window) and
    `between()` runs after each window on every rank alike: the stage polls its control channel there. A rank
    scores the same examples (index % world_size == rank) however the windows fall."""
    size = len(task)
    window = window if window > 0 else max(size, 1)
    categorical = task.eval_type == "categorical"
    engine = None if categorical else Engine(model, tokenizer, tool=tool)
    right = n = 0
    for start in range(0, size, window):
        indices = [i for i in range(start, min(start + window, size)) if i % world_size == rank]
        if categorical:
            right += score_categorical(model, tokenizer, task, indices, batch_size)
        else:
            right += score_generative(engine, tokenizer, task, indices, num_samples, temperature, top_k,
                                      max_new_tokens, seed)
        n += len(indices)
        if between is not None and start + window < size:
            between()
    if categorical:
        metric, baseline = "accuracy", 1.0 / len(task.letters)
    else:
        metric, baseline = f"pass@{num_samples}", 0.0
    if dist.is_initialized():
        counts = torch.tensor([right, n], dtype=torch.int64)
        dist.all_reduce(counts)  # gloo reduces CPU tensors whatever the training backend
        right, n = int(counts[0]), int(counts[1])
    value = right / n if n else 0.0
    return {"task": task.name, "metric": metric, "value": value, "n": n, "baseline": baseline,
            "centered": (value - baseline) / (1.0 - baseline)}


def write_results(ckpt_dir: Path, step: int, results: list[dict[str, Any]], suite: str = SUITE) -> Path:
    """`<ckpt_dir>/eval_<suite>_<step>.json`, atomically; score = the mean of the task values."""
    path = Path(ckpt_dir) / f"eval_{suite}_{step:06d}.json"
    score = sum(r["value"] for r in results) / len(results) if results else 0.0
    doc = {"suite": suite, "step": step, "checkpoint": str(model_file(ckpt_dir, step)), "results": results,
           "score": score}
    atomic_write(path, json.dumps(doc, indent=2) + "\n")
    return path


class ChatEvaluator:
    """The stage, shaped like engine.train's Trainer so run_training drives it (setup, emit_start, train)."""

    def __init__(self, cfg: ChatEvalConfig, info: DistInfo, telemetry: TelemetryWriter, run_dir: Path,
                 sinks: Sinks | None = None):
        self.cfg, self.info, self.tel, self.run_dir = cfg, info, telemetry, run_dir
        self.base = Path(cfg.base_dir).expanduser() if cfg.base_dir else base_dir()
        self.step = 0
        self.startup = StartupClock()
        self.control = EvalControl(run_dir, info, telemetry, "tasks")
        self.done = 0  # tasks scored

    def setup(self) -> None:
        from engine.inference_load import load_model

        cfg = self.cfg
        self.ckpt_dir, self.ckpt_step = resolve_source(self.base, "chat_eval", cfg.source, cfg.source_step)
        self.model, self.tokenizer, self.meta = load_model(self.ckpt_dir, self.ckpt_step, self.info.device,
                                                           cfg.tokenizer_dir)
        self.step = self.ckpt_step
        self.tasks = eval_tasks(cfg)

    def emit_start(self) -> None:
        device = self.info.device
        self.tel.emit("run_start", config=self.cfg.model_dump(), world_size=self.info.world_size, device=str(device),
                      dtype=str(compute_dtype(device)).removeprefix("torch."), num_params=self.model.num_params(),
                      num_flops_per_token=self.model.estimate_flops(), num_iterations=len(self.tasks),
                      tokens_per_step=0, engine_version=__version__, pid=os.getpid(), run_dir=str(self.run_dir),
                      startup=self.startup.stamps, stage="eval")
        print0(f"chat eval of {model_file(self.ckpt_dir, self.ckpt_step)} ({self.meta.get('stage') or 'base'}): "
               f"{', '.join(t.name for t in self.tasks)}")

    def poll(self) -> None:
        """Answer control requests; raise Stopped on a stop. Every rank calls it at the same points."""
        self.control.poll(self.done, len(self.tasks), self.ckpt_step)

    def train(self) -> str:
        cfg, results = self.cfg, []
        checkpoint = str(model_file(self.ckpt_dir, self.ckpt_step))
        for task in self.tasks:
            t0 = time.time()
            try:
                self.poll()
                result = evaluate_task(self.model, self.tokenizer, task, rank=self.info.rank,
                                       world_size=self.info.world_size, num_samples=cfg.num_samples,
                                       temperature=cfg.temperature, top_k=cfg.top_k,
                                       max_new_tokens=cfg.max_new_tokens, batch_size=cfg.batch_size, seed=cfg.seed,
                                       window=cfg.poll_every, between=self.poll)
            except Stopped:
                print0(f"chat eval stopped after {self.done} of {len(self.tasks)} tasks: no results file written")
                return "stopped"
            self.done += 1
            results.append(result)
            self.tel.emit("eval_result", suite=SUITE, step=self.ckpt_step, checkpoint=checkpoint, **result)
            print0(f"{result['task']:>16} | {result['metric']} {result['value']:.3f} over {result['n']} "
                   f"({time.time() - t0:.1f}s)")
        if self.info.master:
            path = write_results(self.ckpt_dir, self.ckpt_step, results)
            print0(f"chat eval score {sum(r['value'] for r in results) / len(results):.3f}: wrote {path}")
        return "finished"


def main(argv: list[str] | None = None) -> int:
    return run_training(argv, ChatEvaluator, parse_chat_eval_config, "engine.chat_eval")


if __name__ == "__main__":
    sys.exit(main())
