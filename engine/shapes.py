"""Model shapes without torch: the config, nanochat's depth rule, padded vocab, value-embed layers, windows.

Shared by the model (engine/gpt.py) and by the TUI's size/cost estimates, which must not import torch.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from engine.shared import model_dim


@dataclass
class GPTConfig:
    sequence_len: int = 2048
    vocab_size: int = 32768
    n_layer: int = 12
    n_head: int = 6
    n_kv_head: int = 6
    n_embd: int = 768
    window_pattern: str = "SSSL"

    def to_dict(self) -> dict:
        return asdict(self)


def config_from_depth(depth: int, aspect_ratio: int, head_dim: int, sequence_len: int, vocab_size: int,
                      window_pattern: str = "SSSL", n_kv_head: int | None = None) -> GPTConfig:
    """nanochat's depth rule: model_dim = depth*aspect_ratio rounded up to a multiple of head_dim."""
    n_embd = model_dim(depth, aspect_ratio, head_dim)
    n_head = n_embd // head_dim
    return GPTConfig(sequence_len=sequence_len, vocab_size=vocab_size, n_layer=depth, n_head=n_head,
                     n_kv_head=n_kv_head or n_head, n_embd=n_embd, window_pattern=window_pattern)


def padded_vocab(vocab_size: int) -> int:
    return -(-vocab_size // 64) * 64


def has_value_embed(layer: int, n_layer: int) -> bool:
    return layer % 2 == (n_layer - 1) % 2


def window_sizes(config: GPTConfig) -> list[int]:
    """Per-layer attention window in tokens: pattern tiled over layers, last layer always long."""
    long = config.sequence_len
    short = math.ceil(config.sequence_len / 4 / 128) * 128
    sizes = [short if config.window_pattern[i % len(config.window_pattern)] == "S" else long
             for i in range(config.n_layer)]
    sizes[-1] = long
    return sizes
