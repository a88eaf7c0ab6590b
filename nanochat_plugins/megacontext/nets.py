"""GistNet (a block of embeddings -> one gist embedding) and LensNet (how much detail a span deserves)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def rms(x: torch.Tensor) -> torch.Tensor:
    return F.rms_norm(x, (x.size(-1),))


class GistNet(nn.Module):
    """Attention pooling over a block: learned per-head queries attend over the block's embeddings (plus a
    position embedding), the pooled heads are projected back to the model width and added to the block mean.
    The output is RMS-normed like the model's token embeddings, so a gist sits where a token would."""

    def __init__(self, n_embd: int, block_size: int, dim: int = 128, heads: int = 4) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, dim // heads
        self.pos = nn.Parameter(torch.zeros(block_size, n_embd))
        self.key = nn.Linear(n_embd, dim, bias=False)
        self.value = nn.Linear(n_embd, dim, bias=False)
        self.query = nn.Parameter(torch.randn(heads, self.head_dim) / self.head_dim ** 0.5)
        self.out = nn.Linear(dim, n_embd, bias=False)
        nn.init.zeros_(self.out.weight)  # starts as the block mean; learns what to add

    def forward(self, block: torch.Tensor) -> torch.Tensor:
        """[N, block_size, C] -> [N, C]."""
        N, S, _ = block.shape
        h = block + self.pos[:S]
        k = self.key(h).view(N, S, self.heads, self.head_dim).transpose(1, 2)  # [N, H, S, D]
        v = self.value(h).view(N, S, self.heads, self.head_dim).transpose(1, 2)
        att = torch.einsum("hd,nhsd->nhs", self.query, k).softmax(-1)
        pooled = torch.einsum("nhs,nhsd->nhd", att, v).reshape(N, -1)
        return rms(block.mean(1) + self.out(pooled))


class LensNet(nn.Module):
    """Scores a span for expansion: from its gist and a summary of the recent raw tokens (the focus), the loss
    (nats per tail token) that seeing the span's raw tokens instead of its gist would save."""

    def __init__(self, n_embd: int, hidden: int = 64) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(3 * n_embd + 1, hidden), nn.GELU(), nn.Linear(hidden, 1))

    def forward(self, gists: torch.Tensor, focus: torch.Tensor, distance: torch.Tensor) -> torch.Tensor:
        """gists [N, C], focus [C], distance [N] (blocks back from the focus, scaled) -> scores [N]."""
        f = focus.expand_as(gists)
        return self.net(torch.cat([gists, f, gists * f, distance[:, None]], dim=-1)).squeeze(-1)
