"""Reference solution of puzzle 08 (MiniGPT): written for the tests, not a copy of the engine."""

import torch
import torch.nn.functional as F
from torch import nn


def rms_norm(x):
    return F.rms_norm(x, (x.size(-1),))


def apply_rotary(x, cos, sin):
    half = x.size(-1) // 2
    a, b = x[..., :half], x[..., half:]
    return torch.cat([a * cos + b * sin, b * cos - a * sin], dim=-1)


def _has_ve(i, n_layer):
    return i % 2 == (n_layer - 1) % 2


class CausalSelfAttention(nn.Module):
    def __init__(self, config, layer_idx):
        super().__init__()
        C = config.n_embd
        self.h, self.hkv, self.d = config.n_head, config.n_kv_head, C // config.n_head
        self.c_q = nn.Linear(C, C, bias=False)
        self.c_k = nn.Linear(C, self.hkv * self.d, bias=False)
        self.c_v = nn.Linear(C, self.hkv * self.d, bias=False)
        self.c_proj = nn.Linear(C, C, bias=False)
        self.ve_gate = nn.Linear(12, self.hkv, bias=False) if _has_ve(layer_idx, config.n_layer) else None

    def forward(self, x, ve, cos, sin, window):
        B, T, _ = x.shape
        q = self.c_q(x).view(B, T, self.h, self.d)
        k = self.c_k(x).view(B, T, self.hkv, self.d)
        v = self.c_v(x).view(B, T, self.hkv, self.d)
        if ve is not None:
            v = v + (3 * torch.sigmoid(self.ve_gate(x[..., :12]))).unsqueeze(-1) * ve.view(B, T, self.hkv, self.d)
        q = rms_norm(apply_rotary(q, cos, sin)) * 1.2
        k = rms_norm(apply_rotary(k, cos, sin)) * 1.2
        rep = self.h // self.hkv
        q = q.transpose(1, 2)
        k, v = k.repeat_interleave(rep, 2).transpose(1, 2), v.repeat_interleave(rep, 2).transpose(1, 2)
        i = torch.arange(T).unsqueeze(1)
        j = torch.arange(T).unsqueeze(0)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=(j <= i) & (i - j <= window))
        return self.c_proj(y.transpose(1, 2).reshape(B, T, -1))


class MLP(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=False)
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=False)

    def forward(self, x):
        return self.c_proj(F.relu(self.c_fc(x)) ** 2)


class Block(nn.Module):
    def __init__(self, config, layer_idx):
        super().__init__()
        self.attn = CausalSelfAttention(config, layer_idx)
        self.mlp = MLP(config)

    def forward(self, x, ve, cos, sin, window):
        x = x + self.attn(rms_norm(x), ve, cos, sin, window)
        return x + self.mlp(rms_norm(x))


class MiniGPT(nn.Module):
    softcap = 15.0

    def __init__(self, config):
        super().__init__()
        self.config = config
        L, C = config.n_layer, config.n_embd
        V = 64 * -(-config.vocab_size // 64)
        kv = config.n_kv_head * (C // config.n_head)
        self.transformer = nn.ModuleDict({"wte": nn.Embedding(V, C),
                                          "h": nn.ModuleList(Block(config, i) for i in range(L))})
        self.lm_head = nn.Linear(C, V, bias=False)
        self.value_embeds = nn.ModuleDict({str(i): nn.Embedding(V, kv) for i in range(L) if _has_ve(i, L)})
        self.resid_lambdas = nn.Parameter(torch.ones(L))
        self.x0_lambdas = nn.Parameter(torch.zeros(L))
        self.smear_gate = nn.Linear(24, 1, bias=False)
        self.smear_lambda = nn.Parameter(torch.zeros(1))
        self.backout_lambda = nn.Parameter(torch.zeros(1))
        d = C // config.n_head
        freq = 100000 ** -(torch.arange(0, d, 2, dtype=torch.float32) / d)
        angle = torch.arange(config.sequence_len, dtype=torch.float32)[:, None] * freq
        self.register_buffer("cos", angle.cos()[None, :, None], persistent=False)
        self.register_buffer("sin", angle.sin()[None, :, None], persistent=False)
        short = 128 * -(-config.sequence_len // 4 // 128)
        self.windows = [config.sequence_len if config.window_pattern[i % len(config.window_pattern)] == "L" else short
                        for i in range(L)]
        self.windows[-1] = config.sequence_len

    def forward(self, idx):
        T = idx.size(1)
        cos, sin = self.cos[:, :T], self.sin[:, :T]
        x = rms_norm(self.transformer.wte(idx))
        gate = self.smear_lambda * torch.sigmoid(self.smear_gate(x[..., :24]))
        x = torch.cat([x[:, :1], x[:, 1:] + gate[:, 1:] * x[:, :-1]], dim=1)
        x0, xb = x, x
        for i, block in enumerate(self.transformer.h):
            x = self.resid_lambdas[i] * x + self.x0_lambdas[i] * x0
            ve = self.value_embeds[str(i)](idx) if str(i) in self.value_embeds else None
            x = block(x, ve, cos, sin, self.windows[i])
            if i == self.config.n_layer // 2:
                xb = x
        x = rms_norm(x - self.backout_lambda * xb)
        logits = self.lm_head(x)[..., :self.config.vocab_size].float()
        return self.softcap * torch.tanh(logits / self.softcap)
