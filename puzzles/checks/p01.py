"""Puzzle 01 checks: configs, rotary tables (fp32 and bf16), windows, masks and parameter shapes."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from types import SimpleNamespace

import torch

from puzzles import compare
from puzzles.oracle import Oracle

PEEK = {
    "engine": ["engine.shapes:config_from_depth", "engine.shared:model_dim", "engine.gpt:GPT._rotary_tables",
               "engine.shapes:window_sizes", "engine.gpt:attention_mask", "engine.shapes:has_value_embed",
               "engine.shapes:padded_vocab", "engine.gpt:GPT.__init__"],
    "nanochat": ["nanochat.gpt:GPTConfig", "nanochat.gpt:GPT._precompute_rotary_embeddings",
                 "nanochat.gpt:GPT._compute_window_sizes", "nanochat.gpt:has_ve", "nanochat.gpt:GPT.__init__"],
}

DEPTHS = [(4, 64, 128), (12, 64, 128), (20, 64, 128), (26, 64, 128), (6, 48, 64), (5, 40, 32)]
PATTERNS = ["L", "SSSL", "SL", "SSL", "LS"]


def _oracle_config(oracle: Oracle, depth: int, aspect: int, head_dim: int):
    oracle.require_engine("config-from-depth rule (it lives in scripts/base_train.py)")
    from engine.shapes import config_from_depth

    return config_from_depth(depth, aspect, head_dim, 2048, 32768)


def _oracle_rotary(oracle: Oracle, T: int, D: int, dtype: torch.dtype):
    if oracle.is_engine:
        from engine.gpt import GPT

        cos, sin = GPT._rotary_tables(SimpleNamespace(rope_base=GPT.rope_base), T, D)
    else:
        gpt = oracle.nanochat("gpt")
        cos, sin = gpt.GPT._precompute_rotary_embeddings(None, T, D, device="cpu")
    return cos.to(dtype), sin.to(dtype)


def _oracle_windows(oracle: Oracle, config) -> list[int]:
    if oracle.is_engine:
        from engine.shapes import window_sizes

        return window_sizes(config)
    gpt = oracle.nanochat("gpt")
    return [left for left, _ in gpt.GPT._compute_window_sizes(None, gpt.GPTConfig(**config.to_dict()))]


def _oracle_mask(oracle: Oracle, window: int, q_len: int, k_len: int, q_start: int) -> torch.Tensor:
    oracle.require_engine("mask builder (its attention takes window sizes, not masks)")
    from engine.gpt import attention_mask

    return attention_mask(q_start, q_len, k_len, window, torch.device("cpu"))


def _oracle_shapes(oracle: Oracle, config) -> dict[str, tuple[int, ...]]:
    if oracle.is_engine:
        from engine.gpt import GPT as Model

        cfg = config
    else:
        gpt = oracle.nanochat("gpt")
        Model, cfg = gpt.GPT, gpt.GPTConfig(**config.to_dict())
    with torch.device("meta"), contextlib.redirect_stdout(io.StringIO()):  # nanochat prints its vocab padding
        model = Model(cfg)
    return {name: tuple(p.shape) for name, p in model.named_parameters()}


def _small_config(n_kv_head: int = 2, vocab: int = 1000, pattern: str = "SSSL"):
    from engine.shapes import GPTConfig

    return GPTConfig(sequence_len=256, vocab_size=vocab, n_layer=5, n_head=4, n_kv_head=n_kv_head, n_embd=128,
                     window_pattern=pattern)


def checks(impl, oracle: Oracle) -> Iterator[tuple[str, object]]:
    setup = impl.ModelSetup

    def configs():
        for depth, aspect, head_dim in DEPTHS:
            want = _oracle_config(oracle, depth, aspect, head_dim)
            got = setup.config_from_depth(depth, aspect, head_dim, 2048, 32768)
            got = got.to_dict() if hasattr(got, "to_dict") else got
            problem = compare.mappings(f"config_from_depth({depth}, {aspect}, {head_dim})", got, want.to_dict())
            if problem:
                return problem
        return None

    def rotary(dtype):
        def check():
            for T, D in ((64, 32), (512, 64)):
                want_cos, want_sin = _oracle_rotary(oracle, T, D, dtype)
                cos, sin = setup.rotary(T, D, 100000, dtype)
                # fp32: base**-x and 1/base**x differ by an ulp, times positions up to 511;
                # bf16: one rounding step near 1
                atol = 1e-5 if dtype == torch.float32 else 8e-3
                problem = (compare.tensors(f"cos[T={T}, D={D}]", cos, want_cos, atol=atol)
                           or compare.tensors(f"sin[T={T}, D={D}]", sin, want_sin, atol=atol))
                if problem:
                    return problem
            return None
        return check

    def windows():
        from engine.shapes import GPTConfig

        for pattern in PATTERNS:
            for n_layer, seq in ((5, 2048), (7, 1000), (1, 256)):
                cfg = GPTConfig(sequence_len=seq, n_layer=n_layer, window_pattern=pattern)
                problem = compare.sequences(f"window_sizes(pattern={pattern!r}, n_layer={n_layer}, seq={seq})",
                                            setup.window_sizes(cfg), _oracle_windows(oracle, cfg))
                if problem:
                    return problem
        return None

    def masks():
        for window, q_len, k_len, q_start in ((128, 300, 300, 0), (300, 300, 300, 0), (4, 12, 12, 0),
                                              (128, 1, 300, 299), (64, 10, 300, 290)):
            got = setup.attention_mask(window, q_len, k_len, q_start)
            problem = compare.tensors(f"mask(window={window}, q={q_len}@{q_start}, k={k_len})", got,
                                      _oracle_mask(oracle, window, q_len, k_len, q_start))
            if problem:
                return problem
        return None

    def shapes():
        for cfg in (_small_config(), _small_config(4, 512, "L"), _small_config(1, 65, "SL")):
            problem = compare.mappings(f"param_shapes(n_layer={cfg.n_layer}, n_kv_head={cfg.n_kv_head}, "
                                       f"vocab={cfg.vocab_size})", _as_tuples(setup.param_shapes(cfg)),
                                       _oracle_shapes(oracle, cfg))
            if problem:
                return problem
        return None

    yield "config from depth", configs
    yield "rotary tables, float32", rotary(torch.float32)
    yield "rotary tables, bfloat16", rotary(torch.bfloat16)
    yield "sliding-window sizes", windows
    yield "attention masks (prefill and decode)", masks
    yield "parameter names and shapes", shapes


def _as_tuples(shapes):
    return {k: tuple(v) for k, v in shapes.items()} if isinstance(shapes, dict) else shapes


def example(impl) -> str:
    setup = impl.ModelSetup
    cfg = setup.config_from_depth(12)
    lines = [f"config_from_depth(12): {cfg}"]
    cos, sin = setup.rotary(16, 8, dtype=torch.bfloat16)
    lines.append(f"rotary(16, 8, bf16): cos {list(cos.shape)} {cos.dtype}; cos[0, 3, 0] = {cos[0, 3, 0].tolist()}")
    small = _small_config()
    lines.append(f"window_sizes(n_layer=5, seq=256, 'SSSL'): {setup.window_sizes(small)}")
    mask = setup.attention_mask(3, 8, 8)
    lines.append("attention_mask(window=3, 8 tokens):")
    lines += ["  " + "".join("#" if v else "." for v in row) for row in mask.tolist()]
    shapes = setup.param_shapes(small)
    total = sum(torch.Size(s).numel() for s in shapes.values())
    lines.append(f"param_shapes(d5, width 128, 2 kv heads): {len(shapes)} tensors, {total:,} parameters")
    return "\n".join(lines)
