"""Evaluation losses: bits per byte, the tokenizer-independent measure that training and evaluation share."""

from __future__ import annotations

import math

import torch
import torch.distributed as dist


@torch.no_grad()
def evaluate_bpb(model: torch.nn.Module, batches, steps: int, token_bytes: torch.Tensor, autocast) -> float:
    """Bits per byte: summed nats over byte-weighted tokens, independent of the tokenizer's vocab size.

    `batches` yields (inputs, targets, state) like engine.dataloader's loaders; targets < 0 are ignored,
    and so are special tokens (0 bytes). Under torch.distributed the sums are reduced over all ranks."""
    nats = torch.zeros((), dtype=torch.float64, device=token_bytes.device)
    nbytes = torch.zeros((), dtype=torch.int64, device=token_bytes.device)
    for _ in range(steps):
        x, y, _state = next(batches)
        with autocast:
            loss = model(x, y, loss_reduction="none").view(-1)
        y = y.view(-1)
        valid = y >= 0
        tb = torch.where(valid, token_bytes[y.clamp(min=0)], torch.zeros_like(y))
        nats += (loss.double() * (tb > 0)).sum()
        nbytes += tb.sum()
    if dist.is_initialized():
        dist.all_reduce(nats)
        dist.all_reduce(nbytes)
    return float("inf") if nbytes.item() == 0 else nats.item() / (math.log(2) * nbytes.item())
