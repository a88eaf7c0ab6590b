"""The config of `engine.base_eval`, torch-free so the app can build and validate it without importing torch."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from engine.config import _f

__all__ = ["BaseEvalConfig"]




class BaseEvalConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    run: str = _f("base-eval", "run name: telemetry goes to <base>/runs/<run>", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    base_dir: str | None = _f(None, "base dir (default $NANOCHAT_BASE_DIR or ~/.cache/nanochat)")
    device_type: Literal["", "cpu", "cuda", "mps"] = _f("", "device: cpu, cuda or mps ('' = autodetect)")
    seed: int = _f(42, "random seed (samples)")
    source: str = _f("auto", "checkpoint to evaluate: a checkpoint dir, a model_XXXXXX.pt file, or auto (the "
                             "newest base checkpoint)")
    source_step: int = _f(-1, "checkpoint step (-1 = newest)", ge=-1)
    tokenizer_dir: str | None = _f(None, "tokenizer dir (default: the one the checkpoint records)")
    bundle: str | None = _f(None, "CORE bundle: a dir with core.yaml + eval_data/ (nanochat's layout), or its "
                                  "core.yaml (default: the small bundle shipped in the package)")
    max_per_task: int = _f(-1, "examples per CORE task, a fixed seeded subsample (-1 = all)", ge=-1)
    core: bool = _f(True, "run the CORE tasks")
    bpb_tokens: int = _f(16384, "tokens of the val split for bits-per-byte (0 = skip)", ge=0)
    device_batch_size: int = _f(8, "sequences per forward pass for bits-per-byte", ge=1)
    data_dir: str | None = _f(None, "parquet shards for bits-per-byte (default: the checkpoint's data, else the "
                                    "embedded corpus)")
    samples: int = _f(3, "greedy samples to show (0 = none)", ge=0)
    sample_tokens: int = _f(24, "tokens per sample", ge=1)
