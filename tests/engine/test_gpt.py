"""The model matches stock nanochat: parity on a real nanochat checkpoint, cached decoding == full forward."""

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from engine.engine import KVCache
from engine.gpt import (
    GPT,
    GPTConfig,
    apply_rotary,
    attention_mask,
    config_from_depth,
    load_state_dict_compat,
    norm,
    rotary_full,
    sliding_window_attention,
    window_sizes,
)

FIXTURE = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "nanochat-parity" / "d4-s128"


@pytest.mark.skipif(not FIXTURE.exists(), reason="../shared parity fixture not present")
def test_stock_nanochat_checkpoint_gives_same_logits_and_loss():
    meta = json.loads((FIXTURE / "meta_000000.json").read_text())
    model = GPT(GPTConfig(**meta["model_config"]))
    load_state_dict_compat(model, torch.load(FIXTURE / "model_000000.pt", map_location="cpu"))
    expected = torch.load(FIXTURE / "expected.pt")
    with torch.no_grad():
        logits = model(expected["idx"])
        loss = model(expected["idx"], expected["targets"])
    torch.testing.assert_close(logits, expected["logits"], atol=1e-5, rtol=0)
    assert abs(loss.item() - float(expected["loss"])) < 1e-5


def test_compiled_prefix_and_bf16_are_accepted():
    model = GPT(GPTConfig(sequence_len=32, vocab_size=100, n_layer=2, n_head=2, n_kv_head=2, n_embd=64))
    model.init_weights()
    sd = {"_orig_mod." + k: v.bfloat16() for k, v in model.state_dict().items()}
    other = GPT(model.config)
    load_state_dict_compat(other, sd)
    assert other.transformer.wte.weight.dtype == torch.float32


def test_depth_rule_and_windows():
    cfg = config_from_depth(depth=4, aspect_ratio=64, head_dim=64, sequence_len=2048, vocab_size=320)
    assert (cfg.n_embd, cfg.n_head, cfg.n_kv_head) == (256, 4, 4)
    assert window_sizes(cfg) == [512, 512, 512, 2048]
    cfg.window_pattern = "SSL"
    cfg.n_layer = 5
    assert window_sizes(cfg) == [512, 512, 2048, 512, 2048]


def test_kv_cache_decoding_matches_full_forward_with_gqa_and_windows():
    torch.manual_seed(0)
    cfg = GPTConfig(sequence_len=256, vocab_size=300, n_layer=3, n_head=4, n_kv_head=2, n_embd=128,
                    window_pattern="SL")
    model = GPT(cfg)
    model.init_weights()
    with torch.no_grad():
        for p in model.parameters():  # move off the zero/identity init so every path matters
            p.add_(torch.randn_like(p) * 0.05)
        idx = torch.randint(0, 300, (2, 200))
        full = model(idx)
        cache = KVCache(2, cfg.n_kv_head, 256, cfg.n_embd // cfg.n_head, cfg.n_layer)
        parts = [model(idx[:, :50], kv_cache=cache)]
        parts += [model(idx[:, t:t + 1], kv_cache=cache) for t in range(50, 200)]
    assert model.window_sizes[0] == 128 < 200  # the sliding window is exercised
    torch.testing.assert_close(torch.cat(parts, 1), full, atol=1e-4, rtol=0)


def test_init_matches_spec():
    model = GPT(GPTConfig(sequence_len=64, vocab_size=100, n_layer=4, n_head=2, n_kv_head=2, n_embd=64))
    model.init_weights()
    assert torch.allclose(model.resid_lambdas, torch.tensor([1.15, 1.15 - 0.1 / 3, 1.15 - 0.2 / 3, 1.05]))
    assert model.backout_lambda.item() == pytest.approx(0.2)
    assert model.transformer.h[0].attn.c_proj.weight.abs().sum() == 0
    assert model.lm_head.weight.shape[0] == 128  # vocab padded to a multiple of 64
    assert sorted(model.value_embeds.keys()) == ["1", "3"]
    assert model(torch.randint(0, 100, (1, 64))).shape == (1, 64, 100)


@pytest.mark.parametrize(("T", "window", "block"), [(512, 128, None), (300, 128, None), (300, 128, 128),
                                                    (64, 10, 7), (100, 70, None), (33, 40, None)])
def test_sliding_window_blocks_equal_the_masked_attention(T, window, block):
    """Training's sliding-window attention skips key blocks no query can see; values and gradients must equal
    one full masked attention (float64: the same sums in another grouping agree to ~1e-15)."""
    g = torch.Generator().manual_seed(T + window)
    # [B, T, H, D] transposed to [B, H, T, D], as the model makes them: not contiguous
    q, k, v = (torch.randn(2, T, 3, 16, generator=g, dtype=torch.float64, requires_grad=True) for _ in range(3))
    ref = F.scaled_dot_product_attention(*(t.transpose(1, 2) for t in (q, k, v)),
                                         attn_mask=attention_mask(0, T, T, window, q.device))
    got = sliding_window_attention(*(t.transpose(1, 2) for t in (q, k, v)), window, block)
    assert got.shape == ref.shape
    torch.testing.assert_close(got, ref, atol=1e-12, rtol=0)
    up = torch.randn(ref.shape, generator=g, dtype=torch.float64)
    for a, b in zip(torch.autograd.grad(got, (q, k, v), up), torch.autograd.grad(ref, (q, k, v), up), strict=True):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=0)


def test_decoding_follows_weight_updates():
    """Single-token decoding reads its own transposed copies of the weights; an in-place update (an optimizer
    step, a load) must reach them, or samples taken during training would come from stale weights."""
    torch.manual_seed(0)
    cfg = GPTConfig(sequence_len=64, vocab_size=100, n_layer=2, n_head=2, n_kv_head=1, n_embd=64)
    model = GPT(cfg)
    model.init_weights()
    idx = torch.randint(0, 100, (1, 12))

    def decode_last() -> torch.Tensor:
        cache = KVCache(1, cfg.n_kv_head, 64, 32, cfg.n_layer)
        model(idx[:, :-1], kv_cache=cache)
        return model(idx[:, -1:], kv_cache=cache)[:, -1]

    with torch.no_grad():
        decode_last()  # builds the copies
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
        torch.testing.assert_close(decode_last(), model(idx)[:, -1], atol=1e-5, rtol=0)


def test_rotary_is_bit_for_bit_nanochats_rotation():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 7, 3, 16, generator=g)
    angles = torch.randn(1, 7, 1, 8, generator=g)
    cos, sin = angles.cos(), angles.sin()
    x1, x2 = x[..., :8], x[..., 8:]
    reference = torch.cat([x1 * cos + x2 * sin, x1 * (-sin) + x2 * cos], dim=-1)  # nanochat's formula
    assert torch.equal(apply_rotary(x, *rotary_full(cos, sin)), reference)


def test_the_decoding_path_agrees_with_the_general_forward():
    """GPT._decode (one token per row, cache, no autograd) redoes forward's arithmetic in fewer ops against
    transposed weight copies: per step, from the same cache, its logits agree with the general path's (taken
    here with autograd on) to float32 rounding of another matmul kernel, with the same argmax, past the sliding
    window, with GQA, smear and value embeddings; and both leave the same keys and values in the cache."""
    torch.manual_seed(0)
    pattern, n_kv_head, batch = "SL", 2, 3
    cfg = GPTConfig(sequence_len=256, vocab_size=300, n_layer=3, n_head=4, n_kv_head=n_kv_head, n_embd=64,
                    window_pattern=pattern)
    model = GPT(cfg)
    model.init_weights()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    idx = torch.randint(0, 300, (batch, 145))
    caches = [KVCache(batch, n_kv_head, 160, 16, cfg.n_layer) for _ in range(2)]
    with torch.no_grad():
        for cache in caches:
            model(idx[:, :120], kv_cache=cache)
    for t in range(120, 145):
        with torch.inference_mode():
            fast = model(idx[:, t:t + 1], kv_cache=caches[0])
        general = model(idx[:, t:t + 1], kv_cache=caches[1]).detach()
        torch.testing.assert_close(fast, general, atol=1e-5, rtol=0)
        assert torch.equal(fast.argmax(-1), general.argmax(-1)), f"step {t}"
    assert min(model.window_sizes) < 140  # decoding ran past the sliding window
    torch.testing.assert_close(caches[0].kv[..., :145, :], caches[1].kv[..., :145, :].detach(), atol=1e-5, rtol=0)


def test_a_cache_whose_rows_are_reassigned_decodes_from_the_new_rows():
    """A beam search reorders the cache by assigning `cache.kv` (nanochat_plugins/wgsl): decoding must read and
    write the new tensor, not views of the old one."""
    torch.manual_seed(0)
    cfg = GPTConfig(sequence_len=64, vocab_size=100, n_layer=2, n_head=2, n_kv_head=2, n_embd=64)
    model = GPT(cfg)
    model.init_weights()
    with torch.inference_mode():
        cache = KVCache(1, 2, 32, 32, 2)
        model(torch.randint(0, 100, (1, 5)), kv_cache=cache)
        cache = cache.expand(3)
        cache.kv = cache.kv[:, :, torch.tensor([2, 0, 1])]
        out = model(torch.randint(0, 100, (3, 1)), kv_cache=cache)
        assert out.shape == (3, 1, 100)
        assert cache.layers[0][0].data_ptr() == cache.kv.data_ptr()


def test_an_input_stage_replaces_embeddings_and_value_embeddings_at_its_positions():
    torch.manual_seed(4)
    model = GPT(GPTConfig(sequence_len=32, vocab_size=64, n_layer=4, n_head=2, n_kv_head=2, n_embd=64))
    model.init_weights()
    with torch.no_grad():  # value embeddings and projections that matter (a fresh model zeroes some)
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    idx = torch.randint(1, 64, (1, 12))
    swapped = idx.clone()
    swapped[0, 5] = 0

    class Stage:  # what the model would see with token 0 at position 5, put in by the hooks
        def __call__(self, ids, x):
            return x.index_put((torch.tensor([0]), torch.tensor([5])), norm(model.transformer.wte(swapped[0, 5:6])))

        def value_embed(self, layer, ids, ve):
            return ve.index_put((torch.tensor([0]), torch.tensor([5])), model.value_embeds[str(layer)](swapped[0, 5:6]))

    with torch.no_grad():
        want = model(swapped)
        assert torch.allclose(model(idx, input_stage=Stage()), want, atol=1e-5)
        embed_only = lambda ids, x: Stage()(ids, x)  # noqa: E731  (no value_embed: the id's own values stay)
        assert not torch.allclose(model(idx, input_stage=embed_only), want, atol=1e-3)
