"""Builders for real tiny checkpoints (engine.checkpoint's save functions), tokenizers and data dirs."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import torch

from engine.checkpoint import checkpoint_dir, save_model_and_meta, save_rank_state
from engine.config import TrainConfig
from engine.gpt import GPT, GPTConfig
from engine.tokenizer import Tokenizer

ROOT = Path(__file__).resolve().parents[2]
STOCK_FIXTURE = ROOT.parent / "shared" / "fixtures" / "nanochat-parity" / "d4-s128"


def corpus_texts() -> list[str]:
    """Real, varied text: this repo's engine sources, one document per function-sized chunk."""
    texts = []
    for path in sorted((ROOT / "engine").rglob("*.py")):
        src = path.read_text()
        texts += [src[i:i + 1500] for i in range(0, len(src), 1500)]
    return texts


def train_tokenizer(directory: Path, vocab_size: int = 300) -> Tokenizer:
    tok = Tokenizer.train_from_iterator(corpus_texts(), vocab_size)
    tok.save(directory)
    return Tokenizer.from_directory(directory)


def write_data_dir(directory: Path) -> Path:
    """Two parquet shards (train, val) with a `text` column."""
    directory.mkdir(parents=True, exist_ok=True)
    texts = corpus_texts()
    half = len(texts) * 3 // 4
    for i, part in enumerate((texts[:half], texts[half:])):
        pq.write_table(pa.table({"text": part}), directory / f"shard_{i:05d}.parquet", row_group_size=64)
    return directory


def tiny_config_overrides(base: Path, data_dir: Path, tokenizer_dir: Path) -> dict:
    """Dotted overrides that make the cpu-tiny prefab describe tiny_model(300) on this data and tokenizer."""
    return {"model.depth": 2, "model.aspect_ratio": 32, "model.head_dim": 32, "model.max_seq_len": 64,
            "model.window_pattern": "SL", "model.vocab_size": 300, "data.source": "parquet",
            "data.data_dir": str(data_dir), "data.tokenizer_dir": str(tokenizer_dir), "run.base_dir": str(base)}


def tiny_model(vocab_size: int, depth: int = 2, seed: int = 0) -> GPT:
    """depth × aspect ratio 32, head_dim 32 (the shape TINY_CONFIG describes for depth 2), 64-token context."""
    torch.manual_seed(seed)
    dim = depth * 32
    model = GPT(GPTConfig(sequence_len=64, vocab_size=vocab_size, n_layer=depth, n_head=dim // 32,
                          n_kv_head=dim // 32, n_embd=dim, window_pattern="SL"))
    model.init_weights()
    with torch.no_grad():  # off the init, so attention and every block shape the logits
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return model.eval()


def save_ours(base: Path, tag: str, step: int, model: GPT, tok: Tokenizer, data_dir: Path | None,
              run: str | None = None, val_bpb: float | None = 2.5, extra_user: dict | None = None) -> Path:
    """A checkpoint the way engine/train.py writes it: rank state, then model, then meta."""
    d = checkpoint_dir(base, tag)
    cfg = TrainConfig(run=run or tag, depth=model.config.n_layer, aspect_ratio=32, head_dim=32, max_seq_len=64,
                      window_pattern="SL", vocab_size=tok.get_vocab_size(), device_batch_size=8,
                      total_batch_size=512, data_dir=str(data_dir) if data_dir else None,
                      tokenizer_dir=str(tok.directory), base_dir=str(base))
    save_rank_state(d, step, 0, {"state": {}, "param_groups": []}, None, None)
    meta = {"val_bpb": val_bpb, "model_config": model.config.to_dict(),
            "user_config": {**cfg.model_dump(), **(extra_user or {})}, "device_batch_size": 8, "max_seq_len": 64,
            "total_batch_size": 512, "run": cfg.run, "tokenizer_hash": tok.fingerprint,
            "tokenizer_dir": str(tok.directory), "data_dir": str(data_dir) if data_dir else None, "world_size": 1}
    save_model_and_meta(d, step, model.state_dict(), meta)
    return d
