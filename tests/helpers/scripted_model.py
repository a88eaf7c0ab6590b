"""Shared by several test modules (moved out of test_checkpoints_chat.py)."""

from __future__ import annotations

import torch
import torch.nn as nn

from engine.gpt import GPTConfig


class ScriptedModel(nn.Module):
    """Greedy decoding of it writes `script` whatever the prompt: one-hot logits on the next script token.
    Forced tokens (tool output) are fed like sampled ones, so the script lists them where they appear."""

    def __init__(self, script: list[int], vocab_size: int, sequence_len: int = 64):
        super().__init__()
        self.config = GPTConfig(sequence_len=sequence_len, vocab_size=vocab_size, n_layer=1, n_head=1, n_kv_head=1,
                                n_embd=8)
        self.rotary_len = sequence_len * 10
        self.weight = nn.Parameter(torch.zeros(1))
        self.script, self.prompt_len = script, 0

    def forward(self, idx, kv_cache=None):
        B, T = idx.shape
        pos = kv_cache.get_pos()
        if pos == 0:
            self.prompt_len = T
        kv_cache.advance(T)
        i = min(pos + T - self.prompt_len, len(self.script) - 1)
        logits = torch.full((B, T, self.config.vocab_size), -10.0)
        logits[:, -1, self.script[i]] = 10.0
        return logits


