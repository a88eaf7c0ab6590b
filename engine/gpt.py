"""The GPT model, exactly nanochat's, so its checkpoints load with strict=True and give the same logits.

Features (see shared/specs/nanochat-model.md): rotary embeddings (base 100000), QK-norm, ReLU² MLP,
untied embedding/unembedding, parameter-free RMSNorm, GQA, a sliding-window pattern tiled over layers,
value embeddings on alternating layers with a per-head gate, "smear" of the previous token's
embedding, per-layer residual/x0 scalars, "backout" of a mid-network residual, logit softcap,
vocab padded to a multiple of 64. No biases anywhere.

The same forward serves training (no cache) and inference (a KVCache, prefill then decode).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from engine.common import cpu_threads
from engine.lm_loss import softcap_cross_entropy
from engine.shapes import GPTConfig, config_from_depth, has_value_embed, padded_vocab, window_sizes

if TYPE_CHECKING:
    from engine.engine import KVCache

__all__ = ["GPT", "GPTConfig", "config_from_depth", "padded_vocab", "window_sizes", "load_state_dict_compat"]


def norm(x: torch.Tensor) -> torch.Tensor:
    return F.rms_norm(x, (x.size(-1),))


def rotary_full(cos: torch.Tensor, sin: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Half-width tables [..., D/2] to the full-width pair apply_rotary takes: [cos, cos] and [sin, -sin]."""
    return torch.cat([cos, cos], dim=-1), torch.cat([sin, -sin], dim=-1)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """With halves x1, x2: [x1·cos + x2·sin, x2·cos - x1·sin] (nanochat's rotation), for full-width tables.

    As x·[cos, cos] + [x2, x1]·[sin, -sin]: four ops instead of eight, and bit-for-bit the same numbers
    (x1·(-sin) is -(x1·sin) exactly, and a + b = b + a).
    """
    d = x.size(-1) // 2
    return x * cos + torch.cat([x[..., d:], x[..., :d]], dim=-1) * sin


def attention_mask(q_pos0: int, tq: int, tk: int, window: int, device: torch.device) -> torch.Tensor:
    """Boolean [tq, tk] mask: query at absolute position i sees keys j with i-window <= j <= i."""
    qi = torch.arange(q_pos0, q_pos0 + tq, device=device)[:, None]
    kj = torch.arange(tk, device=device)[None, :]
    return (kj <= qi) & (qi - kj <= window)


def sliding_window_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, window: int,
                             block: int | None = None) -> torch.Tensor:
    """Causal attention where query i sees keys i-window..i, for q, k, v [B, H, T, D] starting at position 0.

    One full [T, T] masked attention computes every score and masks most of them away when window << T.
    Here queries go in blocks of `block` (default: half the window, measured fastest on CPU at windows of
    128), each against only the block + window keys that can reach it, so the work is T·(block+window)
    scores instead of T². Keys before position 0 are zero padding, masked; queries past T are padding
    whose outputs are dropped.
    """
    B, H, T, D = q.shape
    bs = block or max(32, window // 2)
    nb = -(-T // bs)
    tail = nb * bs - T
    qb = F.pad(q, (0, 0, 0, tail)).reshape(B, H * nb, bs, D)
    kv = [F.pad(t, (0, 0, window, tail)).unfold(2, bs + window, bs).transpose(-1, -2) for t in (k, v)]
    kb, vb = (t.reshape(B, H * nb, bs + window, D) for t in kv)
    a = torch.arange(bs, device=q.device)[:, None]  # query offset in its block
    b = torch.arange(bs + window, device=q.device)[None, :]  # key offset in its window
    first = torch.arange(nb, device=q.device)[:, None, None] * bs - window  # absolute position of key 0
    mask = (b >= a) & (b <= a + window) & (first + b >= 0)  # [nb, bs, bs + window]
    y = F.scaled_dot_product_attention(qb, kb, vb, attn_mask=mask.repeat(H, 1, 1))
    return y.reshape(B, H, nb * bs, D)[:, :, :T]


class DecodeWeights:
    """Weights laid out for one-token decoding: transposed to [in, out], row-concatenated, kept until one changes.

    A decoded token multiplies one vector by each weight matrix, which only streams the matrix from memory;
    CPU BLAS streams the [in, out] layout about twice as fast as nn.Linear's [out, in] (lm_head at vocab 32768,
    dim 256: 1.1 vs 2.4 ms, most of a decode step), and q, k and v become one product. The key is each
    weight's storage and in-place version, so an optimizer step or a load refreshes the copy.
    """

    def __init__(self) -> None:
        self.key: tuple | None = None
        self.value: list[torch.Tensor] = []

    def get(self, *groups: tuple[torch.Tensor, ...], make: Callable[[torch.Tensor], Any] | None = None) -> list:
        """One value per group: `make` of the group's tensors concatenated (default: transposed, contiguous)."""
        key = tuple((w.data_ptr(), w._version, w.dtype, w.device) for g in groups for w in g)
        if key != self.key:
            make = make or (lambda w: w.t().contiguous())
            self.value = [make(torch.cat([w.detach() for w in g])) for g in groups]
            self.key = key
        return self.value


def sigmoid_rows(t: torch.Tensor) -> torch.Tensor:
    """torch.sigmoid with each element's bits independent of the tensor's size (GPT.decode_block's gates).

    ATen runs sigmoid's vector kernel over whole vectors and a scalar formula on the tail, and the two round
    differently; padded to a multiple of 64 elements every element takes the vector kernel.
    """
    flat = t.reshape(-1)
    n = flat.numel()
    return torch.sigmoid(F.pad(flat, (0, -n % 64)))[:n].view(t.shape)


def head_product(x: torch.Tensor, w_head: torch.Tensor, threads: int | None) -> torch.Tensor:
    """x @ w_head on `threads` CPU threads (None: torch's setting), the setting restored after.

    The vocabulary product streams the largest weight (32 MB at vocab 32768, dim 256): on a 2-core CPU two
    threads take it in 0.66 ms instead of 1.2, with the same bits (each output column is one thread's dot
    product), while a decode's small products run faster on one thread (Engine.decode_threads).
    """
    with cpu_threads(threads if x.device.type == "cpu" else None):
        return x @ w_head


def floats(t: torch.Tensor) -> list[float]:
    """Per-layer scalars for decoding: a float multiplies in the tensor's dtype exactly as a 0-dim tensor does."""
    return t.tolist()


def rotary_decode_tables(cos_sin: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The [1, T, 1, D/2] cos and sin tables, concatenated, to full-width [T, 1, D] ones (rotary_full)."""
    return rotary_full(cos_sin[0], cos_sin[1])


class CausalSelfAttention(nn.Module):
    def __init__(self, config: GPTConfig, layer_idx: int):
        super().__init__()
        self.layer_idx = layer_idx
        self.n_head, self.n_kv_head = config.n_head, config.n_kv_head
        self.head_dim = config.n_embd // config.n_head
        C, kv_dim = config.n_embd, config.n_kv_head * self.head_dim
        self.c_q = nn.Linear(C, C, bias=False)
        self.c_k = nn.Linear(C, kv_dim, bias=False)
        self.c_v = nn.Linear(C, kv_dim, bias=False)
        self.c_proj = nn.Linear(C, C, bias=False)
        self.ve_gate_channels = 12
        self.ve_gate = (nn.Linear(self.ve_gate_channels, config.n_kv_head, bias=False)
                        if has_value_embed(layer_idx, config.n_layer) else None)

        self.decode_weights = DecodeWeights()

    def forward(self, x, ve, cos, sin, window: int, kv_cache: KVCache | None):
        B, T, _ = x.shape
        H, Hkv, D = self.n_head, self.n_kv_head, self.head_dim
        q = self.c_q(x).view(B, T, H, D)
        k = self.c_k(x).view(B, T, Hkv, D)
        v = self.c_v(x).view(B, T, Hkv, D)
        if ve is not None:
            gate = 3 * torch.sigmoid(self.ve_gate(x[..., :self.ve_gate_channels]))
            v = v + gate.unsqueeze(-1) * ve.view(B, T, Hkv, D)
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        q, k = norm(q) * 1.2, norm(k) * 1.2
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # [B, H, T, D]
        pos0 = 0
        if kv_cache is not None:
            pos0 = kv_cache.get_pos()
            k, v = kv_cache.insert(self.layer_idx, k, v)
        if self.n_kv_head != self.n_head:
            rep = self.n_head // self.n_kv_head
            k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
        Tk = k.size(2)
        if pos0 == 0 and Tk == T and window >= T - 1:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        elif pos0 == 0 and Tk == T:
            y = sliding_window_attention(q, k, v, window)
        elif T == 1:  # one decoded token sees the last window + 1 keys, all of them: no mask to build
            start = max(0, Tk - 1 - window)
            y = F.scaled_dot_product_attention(q, k[:, :, start:], v[:, :, start:])
        else:
            mask = attention_mask(pos0, T, Tk, window, q.device)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        y = y.transpose(1, 2).contiguous().view(B, T, -1)
        return self.c_proj(y)

    def decode(self, x: torch.Tensor, ve: torch.Tensor | None, cos: torch.Tensor, sin: torch.Tensor, window: int,
               kv_cache: KVCache) -> torch.Tensor:
        """`forward` for one new token per row, x [B, C] (ve [B, Hkv·D]): the same arithmetic in fewer ops."""
        B = x.size(0)
        H, Hkv, D = self.n_head, self.n_kv_head, self.head_dim
        w_qkv, w_proj, *w_gate = self.decode_weights.get(
            (self.c_q.weight, self.c_k.weight, self.c_v.weight), (self.c_proj.weight,),
            *([(self.ve_gate.weight,)] if self.ve_gate is not None else []))
        qkv = x @ w_qkv
        # q and k rotate and normalise together: one op each instead of two; roll(D/2) is the halves swapped
        qk = qkv[:, :(H + Hkv) * D].view(B, H + Hkv, 1, D)
        qk = norm(qk * cos + qk.roll(D // 2, -1) * sin) * 1.2
        q, k = qk[:, :H], qk[:, H:]  # [B, H, 1, D]: with one position, the head-major layout is a view
        v = qkv[:, (H + Hkv) * D:].view(B, Hkv, 1, D)
        if ve is not None:
            gate = 3 * torch.sigmoid(x[:, :self.ve_gate_channels] @ w_gate[0])
            v = v + gate.view(B, Hkv, 1, 1) * ve.view(B, Hkv, 1, D)
        pos = kv_cache.get_pos()
        start = max(0, pos - window)  # the last window + 1 keys, all visible: no mask
        layers = getattr(kv_cache, "layers", None)
        if layers is None:  # a cache with only the documented insert() (the puzzles' caches)
            kc, vc = kv_cache.insert(self.layer_idx, k, v)
            k, v = kc.narrow(2, start, pos + 1 - start), vc.narrow(2, start, pos + 1 - start)
        else:
            kc, vc = layers[self.layer_idx]
            kc.narrow(2, pos, 1).copy_(k)
            vc.narrow(2, pos, 1).copy_(v)
            k, v = kc.narrow(2, start, pos + 1 - start), vc.narrow(2, start, pos + 1 - start)
        if Hkv != H:
            k, v = k.repeat_interleave(H // Hkv, dim=1), v.repeat_interleave(H // Hkv, dim=1)
        y = F.scaled_dot_product_attention(q, k, v)  # [B, H, 1, D]
        return y.reshape(B, H * D) @ w_proj

    def decode_positions(self, x: torch.Tensor, ve: torch.Tensor | None, cos: torch.Tensor, sin: torch.Tensor,
                         window: int, kv_cache: KVCache) -> torch.Tensor:
        """`forward` for M >= 2 consecutive new positions of one sequence, x [M, C] (GPT.decode_block).

        Every op is row-wise: products of M >= 2 rows against the transposed weights (a BLAS gemm whose rows do
        not depend on M, unlike the M = 1 gemv of `decode`), elementwise ops, and one attention call per query
        over exactly the keys it sees. So each position's numbers are the same whatever M is and whatever
        tokens follow it in the block.
        """
        M = x.size(0)
        H, Hkv, D = self.n_head, self.n_kv_head, self.head_dim
        w_qkv, w_proj, *_ = self.decode_weights.get(
            (self.c_q.weight, self.c_k.weight, self.c_v.weight), (self.c_proj.weight,),
            *([(self.ve_gate.weight,)] if self.ve_gate is not None else []))
        qkv = x @ w_qkv
        qk = qkv[:, :(H + Hkv) * D].view(M, H + Hkv, D)
        qk = norm(qk * cos + qk.roll(D // 2, -1) * sin) * 1.2  # cos, sin [M, 1, D]
        v = qkv[:, (H + Hkv) * D:].view(M, Hkv, D)
        if ve is not None:
            logit = (x[:, None, :self.ve_gate_channels] * self.ve_gate.weight).sum(-1)  # row-wise, as the smear's
            v = v + (3 * sigmoid_rows(logit)).view(M, Hkv, 1) * ve.view(M, Hkv, D)
        pos = kv_cache.get_pos()
        kc, vc = kv_cache.layers[self.layer_idx]  # [1, Hkv, positions, D]
        kc[0].narrow(1, pos, M).copy_(qk[:, H:].transpose(0, 1))
        vc[0].narrow(1, pos, M).copy_(v.transpose(0, 1))
        q = qk[:, :H].unsqueeze(2)  # [M, H, 1, D]
        ys = []
        for i in range(M):
            p = pos + i
            start = max(0, p - window)
            k, v_i = kc.narrow(2, start, p + 1 - start), vc.narrow(2, start, p + 1 - start)
            if Hkv != H:
                k, v_i = k.repeat_interleave(H // Hkv, dim=1), v_i.repeat_interleave(H // Hkv, dim=1)
            ys.append(F.scaled_dot_product_attention(q[i:i + 1], k, v_i))
        return torch.cat(ys).view(M, H * D) @ w_proj


class MLP(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=False)
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=False)
        self.decode_weights = DecodeWeights()

    def forward(self, x):
        return self.c_proj(F.relu(self.c_fc(x)).square())

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        """`forward` for x [B, C], one token per row, against the transposed weights."""
        w_fc, w_proj = self.decode_weights.get((self.c_fc.weight,), (self.c_proj.weight,))
        return F.relu(x @ w_fc).square() @ w_proj


class Block(nn.Module):
    def __init__(self, config: GPTConfig, layer_idx: int):
        super().__init__()
        self.attn = CausalSelfAttention(config, layer_idx)
        self.mlp = MLP(config)

    def forward(self, x, ve, cos, sin, window, kv_cache):
        x = x + self.attn(norm(x), ve, cos, sin, window, kv_cache)
        return x + self.mlp(norm(x))

    def decode(self, x, ve, cos, sin, window, kv_cache):
        x = x + self.attn.decode(norm(x), ve, cos, sin, window, kv_cache)
        return x + self.mlp.decode(norm(x))

    def decode_positions(self, x, ve, cos, sin, window, kv_cache):
        x = x + self.attn.decode_positions(norm(x), ve, cos, sin, window, kv_cache)
        return x + self.mlp.decode(norm(x))


class GPT(nn.Module):
    smear_channels = 24
    softcap = 15.0
    rope_base = 100000

    def __init__(self, config: GPTConfig):
        super().__init__()
        if config.n_embd % config.n_head or config.n_head % config.n_kv_head:
            raise ValueError(f"bad head layout: n_embd={config.n_embd} n_head={config.n_head} "
                             f"n_kv_head={config.n_kv_head}")
        self.config = config
        self.window_sizes = window_sizes(config)
        V, C, L = padded_vocab(config.vocab_size), config.n_embd, config.n_layer
        head_dim = C // config.n_head
        kv_dim = config.n_kv_head * head_dim
        self.transformer = nn.ModuleDict({
            "wte": nn.Embedding(V, C),
            "h": nn.ModuleList([Block(config, i) for i in range(L)]),
        })
        self.lm_head = nn.Linear(C, V, bias=False)
        self.value_embeds = nn.ModuleDict({str(i): nn.Embedding(V, kv_dim) for i in range(L) if has_value_embed(i, L)})
        self.resid_lambdas = nn.Parameter(torch.ones(L))
        self.x0_lambdas = nn.Parameter(torch.zeros(L))
        self.smear_gate = nn.Linear(self.smear_channels, 1, bias=False)
        self.smear_lambda = nn.Parameter(torch.zeros(1))
        self.backout_lambda = nn.Parameter(torch.zeros(1))
        # rotary tables are derived, never saved; sized generously for inference past the training length
        self.rotary_len = config.sequence_len * 10
        cos, sin = self._rotary_tables(self.rotary_len, head_dim)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)
        self.decode_weights = DecodeWeights()  # the per-layer scalars as floats
        self.decode_weights_head = DecodeWeights()
        self.decode_tables = DecodeWeights()  # full-width rotary tables, made again when cos/sin change
        # CPU threads for the decode paths' vocabulary product (None: torch's setting); Engine sets it to the
        # caller's count while it runs the rest of a decode forward on fewer (head_product)
        self.head_threads: int | None = None

    def _rotary_tables(self, seq_len: int, head_dim: int, device=None):
        inv_freq = self.rope_base ** (-torch.arange(0, head_dim, 2, dtype=torch.float32, device=device) / head_dim)
        angles = torch.outer(torch.arange(seq_len, dtype=torch.float32, device=device), inv_freq)
        return angles.cos()[None, :, None, :], angles.sin()[None, :, None, :]  # [1, T, 1, D/2]

    @torch.no_grad()
    def init_weights(self) -> None:
        """nanochat's init: see the spec's 'Init' section."""
        C, L = self.config.n_embd, self.config.n_layer
        s = math.sqrt(3) / math.sqrt(C)
        nn.init.normal_(self.transformer.wte.weight, std=0.8)
        nn.init.normal_(self.lm_head.weight, std=0.001)
        for block in self.transformer.h:
            for lin in (block.attn.c_q, block.attn.c_k, block.attn.c_v):
                nn.init.uniform_(lin.weight, -s, s)
            nn.init.uniform_(block.mlp.c_fc.weight, -0.4 * s, 0.4 * s)
            nn.init.zeros_(block.attn.c_proj.weight)
            nn.init.zeros_(block.mlp.c_proj.weight)
            if block.attn.ve_gate is not None:
                nn.init.uniform_(block.attn.ve_gate.weight, 0, 0.02)
        for emb in self.value_embeds.values():
            nn.init.uniform_(emb.weight, -s, s)
        frac = torch.arange(L, dtype=torch.float32) / max(L - 1, 1)
        self.resid_lambdas.copy_(1.15 - 0.10 * frac)
        self.x0_lambdas.copy_(0.20 - 0.15 * frac)
        self.smear_lambda.zero_()
        self.backout_lambda.fill_(0.2)
        nn.init.uniform_(self.smear_gate.weight, 0, 0.02)
        cos, sin = self._rotary_tables(self.rotary_len, C // self.config.n_head, self.cos.device)
        self.cos.copy_(cos)
        self.sin.copy_(sin)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def estimate_flops(self) -> int:
        """Training FLOPs per token: 6 per matmul weight (fwd+bwd) plus attention's score/value matmuls.

        Embedding lookups (wte, value embeds) and per-layer scalars do no matmul work and are excluded.
        """
        excluded = self.transformer.wte.weight.numel() + sum(e.weight.numel() for e in self.value_embeds.values())
        excluded += sum(p.numel() for p in (self.resid_lambdas, self.x0_lambdas, self.smear_lambda,
                                            self.backout_lambda))
        h, q, t = self.config.n_head, self.config.n_embd // self.config.n_head, self.config.sequence_len
        attn = sum(12 * h * q * min(w, t) for w in self.window_sizes)
        return 6 * (self.num_params() - excluded) + attn

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None, kv_cache: KVCache | None = None,
                loss_reduction: str = "mean", input_stage=None) -> torch.Tensor:
        """Logits [B, T, vocab] when targets is None, else the cross-entropy loss (ignore_index -1).

        `input_stage(idx, x) -> x`, when given, replaces the normed token embeddings [B, T, C] before the
        smear and the blocks (an engine extension's hook, see engine/extensions.py); None is the plain model.
        If it also has `value_embed(layer, idx, ve) -> ve`, that replaces the value embeddings [B, T, kv_dim] of
        each layer that has them (a position whose input is not a token's embedding need not take its
        placeholder id's values either).
        """
        B, T = idx.shape
        if targets is None and T == 1 and kv_cache is not None and not torch.is_grad_enabled():
            return self._decode(idx, kv_cache)
        pos0 = kv_cache.get_pos() if kv_cache is not None else 0
        if pos0 + T > self.cos.size(1):
            raise ValueError(f"sequence of {pos0 + T} tokens exceeds the rotary table ({self.cos.size(1)})")
        cos, sin = rotary_full(self.cos[:, pos0:pos0 + T], self.sin[:, pos0:pos0 + T])

        x = norm(self.transformer.wte(idx))
        value_stage = getattr(input_stage, "value_embed", None)
        if input_stage is not None:
            x = input_stage(idx, x)
        embed_last = x[:, -1:]  # the cache's smear input for the next call
        # smear: mix in the previous token's embedding through a learned gate on the current one
        gate = self.smear_lambda * torch.sigmoid(self.smear_gate(x[..., :self.smear_channels]))
        prev = x[:, :-1]
        if kv_cache is not None:
            if kv_cache.prev_embed is not None:
                prev = torch.cat([kv_cache.prev_embed, prev], dim=1)
                x = x + gate * prev
            else:
                x = torch.cat([x[:, :1], x[:, 1:] + gate[:, 1:] * prev], dim=1)
            kv_cache.prev_embed = embed_last
        elif T > 1:
            x = torch.cat([x[:, :1], x[:, 1:] + gate[:, 1:] * prev], dim=1)

        x0 = x
        xb = x
        for i, block in enumerate(self.transformer.h):
            x = self.resid_lambdas[i] * x + self.x0_lambdas[i] * x0
            ve = self.value_embeds[str(i)](idx) if str(i) in self.value_embeds else None
            if ve is not None and value_stage is not None:
                ve = value_stage(i, idx, ve)
            x = block(x, ve, cos, sin, self.window_sizes[i], kv_cache)
            if i == self.config.n_layer // 2:
                xb = x
        if kv_cache is not None:
            kv_cache.advance(T)
        x = norm(x - self.backout_lambda * xb)
        if targets is not None:  # chunked: the full B·T × vocab logits are never held (engine/lm_loss.py)
            return softcap_cross_entropy(x, self.lm_head.weight, targets, self.config.vocab_size, self.softcap,
                                         loss_reduction)
        logits = self.lm_head(x)[..., :self.config.vocab_size].float()
        return self.softcap * torch.tanh(logits / self.softcap)

    def _decode(self, idx: torch.Tensor, kv_cache: KVCache) -> torch.Tensor:
        """`forward` for one new token per row with a cache and no autograd: logits [B, 1, vocab].

        Decoding is bound by per-op overhead and by streaming the weights, not by arithmetic: this path keeps
        activations as [B, C] (no views in and out of [B, 1, C]), multiplies against transposed, fused weight
        copies (DecodeWeights), takes the per-layer scalars as Python floats and the rotary tables at full
        width from a cache. Each op is the one `forward` does on the same numbers, so the logits are the
        same bits (tests/engine/test_gpt.py checks it).
        """
        B, pos = idx.size(0), kv_cache.get_pos()
        if pos + 1 > self.cos.size(1):
            raise ValueError(f"sequence of {pos + 1} tokens exceeds the rotary table ({self.cos.size(1)})")
        ((cos_full, sin_full),) = self.decode_tables.get((self.cos, self.sin), make=rotary_decode_tables)
        cos, sin = cos_full[pos], sin_full[pos]  # [1, D]: broadcast over [B, heads, 1, D]
        ids = idx.view(B)
        x = norm(self.transformer.wte(ids))
        embed = x
        if kv_cache.prev_embed is not None:  # smear
            gate = self.smear_lambda * torch.sigmoid(self.smear_gate(x[:, :self.smear_channels]))
            x = x + gate * kv_cache.prev_embed.view(B, -1)
        kv_cache.prev_embed = embed.view(B, 1, -1)
        x = self._decode_trunk(x, ids, cos, sin, kv_cache, None)
        (w_head,) = self.decode_weights_head.get((self.lm_head.weight[:self.config.vocab_size],))
        logits = head_product(x, w_head, self.head_threads)
        if logits.dtype != torch.float32:
            logits = logits.float()
        return logits.div_(self.softcap).tanh_().mul_(self.softcap).view(B, 1, -1)  # in place: the same ops

    def _decode_trunk(self, x: torch.Tensor, ids: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                      kv_cache: KVCache, positions: int | None) -> torch.Tensor:
        """The decode paths' residual stream through the blocks, the cache advanced, backout and the final norm.

        positions None: one new token per row (Block.decode); else that many consecutive positions of one
        sequence (Block.decode_positions). The per-layer scalars are Python floats (DecodeWeights)."""
        resid, x0s = self.decode_weights.get((self.resid_lambdas,), (self.x0_lambdas,), make=floats)
        x0 = xb = x
        for i, block in enumerate(self.transformer.h):
            x = resid[i] * x + x0s[i] * x0
            ve = self.value_embeds[str(i)](ids) if str(i) in self.value_embeds else None
            step = block.decode if positions is None else block.decode_positions
            x = step(x, ve, cos, sin, self.window_sizes[i], kv_cache)
            if i == self.config.n_layer // 2:
                xb = x
        kv_cache.advance(1 if positions is None else positions)
        return norm(x - self.backout_lambda * xb)

    @torch.inference_mode()
    def decode_block(self, idx: list[int], kv_cache: KVCache, capped: bool = True) -> torch.Tensor:
        """Softcapped logits [M, vocab] for M consecutive tokens of one sequence (a batch-1 cache), fed at the cache's
        position; the cache advances by M (a caller that keeps fewer rewinds it with `rewind`). capped=False
        leaves out the softcap (monotonic: a greedy caller's argmax needs no M x vocab tanh).

        Built for speculative decoding: each position's logits and cached keys/values are the same bits whatever M
        is and whatever tokens come after it, because every op is row-wise and every product has at least two rows
        (M = 1 is padded with a copy of the token, whose position is then dropped). Against `_decode` (one row,
        BLAS's gemv) they differ only in the rounding of the products: see engine/speculative.py.
        """
        M = len(idx)
        if M == 0:
            raise ValueError("decode_block: no tokens to feed")
        rows = max(M, 2)
        pos = kv_cache.get_pos()
        if pos + rows > min(self.cos.size(1), kv_cache.kv.size(4)):
            raise ValueError(f"decode_block: positions {pos}..{pos + rows - 1} exceed the cache or rotary table")
        ((cos_full, sin_full),) = self.decode_tables.get((self.cos, self.sin), make=rotary_decode_tables)
        cos, sin = cos_full[pos:pos + rows], sin_full[pos:pos + rows]  # [rows, 1, D]
        ids = torch.tensor(idx + idx[-1:] * (rows - M), dtype=torch.long, device=self.cos.device)
        embed = x = norm(self.transformer.wte(ids))
        # the gates' tiny products as row-wise sums: a [rows, 24] x [24, 1] gemm need not be row-invariant
        logit = (x[:, :self.smear_channels] * self.smear_gate.weight).sum(-1, keepdim=True)
        gate = self.smear_lambda * sigmoid_rows(logit)
        if kv_cache.prev_embed is not None:
            x = x + gate * torch.cat([kv_cache.prev_embed.view(1, -1), embed[:-1]])
        else:  # the sequence's first position has no predecessor
            x = torch.cat([x[:1], x[1:] + gate[1:] * embed[:-1]])
        kv_cache.block_embeds = embed[:M]  # KVCache.rewind takes the smear input from here
        kv_cache.prev_embed = embed[M - 1].view(1, 1, -1)
        x = self._decode_trunk(x, ids, cos, sin, kv_cache, M)
        (w_head,) = self.decode_weights_head.get((self.lm_head.weight[:self.config.vocab_size],))
        logits = head_product(x, w_head, self.head_threads)
        if logits.dtype != torch.float32:
            logits = logits.float()
        return logits[:M].div_(self.softcap).tanh_().mul_(self.softcap) if capped else logits[:M]


def load_state_dict_compat(model: GPT, state_dict: dict) -> None:
    """Load a nanochat state dict: strip torch.compile's `_orig_mod.` prefix, upcast bf16 on CPU, strict."""
    device = model.lm_head.weight.device
    clean = {}
    for k, v in state_dict.items():
        k = k.removeprefix("_orig_mod.")
        if device.type == "cpu" and v.dtype == torch.bfloat16:
            v = v.float()
        clean[k] = v
    model.load_state_dict(clean, strict=True, assign=False)
