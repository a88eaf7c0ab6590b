"""lm_head + logit softcap + cross-entropy in row chunks, never holding the full B·T × vocab logits.

The plain computation (`plain_loss`) materialises the logits and then five more tensors of that size
(scaled, tanh, capped, log-softmax, and as many again in backward); at vocab 32768 each is B·T × 128 KiB
and the elementwise passes over them cost more than the lm_head matmul itself on a CPU. Here each
chunk of rows goes through four in-place passes over two reused buffers, and the gradients are made
in the same sweep (the loss is a scalar, so backward only has to scale them by its incoming grad):

    u = x·(2/cap) @ Wᵀ          (= 2z/cap for the logits z = x @ Wᵀ)
    σ = sigmoid(u)               cap·tanh(z/cap) = 2·cap·σ - cap, and softmax ignores the -cap shift
    p = softmax(2·cap·σ)         loss_i = -log p[i, target_i]
    dz = (p - onehot)·4σ(1-σ)    d(cap·tanh(z/cap))/dz = 1 - tanh² = 4σ(1-σ)
    dx += dz @ W,   dW += dzᵀ @ x

sigmoid instead of tanh: the same function to ~4e-6 in the capped logit (float32 rounding of σ
scaled by 2·cap) and about ten times cheaper on a CPU. Logits for inference still come from the
plain path (GPT.forward without targets), bit-for-bit nanochat's.

Mixed precision: under autocast the matmuls run in the autocast dtype (as nn.Linear would) and
everything elementwise in float32, with dW accumulated in float32 (float64 inputs stay float64).

Under torch.compile the plain computation is traced instead: dynamo cannot trace an autograd Function
whose forward makes the gradients (loops writing into out= buffers, in-place ops on views) without
breaking the graph, and inductor fuses the plain version's elementwise passes anyway. The gradients
made in forward are first-order only: backward is `once_differentiable`, so a double backward
(create_graph) fails loudly instead of returning wrong second derivatives, and the saved gradients are
released by the first backward (a second one without retain_graph fails like any freed graph).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

__all__ = ["softcap_cross_entropy", "plain_loss", "default_chunk_rows"]

IGNORE_INDEX = -1
# bytes per float32 chunk buffer: small enough to stay near the caches on a CPU, large on GPUs
CHUNK_BYTES = {"cpu": 32 << 20}
CHUNK_BYTES_OTHER = 512 << 20


def default_chunk_rows(n_rows: int, vocab_size: int, device: torch.device) -> int:
    budget = CHUNK_BYTES.get(device.type, CHUNK_BYTES_OTHER)
    return max(1, min(n_rows, budget // (4 * vocab_size)))


def plain_loss(x: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, vocab_size: int, softcap: float,
               reduction: str = "mean") -> torch.Tensor:
    """The reference computation, nanochat's: full logits, softcap, F.cross_entropy (ignore_index -1).

    Logits in float32 at least (nanochat's .float(); float64 inputs stay float64)."""
    logits = F.linear(x, weight)[..., :vocab_size]
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
    logits = softcap * torch.tanh(logits / softcap)
    return F.cross_entropy(logits.view(-1, vocab_size), targets.reshape(-1), ignore_index=IGNORE_INDEX,
                           reduction=reduction)


def _mm_dtype(x: torch.Tensor) -> torch.dtype:
    dev = x.device.type
    return torch.get_autocast_dtype(dev) if torch.is_autocast_enabled(dev) else x.dtype


def _softmax_(t: torch.Tensor, inplace: bool) -> None:
    if inplace:
        torch.softmax(t, -1, out=t)
    else:  # no aliasing of input and output, for kernels not checked for it
        t.copy_(torch.softmax(t, -1))


def _sweep(x: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, vocab_size: int, softcap: float,
           rows: int, want_grad: bool, inplace_softmax: bool):
    """Per-row losses (0 where ignored) and, with want_grad, dz/4 summed into dx and dW, not yet scaled.

    Returns (losses [N], gx [N, C] or None, gw [Vpad, C] or None, valid [N]), float32 (float64 for float64 x).
    """
    n, c = x.shape
    dev = x.device
    mm_dtype = _mm_dtype(x)
    acc = torch.promote_types(mm_dtype, torch.float32)  # elementwise/accumulation dtype: float32 or float64
    exact_mm = mm_dtype == acc
    with torch.autocast(dev.type, enabled=False):
        w = weight[:vocab_size].to(mm_dtype)
        xs = (x.to(acc) * (2.0 / softcap)).to(mm_dtype)
        valid = targets != IGNORE_INDEX
        tgt = torch.where(valid, targets, 0)
        a = torch.empty(rows, vocab_size, device=dev, dtype=acc)
        b = torch.empty(rows, vocab_size, device=dev, dtype=acc)
        p_target = torch.empty(n, device=dev, dtype=acc)
        ar = torch.arange(rows, device=dev)
        gx = gw = None
        if want_grad:
            xm = (x * valid[:, None].to(x.dtype)).to(mm_dtype)  # ignored rows add nothing to dW
            gx = torch.empty(n, c, device=dev, dtype=acc)
            gw = torch.zeros(weight.shape, device=dev, dtype=acc)
            gw_v = gw[:vocab_size]
        for lo in range(0, n, rows):
            hi = min(n, lo + rows)
            r = hi - lo
            u, p = a[:r], b[:r]
            if exact_mm:
                torch.mm(xs[lo:hi], w.t(), out=u)
            else:
                u.copy_(torch.mm(xs[lo:hi], w.t()))
            u.sigmoid_()
            torch.mul(u, 2.0 * softcap, out=p)
            _softmax_(p, inplace_softmax)
            pick = (ar[:r], tgt[lo:hi])
            p_target[lo:hi] = p[pick]
            if not want_grad:
                continue
            p[pick] -= 1.0
            torch.ops.aten.sigmoid_backward.grad_input(p, u, grad_input=p)  # p·σ(1-σ): dz/4
            if exact_mm:
                torch.mm(p, w, out=gx[lo:hi])
                gw_v.addmm_(p.t(), xm[lo:hi])
            else:
                pm = p.to(mm_dtype)
                gx[lo:hi] = torch.mm(pm, w)
                gw_v.add_(torch.mm(pm.t(), xm[lo:hi]))
        losses = torch.where(valid, -p_target.log(), 0.0)
    return losses, gx, gw, valid


class _SoftcapCrossEntropy(torch.autograd.Function):
    """Scalar loss (mean or sum); gradients computed during forward, scaled by grad_output in backward."""

    @staticmethod
    def forward(ctx, x, weight, targets, vocab_size, softcap, reduction, rows, inplace_softmax):
        losses, gx, gw, valid = _sweep(x, weight, targets, vocab_size, softcap, rows, True, inplace_softmax)
        total = losses.sum()
        if reduction == "mean":
            count = valid.sum().to(total.dtype)
            loss, scale = total / count, 4.0 / count
        else:
            loss, scale = total, torch.tensor(4.0, device=x.device, dtype=total.dtype)
        ctx.save_for_backward(gx, gw, valid, scale)
        ctx.x_dtype, ctx.w_dtype = x.dtype, weight.dtype
        return loss

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        gx, gw, valid, scale = ctx.saved_tensors
        g = grad_out.to(scale.dtype) * scale
        dx = dw = None
        if ctx.needs_input_grad[0]:
            dx = (gx * (g * valid.to(g.dtype))[:, None]).to(ctx.x_dtype)
        if ctx.needs_input_grad[1]:
            dw = (gw * g).to(ctx.w_dtype)
        return dx, dw, None, None, None, None, None, None


def softcap_cross_entropy(x: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, vocab_size: int,
                          softcap: float, reduction: str = "mean", rows: int | None = None,
                          inplace_softmax: bool | None = None) -> torch.Tensor:
    """Cross-entropy of softcap·tanh((x @ weight[:vocab_size]ᵀ)/softcap) against targets (-1 ignored).

    x: [..., C]; targets: x's leading shape; weight: [V_padded, C]. reduction: mean | sum | none
    ('none' gives a [N] vector, 0 where ignored, like F.cross_entropy on flattened inputs). `rows`
    per chunk defaults from the device (see CHUNK_BYTES). A per-token loss that needs gradients has
    no scalar to fold them into, so it takes the plain path; so does a call being traced by
    torch.compile (see the module docstring).
    """
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"reduction={reduction!r}: use 'mean', 'sum' or 'none'")
    x2 = x.reshape(-1, x.size(-1))
    t = targets.reshape(-1)
    if torch.compiler.is_compiling():
        return plain_loss(x2, weight, t, vocab_size, softcap, reduction)
    rows = rows or default_chunk_rows(x2.size(0), vocab_size, x2.device)
    inplace = x2.device.type == "cpu" if inplace_softmax is None else inplace_softmax
    needs_grad = torch.is_grad_enabled() and (x2.requires_grad or weight.requires_grad)
    if not needs_grad:
        losses, _, _, valid = _sweep(x2, weight, t, vocab_size, softcap, rows, False, inplace)
        if reduction == "none":
            return losses
        return losses.sum() / valid.sum() if reduction == "mean" else losses.sum()
    if reduction == "none":
        return plain_loss(x2, weight, t, vocab_size, softcap, "none")
    return _SoftcapCrossEntropy.apply(x2, weight, t, vocab_size, softcap, reduction, rows, inplace)
