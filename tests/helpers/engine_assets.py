"""Tiny real training inputs for tests that launch the engine: a small text corpus as parquet shards and a
512-token tokenizer trained on it (seconds to build, nothing downloaded)."""

from __future__ import annotations

import os
from pathlib import Path

from engine.dataset import convert_text_folder
from engine.tokenizer import Tokenizer

STDLIB_FILES = ["argparse.py", "textwrap.py", "json/decoder.py", "csv.py", "shlex.py", "string.py"]


def build_assets(root: Path) -> dict[str, str]:
    """Write <root>/data (parquet shards, with a validation shard) and <root>/tok; returns their paths."""
    src = root / "src"
    src.mkdir(parents=True)
    stdlib = Path(os.__file__).parent
    for i, name in enumerate(STDLIB_FILES):
        (src / f"{i}.txt").write_text((stdlib / name).read_text())
    data = root / "data"
    convert_text_folder(src, data, shard_chars=40_000, row_group_chars=5_000, val_fraction=0.2)
    texts = [(src / f).read_text() for f in sorted(os.listdir(src))]
    tok_dir = root / "tok"
    Tokenizer.train_from_iterator(iter(texts), 512).save(tok_dir)
    return {"data": str(data), "tok": str(tok_dir)}


def tiny_overrides(assets: dict[str, str], name: str, nproc: int = 2) -> dict[str, object]:
    """Config overrides (dotted keys) for a tiny CPU run that trains until stopped, no evals or samples."""
    return {
        "model.depth": 2, "model.aspect_ratio": 32, "model.head_dim": 32, "model.max_seq_len": 64,
        "model.vocab_size": 512, "training.device_batch_size": 4, "training.total_batch_size": 256 * nproc,
        "training.num_iterations": 100_000, "training.warmup_iters": 2, "hardware.device": "cpu",
        "hardware.nproc_per_node": nproc, "telemetry.eval_every": -1, "telemetry.eval_tokens": 256 * nproc,
        "telemetry.sample_every": -1, "telemetry.save_every": -1, "telemetry.log_every": 1,
        "data.source": "parquet", "data.data_dir": assets["data"], "data.tokenizer_dir": assets["tok"],
        "run.name": name,
    }


# A tiny model and batch for engine.train: one micro-batch of 4×64 tokens per step, no evals or samples.
TINY_TRAIN_FLAGS = ["--depth", "2", "--aspect-ratio", "32", "--head-dim", "32", "--max-seq-len", "64",
                    "--device-batch-size", "4", "--total-batch-size", "256", "--eval-tokens", "256",
                    "--eval-every", "-1", "--sample-every", "-1", "--warmup-iters", "2", "--device-type", "cpu"]


def train_in_process(base: Path, assets: dict[str, str], run: str, *flags: str) -> int:
    """engine.train's main in this process (no torchrun, no interpreter start): returns its exit code."""
    from engine.train import main

    return main([*TINY_TRAIN_FLAGS, "--base-dir", str(base), "--run", run, "--data-dir", assets["data"],
                 "--tokenizer-dir", assets["tok"], *flags])
