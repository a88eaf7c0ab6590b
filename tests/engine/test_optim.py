"""MuonAdamW: nanochat's groups and lrs, schedules, Muon's orthogonal update, exact resume, 2-rank gloo."""

import io
import math
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn as nn

from engine.errors import EngineError
from engine.gpt import GPT, GPTConfig
from engine.optim import (
    MuonAdamW,
    apply_schedules,
    build_optimizer,
    lr_multiplier,
    muon_momentum,
    orthogonalize,
    weight_decay_multiplier,
)

DEFAULTS = dict(embedding_lr=0.3, unembedding_lr=0.008, matrix_lr=0.02, scalar_lr=0.5, weight_decay=0.2)
TINY = GPTConfig(sequence_len=32, vocab_size=96, n_layer=3, n_head=2, n_kv_head=2, n_embd=64)


def meta_model(n_embd: int, n_layer: int = 3) -> GPT:
    with torch.device("meta"):  # shapes only: grouping needs no storage
        return GPT(GPTConfig(sequence_len=64, vocab_size=100, n_layer=n_layer, n_head=n_embd // 64,
                             n_kv_head=n_embd // 64, n_embd=n_embd))


def tiny_model(seed: int = 0, lively: bool = False) -> GPT:
    """nanochat init; `lively` also fills the zero-initialised weights so no gradient is exactly 0 + noise.

    At nanochat's init the per-layer scalars get gradients of ~1e-11 that are pure rounding noise, and
    Adam turns any noise into full-size steps: one and two ranks could not agree on those.
    """
    torch.manual_seed(seed)
    model = GPT(TINY)
    model.init_weights()
    if lively:
        with torch.no_grad():
            for block in model.transformer.h:
                nn.init.uniform_(block.attn.c_proj.weight, -0.1, 0.1)
                nn.init.uniform_(block.mlp.c_proj.weight, -0.05, 0.05)
            nn.init.normal_(model.lm_head.weight, std=0.05)
            model.smear_lambda.fill_(0.1)
    return model


def fixed_batch(batch: int = 4, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, TINY.vocab_size, (batch, TINY.sequence_len + 1), generator=g)
    return tokens[:, :-1].contiguous(), tokens[:, 1:].contiguous()


def train_steps(model, opt, x, y, steps, start=0, num_iterations=50):
    losses = []
    for step in range(start, start + steps):
        apply_schedules(opt, step, num_iterations, warmup_iters=2)
        loss = model(x, y)
        loss.backward()
        opt.step()
        model.zero_grad(set_to_none=True)
        losses.append(loss.item())
    return losses


def groups_by_name(opt):
    return {g["name"]: g for g in opt.param_groups}


# ---- groups

@pytest.mark.parametrize("n_embd", [768, 256])
def test_groups_cover_every_param_once_with_nanochat_lrs(n_embd):
    model = meta_model(n_embd)
    opt = build_optimizer(model, **DEFAULTS)
    s = (n_embd / 768) ** -0.5  # 1 at 768, sqrt(3) at 256
    g = groups_by_name(opt)
    expected = {  # name: (lr, betas, weight_decay), the spec's numbers at C=768
        "lm_head": (0.008 * s, (0.8, 0.96), 0.01),
        "wte": (0.3 * s, (0.8, 0.995), 0.001),
        "value_embeds": (0.15 * s, (0.8, 0.995), 0.01),
        "resid_lambdas": (0.005, (0.8, 0.95), 0.05),
        "x0_lambdas": (0.5, (0.96, 0.95), 0.0),
        "smear": (0.2, (0.8, 0.95), 0.0),
    }
    for name, (lr, betas, wd) in expected.items():
        assert g[name]["kind"] == "adamw"
        assert g[name]["lr"] == pytest.approx(lr) and g[name]["initial_lr"] == g[name]["lr"]
        assert (g[name]["betas"], g[name]["weight_decay"], g[name]["eps"]) == (betas, wd, 1e-10)
    assert {id(p) for p in g["smear"]["params"]} == {id(model.smear_gate.weight), id(model.smear_lambda),
                                                      id(model.backout_lambda)}
    assert len(g["value_embeds"]["params"]) == len(model.value_embeds)

    muon = [grp for grp in opt.param_groups if grp["kind"] == "muon"]
    C = n_embd
    kv = model.config.n_kv_head
    assert sorted(tuple(grp["params"][0].shape) for grp in muon) == sorted([(C, C), (4 * C, C), (C, 4 * C), (kv, 12)])
    for grp in muon:
        assert len({tuple(p.shape) for p in grp["params"]}) == 1
        assert (grp["lr"], grp["momentum"], grp["ns_steps"], grp["weight_decay"]) == (0.02, 0.95, 5, 0.2)
    assert sum(len(grp["params"]) for grp in muon) == 6 * 3 + len(model.value_embeds)  # + ve_gates

    names = {id(p): n for n, p in model.named_parameters()}
    placed = [names[id(p)] for grp in opt.param_groups for p in grp["params"]]
    assert sorted(placed) == sorted(names.values())  # every parameter exactly once
    muon_names = {names[id(p)] for grp in muon for p in grp["params"]}
    assert muon_names == {n for n in names.values() if n.startswith("transformer.h.")}


def test_unassigned_or_non_matrix_params_are_rejected():
    model = meta_model(128, n_layer=2)
    model.extra = nn.Parameter(torch.zeros(3, device="meta"))
    with pytest.raises(EngineError, match="extra has no optimizer group"):
        build_optimizer(model, **DEFAULTS)
    model = meta_model(128, n_layer=2)
    model.transformer.h[0].attn.bias = nn.Parameter(torch.zeros(3, device="meta"))
    with pytest.raises(EngineError, match="Muon takes only 2-D"):
        build_optimizer(model, **DEFAULTS)
    with pytest.raises(EngineError, match="matrix_lr"):
        build_optimizer(meta_model(128), **{**DEFAULTS, "matrix_lr": -1.0})


def test_bad_groups_are_rejected():
    a, b = nn.Parameter(torch.zeros(4, 4)), nn.Parameter(torch.zeros(4, 8))
    with pytest.raises(EngineError, match="one shape"):
        MuonAdamW([dict(kind="muon", params=[a, b], lr=0.1)])
    with pytest.raises(EngineError, match="kind="):
        MuonAdamW([dict(kind="sgd", params=[a], lr=0.1)])
    with pytest.raises(EngineError, match="missing"):
        MuonAdamW([dict(kind="adamw", params=[a], lr=0.1)])


# ---- schedules

def test_lr_schedule_key_points():
    N = 1000  # warm-down is the last 650 steps: starts after step 350
    assert lr_multiplier(0, N) == pytest.approx(1 / 40)
    assert lr_multiplier(39, N) == 1.0
    assert lr_multiplier(40, N) == 1.0
    assert lr_multiplier(200, N) == 1.0
    assert lr_multiplier(350, N) == 1.0
    assert lr_multiplier(351, N) == pytest.approx(0.05 + 0.95 * 649 / 650)
    assert lr_multiplier(675, N) == pytest.approx(0.05 + 0.95 * 0.5)
    assert lr_multiplier(N - 1, N) == pytest.approx(0.05 + 0.95 / 650)
    assert lr_multiplier(N, N) == pytest.approx(0.05)
    assert lr_multiplier(0, N, warmup_iters=0) == 1.0


def test_lr_schedule_is_continuous_when_warmup_and_warmdown_overlap():
    vals = [lr_multiplier(s, 50) for s in range(51)]
    assert max(abs(a - b) for a, b in zip(vals, vals[1:], strict=False)) < 0.05
    assert vals[-1] == pytest.approx(0.05)


def test_muon_momentum_and_weight_decay_key_points():
    N = 2000  # warm-down starts at step 700
    assert muon_momentum(0, N) == pytest.approx(0.85)
    assert muon_momentum(200, N) == pytest.approx(0.91)
    assert muon_momentum(400, N) == pytest.approx(0.97)
    assert muon_momentum(700, N) == pytest.approx(0.97)
    assert muon_momentum(1350, N) == pytest.approx(0.935)
    assert muon_momentum(N, N) == pytest.approx(0.90)
    assert weight_decay_multiplier(0, N) == 1.0
    assert weight_decay_multiplier(N // 2, N) == pytest.approx(0.5)
    assert weight_decay_multiplier(N, N) == pytest.approx(0.0)
    with pytest.raises(EngineError, match="num_iterations"):
        lr_multiplier(0, 0)
    with pytest.raises(EngineError, match="step"):
        muon_momentum(-1, 10)


def test_apply_schedules_sets_groups_from_initial_values():
    opt = build_optimizer(meta_model(256), **DEFAULTS)
    out = apply_schedules(opt, 500, 1000, lr_scale=2.0)
    assert out["lr_mult"] == pytest.approx(0.05 + 0.95 * 500 / 650)
    assert out["wd_mult"] == pytest.approx(0.5)
    for g in opt.param_groups:
        assert g["lr"] == pytest.approx(g["initial_lr"] * out["lr_mult"] * 2.0)
        if g["kind"] == "muon":
            assert g["momentum"] == out["muon_momentum"]
            assert g["weight_decay"] == pytest.approx(0.2 * 0.5)
    assert groups_by_name(opt)["resid_lambdas"]["weight_decay"] == 0.05  # AdamW decay is not scheduled
    apply_schedules(opt, 0, 1000)  # schedules never compound
    assert groups_by_name(opt)["x0_lambdas"]["lr"] == pytest.approx(0.5 / 40)
    with pytest.raises(EngineError, match="lr_scale"):
        apply_schedules(opt, 0, 1000, lr_scale=0)


# ---- the update rules

@pytest.mark.parametrize("shape", [(128, 32), (32, 128), (4, 12), (256, 96)])
def test_orthogonalize_gives_singular_values_near_one(shape):
    G = torch.randn(3, *shape, generator=torch.Generator().manual_seed(0))
    O = orthogonalize(G)
    assert O.shape == G.shape and O.dtype == torch.float32
    sv = torch.linalg.svdvals(O)
    assert sv.min() > 0.8 and sv.max() < 1.2  # Polar Express converges into a band around 1
    U, _, Vh = torch.linalg.svd(G, full_matrices=False)
    rel = (O - U @ Vh).norm() / (U @ Vh).norm()
    assert rel < 0.15


def test_muon_step_is_orthogonal_update_with_cautious_decay():
    torch.manual_seed(0)
    p = nn.Parameter(torch.randn(16, 48))
    p0 = p.detach().clone()
    p.grad = torch.randn(16, 48)
    lr, wd = 0.1, 0.5
    opt = MuonAdamW([dict(kind="muon", params=[p], lr=lr, momentum=0.9, weight_decay=wd)])
    opt.step()
    u = orthogonalize(p.grad)  # first step: Nesterov momentum is a multiple of the gradient
    expected = p0 - lr * (u + wd * p0 * ((u * p0) >= 0))
    torch.testing.assert_close(p.detach(), expected, atol=1e-5, rtol=0)
    decayed = (u * p0) >= 0
    assert 0 < decayed.sum() < decayed.numel()  # both cases are exercised

    tall = nn.Parameter(torch.zeros(64, 16))  # rows/cols = 4 -> update scaled by 2
    tall.grad = torch.randn(64, 16)
    MuonAdamW([dict(kind="muon", params=[tall], lr=lr)]).step()
    sv = torch.linalg.svdvals(tall.detach() / (2 * lr))
    assert sv.min() > 0.8 and sv.max() < 1.2


def test_adamw_groups_match_torch_adamw():
    torch.manual_seed(0)
    a, b = nn.Parameter(torch.randn(8, 5)), nn.Parameter(torch.randn(8, 5))
    b.data.copy_(a.data)
    ours = MuonAdamW([dict(kind="adamw", params=[a], lr=0.01, betas=(0.8, 0.95), weight_decay=0.1)])
    ref = torch.optim.AdamW([b], lr=0.01, betas=(0.8, 0.95), eps=1e-10, weight_decay=0.1)
    for _ in range(5):
        g = torch.randn(8, 5)
        a.grad, b.grad = g.clone(), g.clone()
        ours.step()
        ref.step()
    torch.testing.assert_close(a.detach(), b.detach(), atol=1e-6, rtol=1e-6)


def test_fused_adamw_kernel_matches_the_op_by_op_update():
    """The fast path (torch's fused kernel) and the op-by-op one differ only in where sqrt meets the bias
    correction: rounding, a few ulps after several steps, never a different update."""
    torch.manual_seed(0)
    a, b = nn.Parameter(torch.randn(64, 33)), nn.Parameter(torch.randn(64, 33))
    b.data.copy_(a.data)
    opts = [MuonAdamW([dict(kind="adamw", params=[p], lr=0.01, betas=(0.8, 0.95), weight_decay=0.1)]) for p in (a, b)]
    opts[1].fused_adamw = False
    for _ in range(5):
        g = torch.randn(64, 33)
        a.grad, b.grad = g.clone(), g.clone()
        for opt in opts:
            opt.step()
    torch.testing.assert_close(a.detach(), b.detach(), atol=1e-6, rtol=1e-6)
    assert opts[0].state[a]["step"] == opts[1].state[b]["step"] == 5  # same state layout: checkpoints interchange


def test_every_update_reaches_the_decode_weight_cache():
    """The fused AdamW kernel writes params without bumping their versions; the optimizer bumps them, so the
    one-token decode path (gpt.DecodeWeights, keyed on storage and version) never samples stale weights
    after a step (RL samples, updates and samples again in one process)."""
    model = tiny_model(lively=True)
    opt = build_optimizer(model, **DEFAULTS)
    x, y = fixed_batch(batch=1)
    decode = model.decode_weights
    with torch.no_grad():
        before = [w.clone() for w in decode.get((model.lm_head.weight,))]
    model(x, y).backward()
    opt.step()
    with torch.no_grad():
        (after,) = decode.get((model.lm_head.weight,))
    assert not torch.equal(after, before[0])
    assert torch.equal(after, model.lm_head.weight.detach().t())


def test_tiny_gpt_loss_decreases_on_a_fixed_batch():
    model = tiny_model()
    opt = build_optimizer(model, **DEFAULTS)
    x, y = fixed_batch()
    losses = train_steps(model, opt, x, y, 30)
    assert all(math.isfinite(v) for v in losses)
    assert losses[-1] < 0.5 * losses[0], losses


def test_state_dict_round_trip_resumes_bit_exactly():
    x, y = fixed_batch()
    model = tiny_model()
    opt = build_optimizer(model, **DEFAULTS)
    train_steps(model, opt, x, y, 3)
    model_buf, opt_buf = io.BytesIO(), io.BytesIO()
    torch.save(model.state_dict(), model_buf)
    torch.save(opt.state_dict(), opt_buf)
    reference = train_steps(model, opt, x, y, 3, start=3)

    model_buf.seek(0)
    opt_buf.seek(0)
    resumed = tiny_model(seed=123)  # different init: everything must come from the checkpoint
    resumed.load_state_dict(torch.load(model_buf))
    opt2 = build_optimizer(resumed, **DEFAULTS)
    opt2.load_state_dict(torch.load(opt_buf))
    again = train_steps(resumed, opt2, x, y, 3, start=3)

    assert again == reference
    for (name, p), q in zip(model.named_parameters(), resumed.parameters(), strict=True):
        assert torch.equal(p, q), name


def test_world_size_mismatch_is_reported():
    model = tiny_model()
    opt = build_optimizer(model, **DEFAULTS, world_size=2)
    x, y = fixed_batch()
    model(x, y).backward()
    with pytest.raises(EngineError, match="world_size=2 but 1 ranks"):
        opt.step()


def test_grad_buckets_pack_small_params_and_respect_the_cap():
    model = tiny_model()
    opt = build_optimizer(model, **DEFAULTS)
    assert len(opt.grad_buckets()) == 1  # the whole tiny model fits the default 4 MB
    opt.bucket_cap_mb = 0.01
    buckets = opt.grad_buckets()
    flat = [p for b in buckets for p in b]
    assert [id(p) for p in flat] == [id(p) for g in opt.param_groups for p in g["params"]]
    assert any(len(b) > 1 for b in buckets)
    for b in buckets:
        assert len(b) == 1 or sum(p.numel() * 4 for p in b) <= 0.01 * 2**20


# ---- two gloo ranks vs one process

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_worker(rank: int, port: int, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        model = tiny_model(lively=True)
        opt = build_optimizer(model, **DEFAULTS, world_size=2)
        opt.bucket_cap_mb = 0.01  # big params reduce alone, small ones packed together: both paths run
        x, y = fixed_batch()
        half = slice(rank * 2, rank * 2 + 2)  # each rank trains on a different half of the batch
        train_steps(model, opt, x[half], y[half], 3)
        torch.save(model.state_dict(), f"{out_dir}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _emulate_two_ranks(steps: int) -> dict[str, torch.Tensor]:
    """One process doing the two ranks' arithmetic: each half's gradient on its own, then (g0 + g1) / 2 as the
    optimizer's all_reduce(SUM) + div_(world) does. Summing two floats is commutative, so this is bit-exact."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the rank workers run on one thread: same kernels, same blocking, same bits
    try:
        model = tiny_model(lively=True)
        opt = build_optimizer(model, **DEFAULTS)
        x, y = fixed_batch()
        params = list(model.parameters())
        for step in range(steps):
            apply_schedules(opt, step, 50, warmup_iters=2)
            halves = []
            for rank in range(2):
                half = slice(rank * 2, rank * 2 + 2)
                model(x[half], y[half]).backward()
                halves.append([p.grad.clone() for p in params])
                model.zero_grad(set_to_none=True)
            for p, g0, g1 in zip(params, *halves, strict=True):
                p.grad = (g0 + g1).div_(2)
            opt.step()
            model.zero_grad(set_to_none=True)
        return model.state_dict()
    finally:
        torch.set_num_threads(threads)


@pytest.mark.slow  # a real multi-process run: 10-30 s on a busy 2-core machine
def test_two_gloo_ranks_match_each_other_and_their_arithmetic_bit_exactly(tmp_path):
    mp.spawn(_rank_worker, args=(_free_port(), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt") for r in range(2))
    emulated = _emulate_two_ranks(3)
    start = tiny_model(lively=True).state_dict()
    for name in r0:
        assert torch.equal(r0[name], r1[name]), name  # every rank applies the same reduced gradient
        assert torch.equal(r0[name], emulated[name]), name  # and the reduction is exactly (g0 + g1) / 2
    assert any(not torch.equal(r0[n], start[n]) for n in r0)  # training actually moved the weights


def test_split_batch_equals_full_batch_up_to_reassociation():
    """Two half-batch gradients averaged vs one full-batch gradient is the same sum in another order, so the
    two differ by rounding only. Bound it from the arithmetic rather than guessing an atol: after `steps`
    updates, a weight can differ by at most `steps * lr` times the relative change in its update direction
    that reassociation causes. Adam divides by sqrt(v), so a gradient perturbation of relative size r moves
    an update by ~r of its size; r is the float32 rounding of a sum of N terms, ≤ N * eps, amplified by
    cancellation |sum| / sum|terms|. We measure that amplification on the first gradient itself
    (the float64 gradient is the reference) and derive the weight tolerance from it."""
    steps, lr_max = 3, max(DEFAULTS["embedding_lr"], DEFAULTS["unembedding_lr"], DEFAULTS["matrix_lr"],
                           DEFAULTS["scalar_lr"])
    x, y = fixed_batch()
    # relative rounding of the float32 gradients, measured against float64 on the same weights
    model32 = tiny_model(lively=True)
    model64 = tiny_model(lively=True).double()
    model32(x, y).backward()
    model64(x, y).backward()
    rel = max(((p32.grad.double() - p64.grad).abs().max() / p64.grad.abs().max().clamp_min(1e-30)).item()
              for p32, p64 in zip(model32.parameters(), model64.parameters(), strict=True))
    # each of the two orders is within `rel` of the exact gradient, so of each other within 2 * rel; an update
    # of size <= lr moves by <= 2 * rel * lr (Adam) — and Muon's orthogonalisation is Lipschitz on the
    # normalised gradient, so the same relative bound holds there. Over `steps` steps these add.
    # The factor 10 = 2 (the perturbation enters both m and sqrt(v)) x 2 (weights moved by earlier steps feed
    # back into later gradients) x 2.5 (headroom for elements smaller than their tensor's max, where the
    # per-tensor `rel` understates the per-element error). Here: worst ~7e-6 against a bound of ~3e-5, while a
    # real arithmetic change (a missing /2, a dropped half) moves weights by >= 1e-3.
    atol = steps * lr_max * 2 * rel * 10
    atol = max(atol, 8 * torch.finfo(torch.float32).eps)

    emulated = _emulate_two_ranks(steps)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = tiny_model(lively=True)
        train_steps(model, build_optimizer(model, **DEFAULTS), x, y, steps)
    finally:
        torch.set_num_threads(threads)
    worst = max((emulated[n] - t).abs().max().item() for n, t in model.state_dict().items())
    assert worst <= atol, f"split vs full batch differ by {worst:.3g} > derived bound {atol:.3g} (rel {rel:.3g})"
