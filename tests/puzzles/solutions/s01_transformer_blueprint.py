"""Reference solution of puzzle 01 (ModelSetup): written for the tests, not a copy of the engine."""

import torch

from engine.shapes import GPTConfig


class ModelSetup:
    @staticmethod
    def config_from_depth(depth, aspect_ratio=64, head_dim=128, sequence_len=2048, vocab_size=32768,
                          window_pattern="SSSL"):
        width = depth * aspect_ratio
        width = ((width + head_dim - 1) // head_dim) * head_dim
        heads = width // head_dim
        return GPTConfig(sequence_len=sequence_len, vocab_size=vocab_size, n_layer=depth, n_head=heads,
                         n_kv_head=heads, n_embd=width, window_pattern=window_pattern)

    @staticmethod
    def rotary(seq_len, head_dim, base=100000, dtype=torch.float32):
        exponents = torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim
        freq = base ** -exponents
        angle = torch.arange(seq_len, dtype=torch.float32)[:, None] * freq[None, :]
        return angle.cos().to(dtype).view(1, seq_len, 1, -1), angle.sin().to(dtype).view(1, seq_len, 1, -1)

    @staticmethod
    def window_sizes(config):
        short = 128 * -(-config.sequence_len // 4 // 128)
        sizes = []
        for layer in range(config.n_layer):
            kind = config.window_pattern[layer % len(config.window_pattern)]
            sizes.append(config.sequence_len if kind == "L" else short)
        sizes[-1] = config.sequence_len
        return sizes

    @staticmethod
    def attention_mask(window, q_len, k_len, q_start=0):
        pos = torch.arange(q_start, q_start + q_len).unsqueeze(1)
        key = torch.arange(k_len).unsqueeze(0)
        return (key <= pos) & (pos - key <= window)

    @staticmethod
    def param_shapes(config):
        vocab = 64 * -(-config.vocab_size // 64)
        C, L = config.n_embd, config.n_layer
        kv = config.n_kv_head * (C // config.n_head)
        shapes = {"transformer.wte.weight": (vocab, C)}
        for i in range(L):
            p = f"transformer.h.{i}."
            shapes.update({p + "attn.c_q.weight": (C, C), p + "attn.c_k.weight": (kv, C),
                           p + "attn.c_v.weight": (kv, C), p + "attn.c_proj.weight": (C, C)})
            if i % 2 == (L - 1) % 2:
                shapes[p + "attn.ve_gate.weight"] = (config.n_kv_head, 12)
            shapes.update({p + "mlp.c_fc.weight": (4 * C, C), p + "mlp.c_proj.weight": (C, 4 * C)})
        shapes["lm_head.weight"] = (vocab, C)
        for i in range(L):
            if i % 2 == (L - 1) % 2:
                shapes[f"value_embeds.{i}.weight"] = (vocab, kv)
        shapes.update({"resid_lambdas": (L,), "x0_lambdas": (L,), "smear_gate.weight": (1, 24),
                       "smear_lambda": (1,), "backout_lambda": (1,)})
        return shapes
