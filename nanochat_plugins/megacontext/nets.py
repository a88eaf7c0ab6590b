"""GistNet (a block of embeddings -> one gist embedding) and LensNet (how much detail a span deserves)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def rms(x: torch.Tensor) -> torch.Tensor:
    return F.rms_norm(x, (x.size(-1),))


SCORE_RANGE = 4.0  # scores lie in (-4, 4) nats over the tail: an unseen input cannot score 40 and force a swap


CORRECTION = 0.5  # GistNet's learned part per channel, at most half the normed block mean's typical size


class GistNet(nn.Module):
    """A block of embeddings -> one gist: one self-attention layer over the block (so each token sees its
    neighbours), then attention pooling: learned per-head queries attend over the block, the pooled heads are
    projected back to the model width and added, bounded, to the normed block mean. The output is RMS-normed
    like the model's token embeddings, so a gist sits where a token would."""

    def __init__(self, n_embd: int, block_size: int, dim: int = 128, heads: int = 4) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, dim // heads
        self.pos = nn.Parameter(torch.zeros(block_size, n_embd))
        self.mix_qkv = nn.Linear(n_embd, 3 * dim, bias=False)
        self.mix_out = nn.Linear(dim, n_embd, bias=False)
        self.key = nn.Linear(n_embd, dim, bias=False)
        self.value = nn.Linear(n_embd, dim, bias=False)
        self.query = nn.Parameter(torch.randn(heads, self.head_dim) / self.head_dim ** 0.5)
        self.out = nn.Linear(dim, n_embd, bias=False)
        nn.init.zeros_(self.out.weight)  # starts as the block mean; learns what to add
        nn.init.zeros_(self.mix_out.weight)

    def _split(self, t: torch.Tensor) -> torch.Tensor:
        N, S, _ = t.shape
        return t.view(N, S, self.heads, self.head_dim).transpose(1, 2)  # [N, H, S, D]

    def forward(self, block: torch.Tensor) -> torch.Tensor:
        """[N, block_size, C] -> [N, C]."""
        N, S, _ = block.shape
        h = block + self.pos[:S]
        q, k, v = (self._split(t) for t in self.mix_qkv(rms(h)).chunk(3, dim=-1))
        mixed = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(N, S, -1)
        h = h + self.mix_out(mixed)
        k = self._split(self.key(rms(h)))
        v = self._split(self.value(h))
        att = torch.einsum("hd,nhsd->nhs", self.query, k).softmax(-1)
        pooled = torch.einsum("nhs,nhsd->nhd", att, v).reshape(N, -1)
        # the learned part is bounded next to the (normed) block mean: unbounded, GistNet learned one constant
        # vector for every block (an attention sink the model liked) and the gists carried nothing
        return rms(rms(block.mean(1)) + CORRECTION * torch.tanh(self.out(pooled)))


class LensNet(nn.Module):
    """Scores a span for expansion: the loss (nats summed over the tail) that seeing the span's raw tokens
    instead of its gist would save. Inputs: the span's gist, a summary of the recent raw tokens (the focus),
    how far back the span is, and how many of the recent token ids recur in the span (the tree keeps level 0,
    so this is known without reading the span into the context; recurring names are what a raw span can be
    copied from)."""

    def __init__(self, n_embd: int, hidden: int = 64) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(3 * n_embd + 2, hidden), nn.GELU(), nn.Linear(hidden, 1))
        # RMS error of its predicted swap gains on the training probes (a running average, saved with it): the
        # allocator swaps only for a predicted gain beyond the noise in the predictions
        self.register_buffer("swap_error", torch.zeros(()))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        # a LensNet saved before the error was tracked: no measured error, the configured margin applies
        state_dict.setdefault(prefix + "swap_error", torch.zeros(()))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @torch.no_grad()
    def track_error(self, predicted: torch.Tensor, measured: torch.Tensor, decay: float = 0.95) -> None:
        rms_err = (predicted.float() - measured.float()).pow(2).mean().sqrt()
        first = bool(self.swap_error == 0)
        self.swap_error.copy_(rms_err if first else decay * self.swap_error + (1 - decay) * rms_err)

    def margin(self, configured: float) -> float:
        """The allocator's swap margin (nats over the tail): the configured hysteresis, or twice LensNet's
        measured swap error when that is larger."""
        return max(configured, 2.0 * float(self.swap_error))

    def forward(self, gists: torch.Tensor, focus: torch.Tensor, distance: torch.Tensor,
                overlap: torch.Tensor) -> torch.Tensor:
        """gists [N, C], focus [C], distance [N] (blocks back from the focus, scaled), overlap [N] (fraction of
        the focus's distinct ids found in the span) -> scores [N]."""
        f = focus.expand_as(gists)
        feats = torch.cat([gists, f, gists * f, distance[:, None], overlap[:, None]], dim=-1)
        raw = self.net(feats).squeeze(-1)
        return SCORE_RANGE * torch.tanh(raw / SCORE_RANGE)  # bounded: one span saves a few nats at most
