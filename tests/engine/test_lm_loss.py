"""The chunked lm_head + softcap + cross-entropy equals the plain computation, values and gradients."""

import pytest
import torch

from engine.lm_loss import plain_loss, softcap_cross_entropy

CAP = 15.0


def inputs(n=37, c=16, vocab=150, dtype=torch.float64, seed=0, ignore=True):
    """vocab 150 padded to 192 rows like the model's lm_head; logits large enough that the cap bends them."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, generator=g, dtype=dtype)
    w = torch.randn(192, c, generator=g, dtype=dtype) * 3
    t = torch.randint(0, vocab, (n,), generator=g)
    if ignore:
        t[::5] = -1
    return x, w, t, vocab


def grads(fn, x, w, t, vocab, **kw):
    x, w = x.clone().requires_grad_(), w.clone().requires_grad_()
    loss = fn(x, w, t, vocab, CAP, **kw)
    loss.backward()
    return loss.detach(), x.grad, w.grad


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("rows", [1, 8, 37, 64])  # one row, several chunks with a short last one, one, oversize
def test_float64_loss_and_gradients_equal_the_plain_ones(reduction, rows):
    """In float64 the two are the same function up to rounding (tanh via sigmoid is an identity), so any
    slip in the math (a missing 4, a wrong mask, the padded rows) shows up far above 1e-10."""
    x, w, t, vocab = inputs()
    ref = grads(plain_loss, x, w, t, vocab, reduction=reduction)
    got = grads(softcap_cross_entropy, x, w, t, vocab, reduction=reduction, rows=rows)
    for r, g in zip(ref, got, strict=True):
        torch.testing.assert_close(g, r, atol=1e-10, rtol=1e-10)
    assert got[2][vocab:].abs().sum() == 0  # padded vocab rows get no gradient


def test_float32_agrees_with_plain_to_float_rounding():
    """float32: the capped logit differs by ~1e-6 (sigmoid vs tanh rounding), so loss and gradients agree to ~1e-5
    relative, the size of float32 rounding over a 150-way softmax, not to the bit."""
    x, w, t, vocab = inputs(dtype=torch.float32)
    ref = grads(plain_loss, x, w, t, vocab)
    got = grads(softcap_cross_entropy, x, w, t, vocab, rows=8)
    for r, g in zip(ref, got, strict=True):
        torch.testing.assert_close(g, r, atol=1e-5 * r.abs().max().item(), rtol=1e-5)


def test_incoming_gradient_scales_the_result():
    x, w, t, vocab = inputs()
    xr = x.clone().requires_grad_()
    (softcap_cross_entropy(xr, w, t, vocab, CAP, rows=8) * 0.25).backward()
    _, gx, _ = grads(softcap_cross_entropy, x, w, t, vocab, rows=8)
    torch.testing.assert_close(xr.grad, gx * 0.25, atol=1e-15, rtol=1e-12)


def test_per_token_losses_without_grad_and_the_plain_fallback_with_grad():
    x, w, t, vocab = inputs()
    ref = plain_loss(x, w, t, vocab, CAP, reduction="none")
    with torch.no_grad():
        got = softcap_cross_entropy(x, w, t, vocab, CAP, reduction="none", rows=8)
    torch.testing.assert_close(got, ref, atol=1e-10, rtol=1e-10)
    assert (got[t == -1] == 0).all()
    xr = x.clone().requires_grad_()
    per_token = softcap_cross_entropy(xr, w, t, vocab, CAP, reduction="none")
    assert per_token.requires_grad
    torch.testing.assert_close(per_token.detach(), ref, atol=1e-10, rtol=1e-10)


def test_softmax_without_aliasing_gives_the_same_bits():
    """Other devices use the out-of-place softmax; it must be the same arithmetic."""
    x, w, t, vocab = inputs(dtype=torch.float32)
    a = grads(softcap_cross_entropy, x, w, t, vocab, rows=8, inplace_softmax=True)
    b = grads(softcap_cross_entropy, x, w, t, vocab, rows=8, inplace_softmax=False)
    for u, v in zip(a, b, strict=True):
        assert torch.equal(u, v)


def test_autocast_runs_matmuls_low_precision_and_returns_float32_grads():
    """The CUDA training path (bf16 autocast), exercised with CPU autocast: same code, same dtype handling."""
    x, w, t, vocab = inputs(dtype=torch.float32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ref = grads(plain_loss, x, w, t, vocab)
        got = grads(softcap_cross_entropy, x, w, t, vocab, rows=8)
    assert got[0].dtype == torch.float32 and got[1].dtype == x.dtype and got[2].dtype == w.dtype
    # bf16 has 8 bits of mantissa: both sides round x and w to it, in different places
    for r, g in zip(ref, got, strict=True):
        torch.testing.assert_close(g.float(), r.float(), atol=3e-2 * r.abs().max().item(), rtol=3e-2)


def test_all_targets_ignored_gives_nan_like_cross_entropy():
    x, w, t, vocab = inputs()
    t[:] = -1
    with torch.no_grad():
        assert torch.isnan(softcap_cross_entropy(x, w, t, vocab, CAP))
        assert torch.isnan(plain_loss(x, w, t, vocab, CAP))


def test_bad_reduction_is_rejected():
    x, w, t, vocab = inputs()
    with pytest.raises(ValueError, match="reduction"):
        softcap_cross_entropy(x, w, t, vocab, CAP, reduction="avg")


def test_a_compiled_caller_traces_the_plain_path(monkeypatch):
    """torch.compile traces plain_loss (dynamo cannot trace the gradient-making Function without graph breaks):
    the chunked sweep is never entered while compiling, and loss and gradients equal the plain ones. The
    'eager' backend runs dynamo's tracing without inductor's C++ build, which is what decides the path."""
    import engine.lm_loss as lm_loss

    torch._dynamo.reset()

    def no_sweep(*args, **kwargs):
        raise AssertionError("the chunked sweep ran under torch.compile")

    monkeypatch.setattr(lm_loss, "_sweep", no_sweep)
    x, w, t, vocab = inputs()
    compiled = torch.compile(softcap_cross_entropy, backend="eager", fullgraph=True)
    ref = grads(plain_loss, x, w, t, vocab)
    got = grads(compiled, x, w, t, vocab)
    for r, g in zip(ref, got, strict=True):
        torch.testing.assert_close(g, r, atol=1e-12, rtol=1e-12)
    torch._dynamo.reset()


def test_second_backward_fails_loudly_and_double_backward_is_refused():
    """The gradients are made in forward: a second backward after the graph was freed must raise (not add the
    same gradients again unasked), with retain_graph it adds them once more like any graph, and a double
    backward (create_graph) raises instead of giving zero second derivatives."""
    x, w, t, vocab = inputs()
    xr = x.clone().requires_grad_()
    loss = softcap_cross_entropy(xr, w, t, vocab, CAP, rows=8)
    loss.backward()
    first = xr.grad.clone()
    with pytest.raises(RuntimeError, match="second time|freed"):
        loss.backward()
    xr.grad = None
    loss = softcap_cross_entropy(xr, w, t, vocab, CAP, rows=8)
    loss.backward(retain_graph=True)
    loss.backward()
    torch.testing.assert_close(xr.grad, 2 * first, atol=1e-15, rtol=1e-12)
    xr.grad = None
    loss = softcap_cross_entropy(xr, w, t, vocab, CAP, rows=8)
    (gx,) = torch.autograd.grad(loss, xr, create_graph=True)
    with pytest.raises(RuntimeError, match="once_differentiable|does not require grad|second"):
        gx.sum().backward()
