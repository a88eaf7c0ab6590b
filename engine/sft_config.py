"""The SFT stage's config (`python -m engine.sft`): one pydantic model, flags and YAML keys generated from it
like engine.train's (engine/config.py). Torch-free, so the app can read and validate it cheaply.

The model's shape comes from the source checkpoint, so there are no model keys here; the learning rates and
schedule keys mean what they mean in pretraining (same optimizer), with SFT defaults.
"""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, field_validator

from engine.config import SinkFields, _f
from engine.tasks import OFFLINE_TASKS

DEFAULT_SFT_TASKS = "arithmetic,spellcount,multiple_choice,chatterbot,identity"


def split_list(text: str) -> list[str]:
    """A comma-separated config value as a list ('' -> [])."""
    return [part.strip() for part in text.split(",") if part.strip()]


class SFTConfig(SinkFields):  # (W&B and OTel fields from SinkFields)
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    # run identity and where things go
    run: str = _f("sft", "run name: run dir <base>/runs/<run> and checkpoint tag",
                  pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    model_tag: str | None = _f(None, "checkpoint dir name under chatsft_checkpoints/ (default: the run name)")
    base_dir: str | None = _f(None, "base dir for runs and checkpoints (default $NANOCHAT_BASE_DIR or "
                                    "~/.cache/nanochat)")
    device_type: Literal["", "cpu", "cuda", "mps"] = _f("", "device: cpu, cuda or mps ('' = autodetect)")
    seed: int = _f(42, "random seed (task mixture order, generated examples)")

    # where it starts
    source: str = _f("auto", "base checkpoint to fine-tune: a checkpoint dir, a model_XXXXXX.pt file, or auto (the "
                             "newest in <base>/base_checkpoints)")
    source_step: int = _f(-1, "step of the source checkpoint (-1 = its newest)", ge=-1)
    tokenizer_dir: str | None = _f(None, "tokenizer folder (default: the one the source checkpoint records; its "
                                         "fingerprint must match the checkpoint's)")

    # data
    tasks: str = _f(DEFAULT_SFT_TASKS, f"comma-separated offline tasks to mix ({', '.join(OFFLINE_TASKS)})")
    task_size: int = _f(1500, "examples per task (generated tasks make this many; chatterbot keeps at most this "
                              "many)", ge=1)
    val_size: int = _f(60, "held-out conversations per task for the validation loss", ge=1)
    data: str = _f("", "comma-separated SmolTalk-style {messages: [...]} .jsonl/.parquet files to mix in")
    gsm8k: str = _f("", "comma-separated GSM8K .jsonl/.parquet files (question, answer with ####) to mix in")
    max_seq_len: int = _f(-1, "row length in tokens (-1 = the model's sequence_len)", ge=-1)

    # horizon and batch
    num_iterations: int = _f(-1, "optimizer steps (-1 = one pass over the mixture)", hot=True, ge=-1)
    device_batch_size: int = _f(4, "rows per device per micro-step", ge=1)
    total_batch_size: int = _f(-1, "tokens per optimizer step, a multiple of device_batch_size × max_seq_len × "
                                   "world size (-1 = one micro-step per rank)", ge=-1)

    # optimizer (same as pretraining), SFT defaults: no weight decay, linear decay to zero
    embedding_lr: float = _f(0.2, "AdamW lr for the token embedding", ge=0)
    unembedding_lr: float = _f(0.004, "AdamW lr for lm_head", ge=0)
    matrix_lr: float = _f(0.02, "Muon lr for the block matrices", ge=0)
    scalar_lr: float = _f(0.5, "AdamW lr for the per-layer scalars", ge=0)
    weight_decay: float = _f(0.0, "Muon weight decay", ge=0)
    lr_scale: float = _f(1.0, "multiplier applied on top of the LR schedule", hot=True, gt=0, le=10)
    warmup_iters: int = _f(0, "LR warm-up steps", ge=0)
    warmdown_ratio: float = _f(1.0, "fraction of steps spent in LR warm-down", ge=0, le=1)
    final_lr_frac: float = _f(0.0, "LR multiplier reached at the end of warm-down", ge=0, le=1)
    compile: bool = _f(False, "torch.compile the model")

    # cadence
    eval_every: int = _f(50, "validation loss every N steps (-1 = only at the start and end)", hot=True, ge=-1)
    sample_every: int = _f(-1, "generate chat samples every N steps (-1 = never)", hot=True, ge=-1)
    save_every: int = _f(-1, "save a checkpoint every N steps (-1 = only at the end)", hot=True, ge=-1)
    log_every: int = _f(1, "print a progress line every N steps", hot=True, ge=1)

    # resume
    resume: bool = _f(False, "continue from the latest checkpoint of this run (exact resume)")
    resume_from_step: int = _f(-1, "resume from this step instead of the latest", ge=-1)


    @field_validator("tasks")
    @classmethod
    def _known_tasks(cls, value: str) -> str:
        unknown = [t for t in split_list(value) if t not in OFFLINE_TASKS]
        if unknown:
            raise ValueError(f"unknown task(s) {', '.join(unknown)}: use {', '.join(OFFLINE_TASKS)}")
        return value

    @property
    def tag(self) -> str:
        return self.model_tag or self.run
