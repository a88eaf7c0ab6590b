"""The chat evaluation stage's config (`python -m engine.chat_eval`), torch-free like engine/sft_config.py."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, field_validator

from engine.config import SinkFields, _f
from engine.tasks import OFFLINE_TASKS

DEFAULT_CHAT_EVAL_TASKS = "arithmetic,spellcount,multiple_choice"


class ChatEvalConfig(SinkFields):  # (W&B and OTel fields from SinkFields)
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    run: str = _f("chat-eval", "run name: run dir <base>/runs/<run>", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    base_dir: str | None = _f(None, "base dir for runs and checkpoints (default $NANOCHAT_BASE_DIR or "
                                    "~/.cache/nanochat)")
    device_type: Literal["", "cpu", "cuda", "mps"] = _f("", "device: cpu, cuda or mps ('' = autodetect)")
    seed: int = _f(42, "random seed (sampling)")
    source: str = _f("auto", "checkpoint to evaluate: a checkpoint dir, a model_XXXXXX.pt file, or auto (the newest "
                             "in chatrl_checkpoints, else chatsft_checkpoints)")
    source_step: int = _f(-1, "step of the checkpoint (-1 = its newest)", ge=-1)
    tokenizer_dir: str | None = _f(None, "tokenizer folder (default: the one the checkpoint records)")

    tasks: str = _f(DEFAULT_CHAT_EVAL_TASKS, f"comma-separated offline tasks to score ({', '.join(OFFLINE_TASKS)}; "
                                             "only those with right answers)")
    gsm8k: str = _f("", "comma-separated GSM8K .jsonl/.parquet files to score too (generative)")
    mc: str = _f("", "comma-separated MMLU/ARC-style .jsonl/.parquet files to score too (categorical)")
    num_examples: int = _f(50, "examples per task (generated tasks make exactly this many; files: the first N)",
                           ge=1)
    num_samples: int = _f(1, "samples per generative question: the score is pass@num_samples", ge=1)
    temperature: float = _f(0.0, "sampling temperature for generative tasks (0 = greedy; pass@k wants > 0)", ge=0)
    top_k: int = _f(50, "sample only among the top-k tokens", ge=1)
    max_new_tokens: int = _f(128, "most tokens a generative answer may take", ge=1)
    batch_size: int = _f(8, "prompts per forward pass for categorical tasks", ge=1)
    poll_every: int = _f(8, "examples scored between two looks at the control channel (stop)", ge=1)


    @field_validator("tasks")
    @classmethod
    def _known_tasks(cls, value: str) -> str:
        names = [t.strip() for t in value.split(",") if t.strip()]
        unknown = [t for t in names if t not in OFFLINE_TASKS]
        if unknown:
            raise ValueError(f"unknown task(s) {', '.join(unknown)}: use {', '.join(OFFLINE_TASKS)}")
        no_answer = [t for t in names if t in ("chatterbot", "identity")]
        if no_answer:
            raise ValueError(f"{', '.join(no_answer)} have no right answers to score: drop them")
        return value
