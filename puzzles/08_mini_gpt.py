"""Puzzle 08 · MiniGPT (the whole model)

Goal: write nanochat's GPT yourself so that a checkpoint written by stock nanochat loads into it with
strict=True and gives the same logits. Parameter-free RMSNorm, rotary embeddings (base 100000), QK-norm,
grouped-query attention with sliding windows, ReLU² MLP, value embeddings mixed into v through a gate
(value residual), the previous token "smeared" into each embedding, per-layer residual scalars, a
"backout" of the mid-network residual, and a softcapped lm_head. Verified against the engine's GPT
(engine/gpt.py) on the stock parity checkpoint and on a GQA + sliding-window model: identical logits.

    python -m puzzles.08_mini_gpt            run your MiniGPT on a small example
    python -m puzzles.08_mini_gpt --verify   compare it with the engine, check by check
    python -m puzzles.08_mini_gpt --peek     read the engine's code for this puzzle

The stock checkpoint is found at $NANOCHAT_PARITY_FIXTURE or shared/fixtures/nanochat-parity/d4-s128 in
a folder above the repo; puzzle 01's rules (widths, windows, shapes) apply here too.
"""

import sys

import torch
from torch import nn

from engine.shapes import GPTConfig  # sequence_len, vocab_size, n_layer, n_head, n_kv_head, n_embd, window_pattern


def rms_norm(x: torch.Tensor) -> torch.Tensor:
    """x / sqrt(mean(x², last dim) + eps) with no learned scale (torch's rms_norm with its default eps)."""
    raise NotImplementedError("not implemented yet: rms_norm")


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x [B, T, H, D] with halves x1 = x[..., :D/2], x2 = x[..., D/2:]; cos, sin [1, T, 1, D/2].
    Returns [x1*cos + x2*sin, x2*cos - x1*sin] concatenated on the last dim (nanochat's direction)."""
    raise NotImplementedError("not implemented yet: apply_rotary")


class CausalSelfAttention(nn.Module):
    def __init__(self, config: GPTConfig, layer_idx: int):
        """c_q [C -> C], c_k and c_v [C -> n_kv_head*head_dim], c_proj [C -> C], all bias-free; on layers
        with a value embedding (layer_idx % 2 == (n_layer - 1) % 2) also ve_gate [12 -> n_kv_head]."""
        super().__init__()
        raise NotImplementedError("not implemented yet: CausalSelfAttention.__init__")

    def forward(self, x: torch.Tensor, ve: torch.Tensor | None, cos: torch.Tensor, sin: torch.Tensor,
                window: int) -> torch.Tensor:
        """q, k, v as [B, T, heads, head_dim]. With ve ([B, T, n_kv_head*head_dim]): v += gate * ve where
        gate = 3 * sigmoid(ve_gate(x[..., :12])) per kv head. Rotate q and k, then rms_norm each and scale
        by 1.2. Repeat each kv head n_head // n_kv_head times (GQA). Causal attention where position i sees
        keys j with i - window <= j <= i (scaled dot product, default scale). Merge heads, c_proj."""
        raise NotImplementedError("not implemented yet: CausalSelfAttention.forward")


class MLP(nn.Module):
    def __init__(self, config: GPTConfig):
        """c_fc [C -> 4C], c_proj [4C -> C], bias-free."""
        super().__init__()
        raise NotImplementedError("not implemented yet: MLP.__init__")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """c_proj(relu(c_fc(x)) ** 2)."""
        raise NotImplementedError("not implemented yet: MLP.forward")


class Block(nn.Module):
    def __init__(self, config: GPTConfig, layer_idx: int):
        """attn (CausalSelfAttention) and mlp (MLP)."""
        super().__init__()
        raise NotImplementedError("not implemented yet: Block.__init__")

    def forward(self, x, ve, cos, sin, window):
        """Pre-norm residual: x + attn(rms_norm(x), ...), then + mlp(rms_norm(x))."""
        raise NotImplementedError("not implemented yet: Block.forward")


class MiniGPT(nn.Module):
    softcap = 15.0

    def __init__(self, config: GPTConfig):
        """The state dict must match nanochat's names and shapes exactly (see puzzle 01's param_shapes):
        transformer.wte, transformer.h (Blocks), lm_head, value_embeds (a ModuleDict keyed "0", "2", ...),
        resid_lambdas, x0_lambdas, smear_gate (Linear 24 -> 1), smear_lambda, backout_lambda.
        Vocab padded to a multiple of 64. Rotary tables for sequence_len positions as non-persistent
        buffers (they are not in the checkpoint); per-layer windows as in puzzle 01."""
        super().__init__()
        raise NotImplementedError("not implemented yet: MiniGPT.__init__")

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """Logits [B, T, vocab_size] (float32, the padding columns cut off).

        x = rms_norm(wte(idx)). Smear: for t >= 1, x[t] += smear_lambda * sigmoid(smear_gate(x[t, :24])) * x[t-1]
        (all from the normed embeddings). x0 = x. For each layer i: x = resid_lambdas[i]*x + x0_lambdas[i]*x0;
        x = block(x, value_embeds[i](idx) or None, cos, sin, window_i); keep x after layer n_layer // 2 as xb.
        Then x = rms_norm(x - backout_lambda * xb); logits = lm_head(x) cut to vocab_size;
        return softcap * tanh(logits / softcap).
        """
        raise NotImplementedError("not implemented yet: MiniGPT.forward")


if __name__ == "__main__":
    from puzzles.harness import main

    sys.exit(main(8))
