"""Small, deterministic inputs the checks share: a 320-token tokenizer trained on stdlib text, tiny GPTs."""

from __future__ import annotations

import functools
import logging
import os
from pathlib import Path

import torch

STDLIB_TEXTS = ("textwrap.py", "string.py", "shlex.py")


@functools.cache
def tokenizer(vocab_size: int = 320):
    """A byte-level BPE with nanochat's special tokens, trained in ~0.1 s on a few stdlib modules."""
    from engine.tokenizer import Tokenizer

    stdlib = Path(os.__file__).parent
    log = logging.getLogger("rustbpe")  # it reports every merge at INFO once anything configures logging
    level = log.level
    log.setLevel(logging.WARNING)
    try:
        return Tokenizer.train_from_iterator(iter([(stdlib / n).read_text() for n in STDLIB_TEXTS]), vocab_size)
    finally:
        log.setLevel(level)


def gpt(vocab_size: int, seed: int = 0, n_layer: int = 2, n_kv_head: int = 2, sequence_len: int = 64,
        pattern: str = "SL"):
    """A small engine GPT with nanochat's init plus noise (so no projection starts at zero), in eval mode."""
    from engine.gpt import GPT, GPTConfig

    torch.manual_seed(seed)
    model = GPT(GPTConfig(sequence_len=sequence_len, vocab_size=vocab_size, n_layer=n_layer, n_head=4,
                          n_kv_head=n_kv_head, n_embd=64, window_pattern=pattern))
    model.init_weights()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model.eval()
