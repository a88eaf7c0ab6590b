"""GRPO's arithmetic, apart from any model or task (as nanochat runs it: on-policy, one update per batch).

For a prompt with K sampled answers of rewards r_1..r_K, the advantage of answer i is r_i − mean(r)
(optionally divided by std(r) + eps). The loss over a batch of answers, token-level (every sampled token
weighs the same, whatever its answer's length), with m_bt = 1 on sampled tokens and 0 on the prompt,
forced tool outputs and padding, and N = Σ m_bt over the whole step:

    L = −(1/N) Σ_bt m_bt · A_b · log π(x_bt)  +  β · (1/N) Σ_bt m_bt · k3_bt
    k3_bt = exp(log π_ref − log π) − (log π_ref − log π) − 1        (β = 0: no reference model)

On-policy the PPO ratio is 1 and its clip never acts, so neither appears.
"""

from __future__ import annotations

import torch


def advantages(rewards: torch.Tensor, normalize_std: bool = False, eps: float = 1e-6) -> torch.Tensor:
    """rewards [P, K] (K answers per prompt) -> advantages [P, K]: r − mean, optionally / (std + eps)."""
    adv = rewards - rewards.mean(dim=-1, keepdim=True)
    if normalize_std:
        adv = adv / (rewards.std(dim=-1, keepdim=True, unbiased=False) + eps)
    return adv


def kl_k3(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Per-token estimate of KL(π || π_ref) from sampled tokens (Schulman's k3: non-negative, unbiased)."""
    d = ref_logp - logp
    return torch.exp(d) - d - 1


def pg_loss(logp: torch.Tensor, mask: torch.Tensor, adv: torch.Tensor, num_tokens: int | torch.Tensor,
            ref_logp: torch.Tensor | None = None, kl_coef: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss, mean KL) of one micro-batch: logp, mask [B, T] (log-prob of each target token, 1 where it was
    sampled), adv [B]; num_tokens = sampled tokens in the whole step, so micro-batch losses add up to L."""
    mask = mask.to(logp.dtype)
    n = torch.as_tensor(num_tokens, dtype=logp.dtype, device=logp.device).clamp(min=1)
    loss = -(logp * adv[:, None] * mask).sum() / n
    kl = torch.zeros((), dtype=logp.dtype, device=logp.device)
    if ref_logp is not None and kl_coef > 0:
        kl = (kl_k3(logp, ref_logp) * mask).sum() / n
        loss = loss + kl_coef * kl
    return loss, kl.detach()


def pass_at_k(correct: list[list[bool]], ks: list[int]) -> dict[str, float]:
    """Share of prompts with at least one right answer among their first k, for each k (as string keys)."""
    if not correct:
        return {}
    return {str(k): sum(any(row[:k]) for row in correct) / len(correct) for k in ks}


def ks_for(k: int) -> list[int]:
    """1, 2, 4, … up to K, and K itself."""
    out, n = [], 1
    while n < k:
        out.append(n)
        n *= 2
    return [*out, k]


def rollout_tensors(seqs: list[list[int]], masks: list[list[int]], pad: int,
                    device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(inputs, targets, target mask) [B, T-1] from full sequences (prompt + answer) and their masks:
    targets are −1 (ignored) wherever the target token was not sampled (prompt, tool output, padding)."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad, dtype=torch.long)
    m = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, (s, mk) in enumerate(zip(seqs, masks, strict=True)):
        ids[i, :len(s)] = torch.tensor(s, dtype=torch.long)
        m[i, :len(mk)] = torch.tensor(mk, dtype=torch.long)
    inputs, targets, tmask = ids[:, :-1], ids[:, 1:].clone(), m[:, 1:]
    targets[tmask == 0] = -1
    return inputs.to(device), targets.to(device), tmask.to(device)
