"""Reinforcement learning with GRPO as nanochat does it: `python -m engine.rl` (or under torchrun).

Starts from a chat (SFT) checkpoint. Each step, every rank takes its share of `examples_per_step` prompts
of the task, samples `num_samples` answers to each at temperature 1.0 through the KV-cache `Engine`
(batched, tool calls run inline), scores them with the task's reward, and takes one optimizer step on the
token-level policy-gradient loss of engine/grpo.py (advantages r − mean; optional /std and KL to the
frozen start model). Telemetry per step: `rollout` (rewards, pass@k, lengths, tool-call rate, samples) and
`step`; `eval_result` (suite "rl") on held-out prompts every `eval_every` steps (the same prompts and sampling
seeds each time; from the second evaluation on also `reward_change` ± `reward_change_se`, paired over the
prompts, against the run's first). Checkpoints go to
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
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

from engine import __version__
from engine.checkpoint import CheckpointError, optim_file, resolve_source
from engine.common import DistInfo, EngineError, print0
from engine.config import parse_config
from engine.grpo import advantages, ks_for, pass_at_k, pg_loss, rollout_tensors
from engine.rl_config import RLConfig
from engine.sinks import Sinks
from engine.telemetry import SCHEMA_VERSION, TelemetryWriter
from engine.train import Trainer, memory_bytes, run_training


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


class RLTrainer(Trainer):
    """One RL run. engine.train's Trainer gives control requests, saving, resume (with its fallback past a
    damaged step) and the main wrapper; this class brings the setup, the rollouts, the GRPO update and the loop.

    `train_task`, `eval_task` and `tool` may be set before setup() (tests do); otherwise they come from the
    config."""

    phase = "rl"

    def __init__(self, cfg: RLConfig, info: DistInfo, telemetry: TelemetryWriter, run_dir: Path,
                 sinks: Sinks | None = None):
        super().__init__(cfg, info, telemetry, run_dir, sinks)
        if cfg.examples_per_step % info.world_size:
            raise EngineError(f"examples_per_step={cfg.examples_per_step} is not a multiple of the world size "
                              f"{info.world_size}: set it to a multiple")
        self.per_rank = cfg.examples_per_step // info.world_size
        self.train_task = self.eval_task = self.tool = None
        self.pos = 0  # prompts this rank has taken from the task: the data position
        self.last_eval: float | None = None
        self.eval_start: list[float] | None = None  # per-prompt mean rewards of the run's first evaluation
        self.tokens_seen = 0

    # ---- setup -------------------------------------------------------------------------------
    def setup(self) -> None:
        from engine.engine import Engine
        from engine.inference_load import load_model
        from engine.optim import build_optimizer

        cfg = self.cfg
        if self.train_task is None:
            self.train_task = build_task(cfg.task, "train", cfg.task_size, cfg.seed)
        if self.eval_task is None:
            self.eval_task = build_task(cfg.task, "val", cfg.eval_examples, cfg.seed)
        self.tool = self.tool or make_tool(cfg.tool)
        src_dir, src_step = resolve_source(self.base, "rl", cfg.source, cfg.source_step)
        model, tok, meta = load_model(src_dir, src_step, self.device, cfg.tokenizer_dir)
        self.source = str(src_dir / f"model_{src_step:06d}.pt")
        self.startup.mark("model")
        self.tokenizer, self.model_config, self.meta_in = tok, model.config, meta
        self.data_dir = meta.get("data_dir")
        # the frozen start model, before a resume loads this run's own weights into `model`
        self.ref = copy.deepcopy(model).eval().requires_grad_(False) if cfg.kl_coef > 0 else None
        resume_step, rmeta, rank_state = self._resume(model)
        self.start_step = self.step = resume_step or 0
        self.resumed_from = resume_step
        self.raw_model = self.model = model.train()
        self.engine = Engine(model, tok, tool=self.tool)
        self.optimizer = build_optimizer(model, embedding_lr=cfg.embedding_lr, unembedding_lr=cfg.unembedding_lr,
                                         matrix_lr=cfg.matrix_lr, scalar_lr=cfg.scalar_lr,
                                         weight_decay=cfg.weight_decay, world_size=self.info.world_size)
        # every group moves gently, the fixed-lr ones too (smear/backout: 0.2): Adam turns the noisy RL gradient
        # into full-size steps, and at 0.2 a step those gates wreck an SFT model in a few steps
        for group in self.optimizer.param_groups:
            group["initial_lr"] = group["lr"] = group["lr"] * cfg.init_lr_frac
        self.num_iterations = cfg.num_iterations
        if rank_state is not None:
            self._restore_optimizer(rank_state, resume_step)
            data = rank_state.get("dataloader") or {}
            if not isinstance(data.get("pos"), int):
                raise CheckpointError(f"{optim_file(self.ckpt_dir, resume_step, self.info.rank)}: no RL data "
                                      "position (not written by engine.rl): delete this step or start fresh")
            self.pos, self.tokens_seen = data["pos"], int(data.get("tokens_seen", 0))
            self.last_eval = rmeta.get("reward_eval") if isinstance(rmeta.get("reward_eval"), int | float) else None
            start = rmeta.get("reward_eval_start")
            self.eval_start = [float(x) for x in start] if isinstance(start, list) else None
        self.loader_state = {"pos": self.pos, "tokens_seen": self.tokens_seen}
        self.flops_per_token = model.estimate_flops()
        self.startup.mark("optimizer")
        self.assistant_end = tok.encode_special("<|assistant_end|>")
        self.python_start = tok.encode_special("<|python_start|>")
        if (cut := self.answers_cut_off()) is not None:
            self.setup_warnings.append(cut)

    def answers_cut_off(self, probe: int = 200) -> str | None:
        """A warning when max_new_tokens is shorter than the task's reference answers: a cut-off answer has
        no final line, scores 0 in every sample, and gives GRPO no signal (48 tokens hid every two-step
        arithmetic problem, a third of the task)."""
        lengths = []
        for i in range(min(probe, len(self.train_task))):
            conv = self.train_task[i]
            try:
                ids, _ = self.tokenizer.render_conversation(conv)
            except (EngineError, KeyError, TypeError, ValueError):
                return None  # a task without reference answers: nothing to compare with
            lengths.append(len(ids) - len(self.tokenizer.render_for_completion(conv)))
        over = sum(n > self.cfg.max_new_tokens for n in lengths)
        if not over:
            return None
        return (f"max_new_tokens={self.cfg.max_new_tokens} cuts off {over} of {len(lengths)} reference answers "
                f"(longest {max(lengths)} tokens), which then always score 0: raise max_new_tokens")

    def emit_start(self) -> None:
        cfg = self.cfg
        self.tel.emit("run_start", config=cfg.model_dump(), world_size=self.info.world_size, device=str(self.device),
                      dtype=str(self.dtype).removeprefix("torch."), num_params=self.model.num_params(),
                      num_flops_per_token=float(self.flops_per_token), num_iterations=self.num_iterations,
                      tokens_per_step=0, engine_version=__version__, pid=os.getpid(), run_dir=str(self.run_dir),
                      resumed_from_step=self.resumed_from, startup=self.startup.stamps, stage="rl")
        for message in self.setup_warnings:
            self.tel.emit("warning", message=message)
            print0(f"warning: {message}")
        print0(f"rl {cfg.run}: {self.model.num_params():,} params from {self.source}, task {cfg.task} "
               f"({len(self.train_task)} prompts), {self.num_iterations} steps of {cfg.examples_per_step} prompts × "
               f"{cfg.num_samples} samples, world {self.info.world_size}")

    def checkpoint_meta(self) -> dict:
        return {"stage": "rl", "source": self.source, "model_config": self.model_config.to_dict(),
                "user_config": self.cfg.model_dump(), "run": self.cfg.run, "reward_eval": self.last_eval,
                "reward_eval_start": self.eval_start,
                "tokenizer_hash": self.tokenizer.fingerprint, "tokenizer_dir": str(self.tokenizer_dir()),
                "data_dir": self.data_dir, "dataloader_state_dict": self.loader_state,
                "loop_state": {"num_iterations": self.num_iterations},
                "telemetry_schema_version": SCHEMA_VERSION, "world_size": self.info.world_size}

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
    def sample(self, prompt: list[int], n: int, temperature: float,
               seed: int) -> tuple[list[list[int]], list[list[int]]]:
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
        lrm = max(0.0, 1.0 - step / self.num_iterations)
        for group in self.optimizer.param_groups:
            group["lr"] = group["initial_lr"] * lrm * cfg.lr_scale
        self.optimizer.step()
        self.model.zero_grad(set_to_none=True)
        t3 = time.perf_counter()
        return {"groups": groups, "loss": loss_sum, "kl": kl_sum, "lrm": lrm, "tokens": rows, "sampled": num_tokens,
                "t_rollout": t1 - t0, "t_fwd_bwd": t2 - t1, "t_optim": t3 - t2, "dt": t3 - t0}

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
        """Reward and pass@k on held-out prompts (K answers each at temperature 1.0); ranks split the prompts.
        Every evaluation uses the same prompts and the same sampling seeds, so a change between two of them is
        the model's, not the dice's."""
        cfg = self.cfg
        self.model.eval()
        n = min(cfg.eval_examples, len(self.eval_task))
        groups = [self.rollout(self.eval_task, i, cfg.eval_samples, 1.0,
                               lambda c, i=i: self.seed_for(10**6, i, c))
                  for i in range(self.info.rank, n, self.info.world_size)]
        self.model.train()
        stats = self.rollout_stats(groups, cfg.eval_samples)
        self.last_eval = stats["reward_mean"]
        name = getattr(self.eval_task, "name", cfg.task)
        # the standard error of the reward, prompts as the unit (a prompt's samples are not independent)
        mine = [(i, sum(g["rewards"]) / len(g["rewards"]))
                for i, g in zip(range(self.info.rank, n, self.info.world_size), groups, strict=True)]
        means = [m for _, m in sorted(pair for part in self._gather(mine) for pair in part)]  # in prompt order
        se = statistics.stdev(means) / math.sqrt(len(means)) if len(means) > 1 else 0.0
        rows = [("reward", stats["reward_mean"]), ("reward_se", se)] + \
            [(f"pass@{k}", v) for k, v in stats["pass_at_k"].items()]
        # the change since this run's first evaluation, paired over its prompts (same prompts, same seeds): far
        # less noisy than the difference of two rewards, whose SEs both carry how hard the prompts are
        if self.eval_start is None:
            self.eval_start = means
        elif len(self.eval_start) == len(means) and len(means) > 1:
            diffs = [m - b for m, b in zip(means, self.eval_start, strict=True)]
            rows += [("reward_change", statistics.fmean(diffs)),
                     ("reward_change_se", statistics.stdev(diffs) / math.sqrt(len(diffs)))]
        for metric, value in rows:
            self.tel.emit("eval_result", suite="rl", task=name, metric=metric, value=value, n=stats["prompts"],
                          step=step, checkpoint=None)
        change = dict(rows).get("reward_change")
        since = f" | change {change:+.4f} ± {dict(rows)['reward_change_se']:.4f} (paired)" if change is not None \
            else ""
        print0(f"step {step:05d} | eval reward {stats['reward_mean']:.4f} ± {se:.4f} (SE, {len(means)} prompts){since}"
               " | pass@k " + " ".join(f"{k}:{v:.3f}" for k, v in stats["pass_at_k"].items()))
        return stats

    # ---- the loop -----------------------------------------------------------------------------
    def train(self) -> str:
        step = self.start_step
        smooth, beta, timed, t_loop = 0.0, 0.9, 0, 0.0
        while True:
            self.step = step
            cfg = self.cfg  # a patch may have replaced it
            last = step >= self.num_iterations
            save_now, stop = self.handle_control(step)
            if (cfg.eval_every > 0 and step % cfg.eval_every == 0) or last or (step == 0 and cfg.eval_every < 0):
                if not (step == self.start_step and self.resumed_from is not None):  # done before the save
                    self.evaluate(step)
            periodic = cfg.save_every > 0 and step % cfg.save_every == 0 and step > self.start_step
            if last or stop or save_now or periodic:
                self.loader_state = {"pos": self.pos, "tokens_seen": self.tokens_seen}
                self.save(step, "final" if last else "stop" if stop else "request" if save_now else "periodic")
            if last:
                return "finished"
            if stop:
                return "stopped"
            out = self.train_step(step)
            stats = self.rollout_stats(out["groups"], cfg.num_samples)
            step += 1
            timed += 1
            self.tokens_seen += out["sampled"]
            t_loop += out["dt"]
            smooth = beta * smooth + (1 - beta) * out["loss"]
            if self.info.master:
                self.tel.emit("rollout", step=step, **stats)
                self.tel.emit("step", step=step, total=self.num_iterations, loss=out["loss"],
                              smooth_loss=smooth / (1 - beta ** timed), lr_mult=out["lrm"], muon_momentum=0.95,
                              tokens_per_sec=out["tokens"] * self.info.world_size / out["dt"], mfu=None,
                              dt=out["dt"], t_data=out["t_rollout"], t_fwd_bwd=out["t_fwd_bwd"],
                              t_optim=out["t_optim"], mem_bytes=memory_bytes(self.device), tokens_seen=self.tokens_seen,
                              elapsed=time.time() - self.t_start, eta=t_loop / timed * (self.num_iterations - step))
                if step % cfg.log_every == 0 or step == self.num_iterations:
                    print0(f"step {step:05d}/{self.num_iterations:05d} | reward {stats['reward_mean']:.3f} | pass@1 "
                           f"{stats['pass_at_k'].get('1', 0):.3f} | len {stats['mean_len']:.1f} | tools "
                           f"{stats['tool_call_rate']:.2f} | loss {out['loss']:+.5f} | rollout "
                           f"{out['t_rollout']:.1f}s | dt {out['dt']:.1f}s")


def parse(argv: list[str] | None) -> RLConfig:
    return parse_config(argv, RLConfig, "engine.rl", "GRPO reinforcement learning from a chat checkpoint.")


def main(argv: list[str] | None = None) -> int:
    return run_training(argv, RLTrainer, parse, "engine.rl")


if __name__ == "__main__":
    sys.exit(main())
