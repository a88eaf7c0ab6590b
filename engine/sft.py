"""Supervised fine-tuning: `torchrun --standalone --nproc_per_node=N -m engine.sft [flags]` (or python -m).

Starts from a base checkpoint (`source`, default the newest in <base>/base_checkpoints) with the tokenizer
it was trained with (fingerprint checked), trains on a TaskMixture of the offline tasks (plus any
conversation or GSM8K files given) rendered by `Tokenizer.render_conversation` and packed by best fit
(engine/sft_data.py), with the loss only on assistant tokens. The validation loss on held-out conversations
is measured before the first step (the base model's) and every `eval_every` steps. Telemetry, control
channel, checkpoints and exact resume are engine.train's (this Trainer subclasses it); checkpoints go to
<base>/chatsft_checkpoints/<tag>/ with `stage` and `source` in the meta.
"""

from __future__ import annotations

if __name__ == "__main__":  # before torch's slow import: a worker must not outlive its launcher
    from engine.lifeline import tie_to_launcher

    tie_to_launcher()

import math
import sys
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from engine.checkpoint import complete_steps, load_meta, meta_file, model_file, resolve_source
from engine.common import EngineError, print0
from engine.config import parse_config
from engine.gpt import GPT
from engine.inference_load import find_tokenizer, model_config_from_meta
from engine.optim import build_optimizer
from engine.sft_config import SFTConfig, split_list
from engine.sft_data import PackedBatches, render_task
from engine.tasks import SkipReport, Task, TaskMixture, build_task, load_gsm8k_jsonl, load_messages
from engine.train import Trainer, run_training

SAMPLE_CHATS = ["Who are you?", "Tom has 12 apples and gets 7 more. How many apples does Tom have now?"]


def parse_sft_config(argv: list[str] | None = None) -> SFTConfig:
    return parse_config(argv, SFTConfig, "engine.sft", "Fine-tune a base checkpoint on conversations (SFT).")


def sft_tasks(cfg: SFTConfig, split: str) -> tuple[list[Task], list[SkipReport]]:
    """The tasks of a split: the offline tasks named in cfg.tasks, then the data files (train only: their
    held-out part is their last `val_size` rows). Missing files are one-line errors, bad rows counted."""
    size = cfg.task_size if split == "train" else cfg.val_size
    tasks = [build_task(name, split, size, cfg.seed) for name in split_list(cfg.tasks)]
    reports = []
    for key, loader in (("data", load_messages), ("gsm8k", load_gsm8k_jsonl)):
        for path in split_list(getattr(cfg, key)):
            if not Path(path).expanduser().is_file():
                raise EngineError(f"{key}: {path}: no such file: fix the path or drop it from {key}")
            task, report = loader(path)
            if split == "train":
                reports.append(report)
            n = len(task)
            held = min(cfg.val_size, n // 10)  # a tenth at most, so small files still train
            tasks.append(task[:n - held] if split == "train" else task[n - held:])
    tasks = [t for t in tasks if len(t)]
    if not tasks:
        raise EngineError(f"SFT {split} data: no conversations (tasks={cfg.tasks!r}): name at least one task or "
                          "a data file with good rows")
    return tasks, reports


class SFTTrainer(Trainer):
    phase = "sft"

    def setup(self) -> None:
        cfg, info = self.cfg, self.info
        source, source_step = cfg.source, cfg.source_step
        if source == "auto" and (cfg.resume or cfg.resume_from_step >= 0):
            source, source_step = self._recorded_source(source, source_step)
        self.source_dir, self.source_step = resolve_source(self.base, "sft", source, source_step)
        source_meta = load_meta(self.source_dir, self.source_step)
        mcfg = model_config_from_meta(source_meta, meta_file(self.source_dir, self.source_step))
        self.tokenizer = find_tokenizer(self.source_dir, source_meta, cfg.tokenizer_dir)
        if self.tokenizer.get_vocab_size() != mcfg.vocab_size:
            raise EngineError(f"{self.tokenizer.directory}: {self.tokenizer.get_vocab_size()} tokens but the source "
                              f"model has vocab_size={mcfg.vocab_size}: pass the tokenizer it was trained with")
        self.startup.mark("tokenizer")
        self.seq_len = cfg.max_seq_len if cfg.max_seq_len > 0 else mcfg.sequence_len
        if self.seq_len > mcfg.sequence_len:
            raise EngineError(f"max_seq_len={cfg.max_seq_len}: longer than the source model's sequence_len="
                              f"{mcfg.sequence_len}: set max_seq_len to at most that (or -1)")

        # data: every rank renders the same lists (deterministic), then reads its own stride
        train_tasks, self.data_reports = sft_tasks(cfg, "train")
        val_tasks, _ = sft_tasks(cfg, "val")
        self.render_report = SkipReport("rendering")
        self.train_docs = render_task(self.tokenizer, TaskMixture(train_tasks, seed=cfg.seed), self.seq_len + 1,
                                      self.render_report)
        self.val_docs = render_task(self.tokenizer, TaskMixture(val_tasks, seed=cfg.seed), self.seq_len + 1)
        if not self.train_docs or not self.val_docs:
            raise EngineError("SFT data: nothing left to train or validate on after rendering "
                              f"({self.render_report.summary()}): raise max_seq_len or add data")
        self.data_dir = f"{len(self.train_docs)} conversations ({cfg.tasks}{', data' if cfg.data else ''})"
        self.startup.mark("data")

        self.model_config = mcfg
        torch.manual_seed(cfg.seed)
        model = GPT(mcfg).to(self.device)
        model.init_weights()
        self.start_step, loader_state = 0, None
        resume_step, meta, rank_state = self._resume(model)
        if resume_step is not None:
            loader_state = rank_state["dataloader"]
            self.start_step = self.step = resume_step
            self.val_loss = meta.get("val_loss")
        else:
            self._load_weights(model, self.source_dir, self.source_step, source_meta)
            self.val_loss = None
        self.resumed_from = resume_step
        self.raw_model = model
        self.model = torch.compile(model, dynamic=False) if cfg.compile else model
        self.startup.mark("model")

        self.optimizer = build_optimizer(model, embedding_lr=cfg.embedding_lr, unembedding_lr=cfg.unembedding_lr,
                                         matrix_lr=cfg.matrix_lr, scalar_lr=cfg.scalar_lr,
                                         weight_decay=cfg.weight_decay, world_size=info.world_size)
        if rank_state is not None:
            self._restore_optimizer(rank_state, resume_step)
        self.startup.mark("optimizer")
        self.flops_per_token = model.estimate_flops()
        per_fwdbwd = cfg.device_batch_size * self.seq_len * info.world_size
        total = cfg.total_batch_size if cfg.total_batch_size > 0 else per_fwdbwd
        if total % per_fwdbwd:
            raise EngineError(f"total_batch_size={cfg.total_batch_size} is not a multiple of device_batch_size × "
                              f"max_seq_len × world_size = {per_fwdbwd}: set a multiple of it, or -1")
        self.cfg = cfg = cfg.model_copy(update={"total_batch_size": total})
        self.grad_accum = total // per_fwdbwd
        tokens = sum(len(ids) for ids, _ in self.train_docs)
        self.num_iterations = cfg.num_iterations if cfg.num_iterations > 0 else max(1, math.ceil(tokens / total))
        self.pad_id = self.tokenizer.get_bos_token_id()
        self.train_loader = PackedBatches(self.train_docs, cfg.device_batch_size, self.seq_len, self.pad_id,
                                          info.rank, info.world_size, device=self.device, state=loader_state)
        self.loader_state = loader_state
        self.startup.mark("loader")

    def _recorded_source(self, source: str, step: int) -> tuple[str, int]:
        """On resume, `auto` means the source the run started from (a newer base checkpoint may exist now)."""
        steps = complete_steps(self.ckpt_dir)
        try:
            recorded = load_meta(self.ckpt_dir, steps[-1]).get("source") if steps else None
        except EngineError:
            recorded = None  # a damaged newest meta: the resume itself reports it
        if isinstance(recorded, str) and Path(recorded).is_file():
            return recorded, -1
        return source, step

    # ---- hooks of the shared loop -----------------------------------------------------------------
    def start_fields(self) -> dict[str, Any]:
        return {"stage": "sft"}

    def emit_start(self) -> None:
        super().emit_start()
        for report in [*self.data_reports, self.render_report]:
            if report.total_skipped:
                self.tel.emit("warning", message=f"SFT data: {report.summary()}")
                print0(f"warning: SFT data: {report.summary()}")

    def checkpoint_meta(self) -> dict[str, Any]:
        meta = super().checkpoint_meta()
        meta.update(stage="sft", source=str(model_file(self.source_dir, self.source_step)), val_loss=self.val_loss,
                    max_seq_len=self.seq_len, data_dir=None, sft_data=self.data_dir)
        return meta

    def forward_backward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        # mean over this micro-batch's assistant tokens; a batch with none (all padding) adds nothing
        with self.autocast:
            loss_sum = self.model(x, y, loss_reduction="sum")
        loss = loss_sum / (y >= 0).sum().clamp(min=1)
        (loss / self.grad_accum).backward()
        return loss.detach()

    def train(self) -> str:
        if self.resumed_from is None:
            self.evaluate(0)  # the source model's loss on the held-out conversations: the "before" figure
        return super().train()

    def _check_meta(self, meta: dict, ckpt_dir: Path, step: int) -> None:
        super()._check_meta(meta, ckpt_dir, step)
        if meta.get("stage") not in (None, "sft"):
            raise EngineError(f"{ckpt_dir}: holds {meta.get('stage')} checkpoints, not SFT ones: choose another --run")

    # ---- eval and samples -------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, step: int) -> None:
        """Mean loss per assistant token over every held-out conversation (all ranks together)."""
        cfg = self.cfg
        batches = PackedBatches(self.val_docs, cfg.device_batch_size, self.seq_len, self.pad_id, self.info.rank,
                                self.info.world_size, device=self.device, epochs=1)
        total = torch.zeros((), dtype=torch.float64, device=self.device)
        count = torch.zeros((), dtype=torch.float64, device=self.device)
        self.model.eval()
        for x, y, _ in batches:
            with self.autocast:
                total += self.model(x, y, loss_reduction="sum").double()
            count += (y >= 0).sum()
        self.model.train()
        if dist.is_initialized():
            dist.all_reduce(total)
            dist.all_reduce(count)
        self.val_loss = (total / count.clamp(min=1)).item()
        self.tel.emit("eval", step=step, val_loss=self.val_loss)
        print0(f"step {step:05d} | val loss {self.val_loss:.4f}")

    def sample(self, step: int) -> None:
        from engine.engine import Engine

        if not self.info.master:
            return
        self.raw_model.eval()
        engine = Engine(self.raw_model, self.tokenizer)
        for prompt in SAMPLE_CHATS:
            convo = {"messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": ""}]}
            tokens = self.tokenizer.render_for_completion(convo)
            rows, _ = engine.generate_batch(tokens, num_samples=1, max_tokens=48, temperature=0.0)
            text = self.tokenizer.decode(rows[0][len(tokens):])
            self.tel.emit("sample", step=step, prompt=prompt, text=text)
            print0(f"sample | {prompt!r} -> {text!r}")
        self.raw_model.train()


def main(argv: list[str] | None = None) -> int:
    return run_training(argv, SFTTrainer, parse_sft_config, "engine.sft")


if __name__ == "__main__":
    sys.exit(main())
