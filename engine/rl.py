"""Reinforcement learning with GRPO as nanochat does it: `python -m engine.rl` (or under torchrun).

Starts from a chat (SFT) checkpoint. Each step, every rank takes its share of `examples_per_step` prompts
of the task, samples `num_samples` answers to each at temperature 1.0 through the KV-cache `Engine`
(batched, tool calls run inline), scores them with the task's reward, and takes one optimizer step on the
token-level policy-gradient loss of engine/grpo.py (advantages r − mean; optional /std and KL to the
frozen start model). Telemetry per step: `rollout` (rewards, pass@k, lengths, tool-call rate, samples) and
`step`; `eval_result` (suite "rl") on held-out prompts every `eval_every` steps. Checkpoints go to
`<base>/chatrl_checkpoints/<tag>/` and resume exactly: sampling seeds are a function of (seed, step,
example), the prompt order of (seed, epoch), and the optimizer state and RNG are saved per rank.
"""

from __future__ import annotations

if __name__ == "__main__":
    from engine.lifeline import tie_to_launcher

    tie_to_launcher()

import copy
import math
import os
import random
import sys
import time
from pathlib import Path
from typing import Any, Literal

import torch
import torch.distributed as dist
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from engine import __version__
from engine.checkpoint import (
    CheckpointError,
    checkpoint_dir,
    complete_steps,
    load_rank_state,
    optim_file,
    restore_rng,
    rng_state,
    save_model_and_meta,
    save_rank_state,
)
from engine.common import DistInfo, EngineError, init_distributed, print0
from engine.config import explain
from engine.control import ControlChannel
from engine.grpo import advantages, ks_for, pass_at_k, pg_loss, rollout_tensors
from engine.stage import StageRun, resolve_source, stage_main
from engine.telemetry import SCHEMA_VERSION, TelemetryWriter


def _f(default: Any, help: str, hot: bool = False, **kw: Any) -> Any:
    return Field(default, description=help, json_schema_extra={"hot": hot}, **kw)


class RLConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    run: str = _f("rl", "run name: run dir <base>/runs/<run> and checkpoint tag", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    model_tag: str | None = _f(None, "checkpoint dir name under chatrl_checkpoints/ (default: the run name)")
    base_dir: str | None = _f(None, "base dir (default $NANOCHAT_BASE_DIR or ~/.cache/nanochat)")
    device_type: Literal["", "cpu", "cuda", "mps"] = _f("", "device: cpu, cuda or mps ('' = autodetect)")
    seed: int = _f(42, "random seed: prompt order and sampling")
    source: str = _f("auto", "checkpoint to start from: a dir, a model_XXXXXX.pt file, or auto (newest SFT "
                             "checkpoint)")
    source_step: int = _f(-1, "step of the source checkpoint (-1 = newest)", ge=-1)
    tokenizer_dir: str | None = _f(None, "tokenizer dir (default: the one the checkpoint records)")
    # task
    task: str = _f("arithmetic", "offline task whose reward is optimized (engine.tasks names)")
    task_size: int = _f(2000, "training prompts generated for the task", ge=1)
    # horizon and batch
    num_iterations: int = _f(60, "RL steps", hot=True, ge=1)
    examples_per_step: int = _f(4, "prompts per step, over all ranks (a multiple of the world size)", ge=1)
    num_samples: int = _f(8, "answers sampled per prompt (the group of GRPO)", ge=2)
    device_batch_size: int = _f(8, "rows per sampling and forward/backward pass", ge=1)
    max_new_tokens: int = _f(64, "most tokens sampled per answer", ge=1)
    temperature: float = _f(1.0, "sampling temperature", ge=0)
    top_k: int = _f(50, "top-k sampling (0 = off)", ge=0)
    tool: Literal["calculator", "sandbox"] = _f("calculator", "what runs python calls: the in-process arithmetic "
                                                              "calculator or the sandboxed interpreter")
    # objective
    normalize_std: bool = _f(False, "divide advantages by the group's reward std (z-score) instead of r − mean only")
    kl_coef: float = _f(0.0, "weight of the KL penalty to the frozen start model (0 = off, no reference kept)", ge=0)
    # optimizer
    embedding_lr: float = _f(0.2, "AdamW lr for the token embedding", ge=0)
    unembedding_lr: float = _f(0.004, "AdamW lr for lm_head", ge=0)
    matrix_lr: float = _f(0.02, "Muon lr for the block matrices", ge=0)
    scalar_lr: float = _f(0.5, "AdamW lr for the per-layer scalars", ge=0)
    weight_decay: float = _f(0.0, "Muon weight decay", ge=0)
    init_lr_frac: float = _f(0.05, "every lr is scaled by this (RL moves gently), then ramps linearly to 0", gt=0)
    lr_scale: float = _f(1.0, "multiplier on top of the schedule", hot=True, gt=0, le=10)
    # cadence
    eval_every: int = _f(20, "evaluate reward on held-out prompts every N steps (-1 = start and end only)", hot=True,
                         ge=-1)
    eval_examples: int = _f(32, "held-out prompts per evaluation", ge=1)
    eval_samples: int = _f(4, "answers per held-out prompt (temperature 1.0)", ge=1)
    save_every: int = _f(-1, "save a checkpoint every N steps (-1 = only at the end)", hot=True, ge=-1)
    log_every: int = _f(1, "print a progress line every N steps", hot=True, ge=1)
    show_samples: int = _f(3, "sampled answers sent with each rollout event", ge=0)
    resume: bool = _f(False, "continue this run from its newest checkpoint (exact resume)")

    @property
    def tag(self) -> str:
        return self.model_tag or self.run


HOT = frozenset(n for n, f in RLConfig.model_fields.items() if (f.json_schema_extra or {}).get("hot"))


def make_tool(name: str):
    if name == "sandbox":
        from engine.engine import run_python

        return run_python
    from engine.calculator import calculator

    return calculator


def build_task(name: str, split: str, size: int, seed: int):
    from engine.tasks import build_task as build

    return build(name, split=split, size=size, seed=seed)


def last_user_text(conversation: dict) -> str:
    for m in reversed(conversation.get("messages", [])):
        if m.get("role") == "user":
            return str(m.get("content"))
    return ""


class RLTrainer:
    """One RL run: setup, rollouts, the GRPO update, evaluation, checkpoints, control requests."""

    def __init__(self, cfg: RLConfig, info: DistInfo, tel: TelemetryWriter, run_dir: Path, base: Path,
                 train_task=None, eval_task=None, tool=None):
        self.cfg, self.info, self.tel, self.run_dir, self.base = cfg, info, tel, run_dir, base
        self.device = info.device
        self.ckpt_dir = checkpoint_dir(base, cfg.tag, "rl")
        self.control = ControlChannel(run_dir, info)
        self.train_task = train_task if train_task is not None else build_task(cfg.task, "train", cfg.task_size,
                                                                               cfg.seed)
        self.eval_task = eval_task if eval_task is not None else build_task(cfg.task, "val", cfg.eval_examples,
                                                                            cfg.seed)
        self.tool = tool or make_tool(cfg.tool)
        self.step = 0
        self.pos = 0  # prompts this rank has taken from the task: the data position
        self.last_eval: float | None = None
        self.t_start = time.time()
        if cfg.examples_per_step % info.world_size:
            raise EngineError(f"examples_per_step={cfg.examples_per_step} is not a multiple of the world size "
                              f"{info.world_size}: set it to a multiple")
        self.per_rank = cfg.examples_per_step // info.world_size

    # ---- setup -------------------------------------------------------------------------------
    def setup(self) -> None:
        from engine.engine import Engine
        from engine.inference_load import load_model
        from engine.optim import build_optimizer

        cfg = self.cfg
        steps = complete_steps(self.ckpt_dir)
        if steps and not cfg.resume:
            raise EngineError(f"{self.ckpt_dir}: run '{cfg.tag}' already has checkpoints (latest step {steps[-1]}): "
                              "pass --resume to continue it or choose another --run")
        if cfg.resume and not steps:
            raise EngineError(f"{self.ckpt_dir}: no complete checkpoint to resume: drop --resume to start fresh")
        rank_state = None
        if cfg.resume:
            self.start_step = steps[-1]
            model, tok, meta = load_model(self.ckpt_dir, self.start_step, self.device, cfg.tokenizer_dir)
            self.source = str(meta.get("source") or "")
            rank_state = load_rank_state(self.ckpt_dir, self.start_step, self.info.rank, self.device, meta)
            data = rank_state.get("dataloader") or {}
            if not isinstance(data.get("pos"), int):
                raise CheckpointError(f"{optim_file(self.ckpt_dir, self.start_step, self.info.rank)}: no RL data "
                                      "position (not written by engine.rl): delete this step or start fresh")
            self.pos = data["pos"]
            self.last_eval = meta.get("reward_eval") if isinstance(meta.get("reward_eval"), int | float) else None
        else:
            self.start_step = 0
            src_dir, src_step = resolve_source(self.base, "rl", cfg.source, cfg.source_step)
            model, tok, meta = load_model(src_dir, src_step, self.device, cfg.tokenizer_dir)
            self.source = str(src_dir / f"model_{src_step:06d}.pt")
        self.step = self.start_step
        self.resumed_from = self.start_step if cfg.resume else None
        self.tokenizer, self.model = tok, model.train()
        self.ref = None
        if cfg.kl_coef > 0:  # the frozen start model; on resume it is reloaded from the recorded source
            ref = model if not cfg.resume else load_model(self.source, None, self.device, cfg.tokenizer_dir)[0]
            self.ref = copy.deepcopy(ref).eval().requires_grad_(False)
        self.engine = Engine(model, tok, tool=self.tool)
        frac = cfg.init_lr_frac
        self.optimizer = build_optimizer(model, embedding_lr=cfg.embedding_lr * frac,
                                         unembedding_lr=cfg.unembedding_lr * frac, matrix_lr=cfg.matrix_lr * frac,
                                         scalar_lr=cfg.scalar_lr * frac, weight_decay=cfg.weight_decay,
                                         world_size=self.info.world_size)
        if rank_state is not None:
            try:
                self.optimizer.load_state_dict(rank_state["optimizer"])
            except (KeyError, ValueError, TypeError, IndexError, AttributeError, RuntimeError) as e:
                raise CheckpointError(f"{optim_file(self.ckpt_dir, self.start_step, self.info.rank)}: optimizer state "
                                      f"does not fit this model ({str(e)[:120]}): delete this step") from None
            restore_rng(rank_state.get("rng"))
        self.meta_in = meta
        self.assistant_end = tok.encode_special("<|assistant_end|>")
        self.python_start = tok.encode_special("<|python_start|>")

    def emit_start(self) -> None:
        cfg = self.cfg
        self.tel.emit("run_start", config=cfg.model_dump(), world_size=self.info.world_size, device=str(self.device),
                      dtype="float32", num_params=self.model.num_params(),
                      num_flops_per_token=float(self.model.estimate_flops()), num_iterations=cfg.num_iterations,
                      tokens_per_step=0, engine_version=__version__, pid=os.getpid(), run_dir=str(self.run_dir),
                      resumed_from_step=self.resumed_from, stage="rl")
        print0(f"rl {cfg.run}: {self.model.num_params():,} params from {self.source}, task {cfg.task} "
               f"({len(self.train_task)} prompts), {cfg.num_iterations} steps of {cfg.examples_per_step} prompts × "
               f"{cfg.num_samples} samples, world {self.info.world_size}")

    # ---- data --------------------------------------------------------------------------------
    def example_index(self, pos: int) -> int:
        """The task index of this rank's pos-th prompt: a seeded shuffle per epoch, ranks strided."""
        n = len(self.train_task)
        flat = pos * self.info.world_size + self.info.rank
        epoch, i = divmod(flat, n)
        order = list(range(n))
        random.Random(self.cfg.seed * 7919 + epoch).shuffle(order)
        return order[i]

    def seed_for(self, step: int, idx: int, chunk: int) -> int:
        return (self.cfg.seed * 1_000_003 + step * 100_003 + idx * 1009 + chunk) & 0x7FFFFFFF

    # ---- rollouts ----------------------------------------------------------------------------
    def sample(self, prompt: list[int], n: int, temperature: float, seed: int) -> tuple[list[list[int]], list[list[int]]]:
        """n answers to `prompt`: full sequences (prompt + answer, ending with its stop token when it stopped)
        and masks (1 on sampled tokens)."""
        from engine.engine import PAD_TOKEN

        seqs = [list(prompt) for _ in range(n)]
        masks = [[0] * len(prompt) for _ in range(n)]
        top_k = self.cfg.top_k or None
        for column, column_masks in self.engine.generate(prompt, num_samples=n, max_tokens=self.cfg.max_new_tokens,
                                                         temperature=temperature, top_k=top_k, seed=seed):
            for i, (t, m) in enumerate(zip(column, column_masks, strict=True)):
                if t != PAD_TOKEN:
                    seqs[i].append(t)
                    masks[i].append(m)
        return seqs, masks

    def rollout(self, task, idx: int, k: int, temperature: float, seed_of) -> dict[str, Any]:
        """K answers to task[idx], in chunks of device_batch_size, with their rewards and right/wrong."""
        conv = task[idx]
        prompt = self.tokenizer.render_for_completion(conv)
        seqs, masks = [], []
        chunk = 0
        while len(seqs) < k:
            n = min(self.cfg.device_batch_size, k - len(seqs))
            s, m = self.sample(prompt, n, temperature, seed_of(chunk))
            seqs += s
            masks += m
            chunk += 1
        rewards, correct, texts, tools = [], [], [], []
        for s in seqs:
            answer = s[len(prompt):]
            body = answer[:-1] if answer and answer[-1] in (self.assistant_end, self.tokenizer.get_bos_token_id()) \
                else answer
            text = self.tokenizer.decode(body)
            rewards.append(float(task.reward(conv, text)))
            correct.append(bool(task.evaluate(conv, text)))
            texts.append(text)
            tools.append(self.python_start in answer)
        lengths = [sum(m[len(prompt):]) for m in masks]
        return {"prompt": last_user_text(conv), "seqs": seqs, "masks": masks, "rewards": rewards,
                "correct": correct, "texts": texts, "tools": tools, "lengths": lengths}

    # ---- one step -----------------------------------------------------------------------------
    def train_step(self, step: int) -> dict[str, Any]:
        cfg = self.cfg
        t0 = time.perf_counter()
        self.model.eval()
        groups = []
        for j in range(self.per_rank):
            idx = self.example_index(self.pos + j)
            groups.append(self.rollout(self.train_task, idx, cfg.num_samples, cfg.temperature,
                                       lambda c, idx=idx: self.seed_for(step, idx, c)))
        self.pos += self.per_rank
        t1 = time.perf_counter()
        self.model.train()
        num_tokens = sum(sum(m) for g in groups for m in g["masks"])
        loss_sum, kl_sum, rows = 0.0, 0.0, 0
        for g in groups:
            adv = advantages(torch.tensor([g["rewards"]]), cfg.normalize_std)[0]
            for b0 in range(0, len(g["seqs"]), cfg.device_batch_size):
                b1 = b0 + cfg.device_batch_size
                inputs, targets, tmask = rollout_tensors(g["seqs"][b0:b1], g["masks"][b0:b1], self.assistant_end,
                                                         self.device)
                logp = -self.model(inputs, targets, loss_reduction="none").view_as(inputs)
                ref_logp = None
                if self.ref is not None:
                    with torch.no_grad():
                        ref_logp = -self.ref(inputs, targets, loss_reduction="none").view_as(inputs)
                loss, kl = pg_loss(logp, tmask, adv[b0:b1].to(self.device), num_tokens, ref_logp, cfg.kl_coef)
                loss.backward()
                loss_sum += loss.item()
                kl_sum += kl.item()
                rows += inputs.numel()
        t2 = time.perf_counter()
        lrm = 1.0 - step / cfg.num_iterations
        for group in self.optimizer.param_groups:
            group["lr"] = group["initial_lr"] * lrm * cfg.lr_scale
        self.optimizer.step()
        self.model.zero_grad(set_to_none=True)
        t3 = time.perf_counter()
        return {"groups": groups, "loss": loss_sum, "kl": kl_sum, "lrm": lrm, "tokens": rows,
                "t_rollout": t1 - t0, "t_fwd_bwd": t2 - t1, "t_optim": t3 - t2, "dt": t3 - t0}

    def _gather(self, value):
        if not self.info.ddp:
            return [value]
        out = [None] * self.info.world_size
        dist.all_gather_object(out, value)
        return out

    def rollout_stats(self, groups: list[dict[str, Any]], k: int) -> dict[str, Any]:
        """Rewards, pass@k, lengths and tool-call rate over every rank's groups, and a few samples."""
        mine = [{key: g[key] for key in ("prompt", "rewards", "correct", "texts", "tools", "lengths")} for g in groups]
        allg = [g for part in self._gather(mine) for g in part]
        rewards = [r for g in allg for r in g["rewards"]]
        lengths = [n for g in allg for n in g["lengths"]]
        mean = sum(rewards) / len(rewards)
        std = math.sqrt(sum((r - mean) ** 2 for r in rewards) / len(rewards))
        shown = [{"prompt": g["prompt"], "response": t, "reward": r} for g in allg
                 for t, r in zip(g["texts"], g["rewards"], strict=True)][:self.cfg.show_samples]
        return {"prompts": len(allg), "k": k, "reward_mean": mean, "reward_std": std,
                "pass_at_k": pass_at_k([g["correct"] for g in allg], ks_for(k)),
                "mean_len": sum(lengths) / len(lengths), "max_len": max(lengths),
                "tool_call_rate": sum(t for g in allg for t in g["tools"]) / len(rewards), "samples": shown}

    # ---- evaluation --------------------------------------------------------------------------
    def evaluate(self, step: int) -> dict[str, Any]:
        """Reward and pass@k on held-out prompts (K answers each at temperature 1.0); ranks split the prompts."""
        cfg = self.cfg
        self.model.eval()
        n = min(cfg.eval_examples, len(self.eval_task))
        groups = [self.rollout(self.eval_task, i, cfg.eval_samples, 1.0,
                               lambda c, i=i: self.seed_for(10**6 + step, i, c))
                  for i in range(self.info.rank, n, self.info.world_size)]
        self.model.train()
        stats = self.rollout_stats(groups, cfg.eval_samples)
        self.last_eval = stats["reward_mean"]
        name = getattr(self.eval_task, "name", cfg.task)
        rows = [("reward", stats["reward_mean"])] + [(f"pass@{k}", v) for k, v in stats["pass_at_k"].items()]
        for metric, value in rows:
            self.tel.emit("eval_result", suite="rl", task=name, metric=metric, value=value, n=stats["prompts"],
                          step=step, checkpoint=None)
        print0(f"step {step:05d} | eval reward {stats['reward_mean']:.4f} | pass@k "
               + " ".join(f"{k}:{v:.3f}" for k, v in stats["pass_at_k"].items()))
        return stats

    # ---- checkpoints and control --------------------------------------------------------------
    def save(self, step: int, reason: str) -> None:
        t0 = time.time()
        record = save_rank_state(self.ckpt_dir, step, self.info.rank, self.optimizer.state_dict(), {"pos": self.pos},
                                 rng_state())
        records = dict(enumerate(self._gather(record)))
        if self.info.master:
            meta = {"stage": "rl", "source": self.source, "model_config": self.model.config.to_dict(),
                    "user_config": self.cfg.model_dump(), "run": self.cfg.run, "reward_eval": self.last_eval,
                    "tokenizer_hash": self.tokenizer.fingerprint,
                    "tokenizer_dir": str(getattr(self.tokenizer, "directory", "") or ""),
                    "data_dir": self.meta_in.get("data_dir"), "loop_state": {"num_iterations": self.cfg.num_iterations},
                    "telemetry_schema_version": SCHEMA_VERSION, "world_size": self.info.world_size}
            size = record["bytes"] + save_model_and_meta(self.ckpt_dir, step, self.model.state_dict(), meta, records)
            self.tel.emit("checkpoint", step=step, path=str(self.ckpt_dir / f"model_{step:06d}.pt"), reason=reason,
                          seconds=time.time() - t0, bytes=size)
            print0(f"saved checkpoint step {step} ({reason}) to {self.ckpt_dir}")
        if self.info.ddp:
            dist.barrier()

    def handle_control(self, step: int) -> tuple[bool, bool]:
        save_now = stop = False
        requests = self.control.poll(step)
        for ack in self.control.rejected:
            self.tel.emit(ack)
        for req in requests:
            ok, message, applied = True, "", {}
            if req.kind == "save_now":
                save_now, message = True, f"saving at step {step}"
            elif req.kind == "stop":
                stop, message = True, f"stopping at step {step} after saving"
            elif req.kind == "patch":
                cold = sorted(set(req.changes) - HOT)
                try:
                    if cold:
                        raise ValueError(f"not hot-patchable: {', '.join(cold)} (allowed: {', '.join(sorted(HOT))})")
                    new = RLConfig(**{**self.cfg.model_dump(), **req.changes})
                    applied = {k: getattr(new, k) for k in req.changes}
                    self.cfg, message = new, ", ".join(f"{k} -> {v!r}" for k, v in applied.items())
                except ValidationError as e:
                    ok, message = False, explain(e, "patch")
                except ValueError as e:
                    ok, message = False, str(e)
            else:
                ok, message = False, f"unknown request kind {req.kind!r}"
            self.tel.emit("control_ack", request_id=req.id, kind=req.kind, ok=ok, message=message, step=step,
                          applied=applied)
            print0(f"control {req.kind}: {'ok' if ok else 'rejected'} {message}")
        return save_now, stop

    # ---- the loop -----------------------------------------------------------------------------
    def train(self) -> str:
        step = self.start_step
        smooth, beta, timed, t_loop = 0.0, 0.9, 0, 0.0
        while True:
            self.step = step
            cfg = self.cfg
            last = step >= cfg.num_iterations
            save_now, stop = self.handle_control(step)
            if (cfg.eval_every > 0 and step % cfg.eval_every == 0) or last or (step == 0 and cfg.eval_every < 0):
                if not (step == self.start_step and self.resumed_from is not None):  # done before the save
                    self.evaluate(step)
            periodic = cfg.save_every > 0 and step % cfg.save_every == 0 and step > self.start_step
            if last or stop or save_now or periodic:
                self.save(step, "final" if last else "stop" if stop else "request" if save_now else "periodic")
            if last:
                return "finished"
            if stop:
                return "stopped"
            out = self.train_step(step)
            stats = self.rollout_stats(out["groups"], cfg.num_samples)
            step += 1
            timed += 1
            t_loop += out["dt"]
            smooth = beta * smooth + (1 - beta) * out["loss"]
            if self.info.master:
                self.tel.emit("rollout", step=step, **stats)
                self.tel.emit("step", step=step, total=cfg.num_iterations, loss=out["loss"],
                              smooth_loss=smooth / (1 - beta ** timed), lr_mult=out["lrm"], muon_momentum=0.95,
                              tokens_per_sec=out["tokens"] * self.info.world_size / out["dt"], mfu=None,
                              dt=out["dt"], t_data=out["t_rollout"], t_fwd_bwd=out["t_fwd_bwd"],
                              t_optim=out["t_optim"], mem_bytes=_rss(), tokens_seen=0,
                              elapsed=time.time() - self.t_start, eta=t_loop / timed * (cfg.num_iterations - step))
                if step % cfg.log_every == 0 or step == cfg.num_iterations:
                    print0(f"step {step:05d}/{cfg.num_iterations:05d} | reward {stats['reward_mean']:.3f} | pass@1 "
                           f"{stats['pass_at_k'].get('1', 0):.3f} | len {stats['mean_len']:.1f} | tools "
                           f"{stats['tool_call_rate']:.2f} | loss {out['loss']:+.5f} | rollout "
                           f"{out['t_rollout']:.1f}s | dt {out['dt']:.1f}s")


def _rss() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def run_rl(run: StageRun, train_task=None, eval_task=None, tool=None) -> str:
    cfg: RLConfig = run.cfg
    info = init_distributed(cfg.device_type)
    torch.manual_seed(cfg.seed)
    trainer = RLTrainer(cfg, info, run.tel, run.run_dir, run.base, train_task, eval_task, tool)
    trainer.setup()
    trainer.emit_start()
    try:
        return trainer.train()
    finally:
        run.step = trainer.step


def main(argv: list[str] | None = None) -> int:
    return stage_main("engine.rl", RLConfig, run_rl, argv, "GRPO reinforcement learning from a chat checkpoint.")


if __name__ == "__main__":
    sys.exit(main())
