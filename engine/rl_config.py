"""The config of `engine.rl` (GRPO), torch-free so the app can build and validate it without importing torch."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict

from engine.config import SinkFields, _f

__all__ = ["RLConfig"]


class RLConfig(SinkFields):  # (W&B and OTel fields from SinkFields)
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    run: str = _f("rl", "run name: run dir <base>/runs/<run> and checkpoint tag",
                  pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
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
    max_new_tokens: int = _f(96, "most tokens sampled per answer (the run warns when the task's reference answers "
                                     "are longer)", ge=1)
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
    resume_from_step: int = _f(-1, "resume from this step instead of the newest", ge=-1)

    @property
    def tag(self) -> str:
        return self.model_tag or self.run
