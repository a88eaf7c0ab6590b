"""Puzzle 08 checks: norm, rotary, the state dict's names and shapes, logits on a stock checkpoint and on a
GQA + sliding-window model."""

from __future__ import annotations

import contextlib
import io
import json
import os
from collections.abc import Iterator
from pathlib import Path

import torch

from puzzles import compare
from puzzles.checks import fixtures
from puzzles.oracle import Oracle

PEEK = {
    "engine": ["engine.gpt:norm", "engine.gpt:apply_rotary", "engine.gpt:CausalSelfAttention",
               "engine.gpt:MLP", "engine.gpt:Block", "engine.gpt:GPT.forward", "engine.gpt:load_state_dict_compat"],
    "nanochat": ["nanochat.gpt:norm", "nanochat.gpt:apply_rotary_emb", "nanochat.gpt:CausalSelfAttention",
                 "nanochat.gpt:MLP", "nanochat.gpt:Block", "nanochat.gpt:GPT.forward"],
}
FIXTURE_ENV = "NANOCHAT_PARITY_FIXTURE"
FIXTURE_PARTS = ("shared", "fixtures", "nanochat-parity", "d4-s128")


def find_fixture() -> Path | None:
    """The stock parity checkpoint: $NANOCHAT_PARITY_FIXTURE, else shared/... in a folder above the repo."""
    if os.environ.get(FIXTURE_ENV):
        return Path(os.environ[FIXTURE_ENV]).expanduser()
    for parent in Path(__file__).resolve().parents:
        candidate = parent.joinpath(*FIXTURE_PARTS)
        if (candidate / "model_000000.pt").is_file():
            return candidate
    return None


def stock_checkpoint() -> tuple[dict, dict, dict | None, str]:
    """(model_config, state_dict, expected {idx, logits} or None, where it came from)."""
    fixture = find_fixture()
    if fixture is not None:
        meta = json.loads((fixture / "meta_000000.json").read_text())
        state = torch.load(fixture / "model_000000.pt", map_location="cpu", weights_only=True)
        expected = torch.load(fixture / "expected.pt", map_location="cpu", weights_only=True)
        return meta["model_config"], state, expected, f"stock nanochat checkpoint {fixture}"
    model = fixtures.gpt(320, seed=8, n_layer=4, sequence_len=128, pattern="SSSL")
    return (model.config.to_dict(), model.state_dict(), None,
            f"no stock checkpoint found (set {FIXTURE_ENV}): one in its format written by the engine")


def _oracle_logits(oracle: Oracle, config: dict, state: dict, idx: torch.Tensor) -> torch.Tensor:
    if oracle.is_engine:
        from engine.gpt import GPT, GPTConfig, load_state_dict_compat

        model = GPT(GPTConfig(**config))
        load_state_dict_compat(model, state)
    else:
        gpt = oracle.nanochat("gpt")
        with contextlib.redirect_stdout(io.StringIO()):
            model = gpt.GPT(gpt.GPTConfig(**config))
            model.init_weights()  # its rotary buffers; the weights come from the state dict
        model.load_state_dict(state, strict=True)
    with torch.no_grad():
        return model.eval()(idx).float()


def _load(impl, config: dict, state: dict):
    from engine.shapes import GPTConfig

    model = impl.MiniGPT(GPTConfig(**config))
    result = model.load_state_dict({k.removeprefix("_orig_mod."): v.float() for k, v in state.items()}, strict=False)
    if result.missing_keys:
        n = len(result.missing_keys)
        return None, f"MiniGPT has {result.missing_keys[0]} which the checkpoint lacks ({n} missing)"
    if result.unexpected_keys:
        return None, (f"the checkpoint has {result.unexpected_keys[0]} which MiniGPT lacks "
                      f"({len(result.unexpected_keys)} unexpected)")
    return model.eval(), None


def checks(impl, oracle: Oracle) -> Iterator[tuple[str, object]]:
    gen = torch.Generator().manual_seed(0)

    def norm():
        x = torch.randn(3, 5, 64, generator=gen) * 4
        return compare.tensors("rms_norm(x)", impl.rms_norm(x), torch.nn.functional.rms_norm(x, (64,)), atol=1e-6)

    def rotary():
        x = torch.randn(2, 10, 3, 16, generator=gen)
        angles = torch.outer(torch.arange(10.0), torch.rand(8, generator=gen))
        cos, sin = angles.cos()[None, :, None], angles.sin()[None, :, None]
        if oracle.is_engine:
            from engine.gpt import apply_rotary, rotary_full

            want = apply_rotary(x, *rotary_full(cos, sin))
        else:
            want = oracle.nanochat("gpt").apply_rotary_emb(x, cos, sin)
        return compare.tensors("apply_rotary(x, cos, sin)", impl.apply_rotary(x, cos, sin), want, atol=1e-6)

    def state_dict():
        from engine.gpt import GPT
        from engine.shapes import GPTConfig

        cfg = GPTConfig(sequence_len=64, vocab_size=300, n_layer=3, n_head=4, n_kv_head=2, n_embd=64)
        want = {k: tuple(v.shape) for k, v in GPT(cfg).state_dict().items()}
        got = {k: tuple(v.shape) for k, v in impl.MiniGPT(cfg).state_dict().items()}
        return compare.mappings("state_dict (name -> shape)", got, want)

    def stock():
        config, state, expected, source = stock_checkpoint()
        model, problem = _load(impl, config, state)
        if problem:
            return f"{source}: {problem}"
        idx = (expected["idx"] if expected is not None
               else torch.randint(0, config["vocab_size"], (2, 64), generator=gen))
        with torch.no_grad():
            got = model(idx)
        want = _oracle_logits(oracle, config, state, idx)
        problem = compare.tensors(f"logits on the {source.split(':')[0]}", got, want, atol=1e-5)
        if problem is None and expected is not None:
            problem = compare.tensors("logits vs the fixture's expected.pt", got, expected["logits"], atol=1e-5)
        return problem

    def gqa_windows():
        model_ref = fixtures.gpt(300, seed=9, n_layer=4, n_kv_head=1, sequence_len=512, pattern="SSL")
        config, state = model_ref.config.to_dict(), model_ref.state_dict()
        model, problem = _load(impl, config, state)
        if problem:
            return problem
        idx = torch.randint(0, 300, (2, 300), generator=gen)  # past the 128-token short window
        with torch.no_grad():
            got = model(idx)
        return compare.tensors("logits (1 kv head for 4 query heads, windows 128/512, 300 tokens)", got,
                               _oracle_logits(oracle, config, state, idx), atol=1e-5)

    yield "RMSNorm", norm
    yield "rotary embedding", rotary
    yield "state dict names and shapes", state_dict
    yield "stock checkpoint: strict load, identical logits", stock
    yield "GQA and sliding windows: identical logits", gqa_windows


def example(impl) -> str:
    config, state, expected, source = stock_checkpoint()
    model, problem = _load(impl, config, state)
    if problem:
        return f"{source}: {problem}"
    idx = torch.arange(16).view(1, 16) % config["vocab_size"]
    with torch.no_grad():
        logits = model(idx)
    top = logits[0, -1].topk(5)
    return (f"loaded the {source}\nconfig: {config}\n"
            f"logits {list(logits.shape)}; last position's top-5 ids {top.indices.tolist()} "
            f"(logits {[round(v, 3) for v in top.values.tolist()]})")
