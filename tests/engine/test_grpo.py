"""GRPO arithmetic (engine/grpo.py) against the formulas written out here, on hand-made batches."""

from __future__ import annotations

import torch

from engine.grpo import advantages, ks_for, pass_at_k, pg_loss, rollout_tensors


def test_advantages_are_reward_minus_group_mean_and_optionally_over_std():
    r = torch.tensor([[1.0, 0.0, 0.0, 1.0], [0.0, 0.0, 0.0, 1.0]])
    assert torch.allclose(advantages(r), torch.tensor([[0.5, -0.5, -0.5, 0.5], [-0.25, -0.25, -0.25, 0.75]]))
    z = advantages(r, normalize_std=True, eps=0.0)
    std1 = 0.5  # population std of [1, 0, 0, 1]
    std2 = (3 * 0.25 ** 2 + 0.75 ** 2) / 4
    assert torch.allclose(z[0], torch.tensor([0.5, -0.5, -0.5, 0.5]) / std1)
    assert torch.allclose(z[1], torch.tensor([-0.25, -0.25, -0.25, 0.75]) / std2 ** 0.5)
    assert torch.equal(advantages(torch.ones(1, 4)), torch.zeros(1, 4))  # all alike: no signal


def _batch():
    torch.manual_seed(0)
    B, T, V = 3, 5, 7
    logits = torch.randn(B, T, V, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(0, V, (B, T))
    mask = torch.tensor([[0, 0, 1, 1, 1], [0, 1, 1, 0, 0], [0, 0, 0, 1, 1]])
    adv = torch.tensor([0.7, -0.2, -0.5], dtype=torch.float64)
    return logits, targets, mask, adv


def test_pg_loss_and_its_gradient_equal_the_formula():
    logits, targets, mask, adv = _batch()
    logp = torch.log_softmax(logits, -1).gather(-1, targets[..., None])[..., 0]
    n = int(mask.sum())
    loss, kl = pg_loss(logp, mask, adv, n)
    # L = -(1/N) Σ_bt m_bt A_b log p(x_bt)
    expected = 0.0
    for b in range(3):
        for t in range(5):
            expected -= mask[b, t].item() * adv[b].item() * logp[b, t].item() / n
    assert abs(loss.item() - expected) < 1e-12 and kl.item() == 0.0
    loss.backward()
    # dL/dz_btv = -(m_bt A_b / N) (1[v = x_bt] − softmax(z_bt)_v)
    p = torch.softmax(logits.detach(), -1)
    onehot = torch.nn.functional.one_hot(targets, 7).double()
    grad = -(mask[..., None] * adv[:, None, None] / n) * (onehot - p)
    assert torch.allclose(logits.grad, grad, atol=1e-12)


def test_micro_batches_add_up_to_the_step_loss():
    logits, targets, mask, adv = _batch()
    logp = torch.log_softmax(logits, -1).gather(-1, targets[..., None])[..., 0]
    n = int(mask.sum())
    whole, _ = pg_loss(logp, mask, adv, n)
    parts = sum(pg_loss(logp[i:i + 1], mask[i:i + 1], adv[i:i + 1], n)[0] for i in range(3))
    assert torch.allclose(whole, parts)


def test_kl_penalty_is_k3_with_its_gradient():
    logits, targets, mask, adv = _batch()
    logp = torch.log_softmax(logits, -1).gather(-1, targets[..., None])[..., 0]
    ref = logp.detach() + torch.linspace(-0.3, 0.3, 15, dtype=torch.float64).view(3, 5)
    n, beta = int(mask.sum()), 0.1
    loss, kl = pg_loss(logp, mask, adv, n, ref, beta)
    d = ref - logp.detach()
    k3 = (torch.exp(d) - d - 1) * mask
    assert torch.allclose(kl, k3.sum() / n)
    pg = -(mask * adv[:, None] * logp.detach()).sum() / n
    assert torch.allclose(loss.detach(), pg + beta * k3.sum() / n)
    loss.backward()
    # d/dlogp of k3 = 1 − exp(ref − logp); chain through log-softmax as above
    g_logp = (-(adv[:, None]) + beta * (1 - torch.exp(d))) * mask / n
    p = torch.softmax(logits.detach(), -1)
    onehot = torch.nn.functional.one_hot(targets, 7).double()
    assert torch.allclose(logits.grad, g_logp[..., None] * (onehot - p), atol=1e-12)


def test_rollout_tensors_mask_everything_but_sampled_targets():
    seqs = [[1, 2, 3, 9, 9], [1, 2, 3, 5, 6, 7, 8]]
    masks = [[0, 0, 0, 1, 1], [0, 0, 0, 1, 0, 0, 1]]  # row 2: a forced tool output in the middle
    inputs, targets, tmask = rollout_tensors(seqs, masks, pad=0)
    assert inputs.tolist() == [[1, 2, 3, 9, 9, 0], [1, 2, 3, 5, 6, 7]]
    assert targets.tolist() == [[-1, -1, 9, 9, -1, -1], [-1, -1, 5, -1, -1, 8]]
    assert tmask.sum().item() == 4


def test_pass_at_k_counts_prompts_solved_within_the_first_k():
    correct = [[False, True, False, False], [False, False, False, False], [True, False, False, False]]
    assert pass_at_k(correct, [1, 2, 4]) == {"1": 1 / 3, "2": 2 / 3, "4": 2 / 3}
    assert ks_for(8) == [1, 2, 4, 8] and ks_for(6) == [1, 2, 4, 6] and ks_for(1) == [1]
