"""Puzzle 04 checks: cache vs full forward, expand, sampling, free generation, a calculator tool call."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

from puzzles import compare
from puzzles.checks import fixtures
from puzzles.oracle import Oracle

PEEK = {
    "engine": ["engine.engine:KVCache", "engine.engine:sample_next_token", "engine.engine:Engine._steps",
               "engine.engine:Engine._observe", "engine.engine:run_python", "engine.gpt:GPT.forward"],
    "nanochat": ["nanochat.engine:KVCache", "nanochat.engine:sample_next_token", "nanochat.engine:RowState",
                 "nanochat.engine:Engine.generate", "nanochat.engine:use_calculator"],
}
QUESTION, CODE, ANSWER = "What is 2+3*4?", "2+3*4", "The answer is 14."


class Steered(nn.Module):
    """A GPT whose logits get +100 on a planned token at planned absolute positions (the tool's output
    positions are left to the model, so only forcing puts the right tokens there)."""

    def __init__(self, gpt: nn.Module, plan: dict[int, int]):
        super().__init__()
        self.gpt, self.plan = gpt, plan
        self.config, self.rotary_len = gpt.config, gpt.rotary_len

    def forward(self, idx, targets=None, kv_cache=None):
        pos0 = kv_cache.get_pos() if kv_cache is not None else 0
        logits = self.gpt(idx, kv_cache=kv_cache)
        for t in range(idx.size(1)):
            token = self.plan.get(pos0 + t + 1)  # the token that should come after position pos0 + t
            if token is not None:
                logits[:, t, token] += 100.0
        return logits


class Recorder:
    """The calculator tool (the engine's sandboxed python) remembering what it was asked to run."""

    def __init__(self):
        self.calls: list[str] = []

    def __call__(self, code: str) -> str:
        from engine.engine import run_python

        self.calls.append(code)
        return run_python(code)


def tool_script(tok) -> tuple[list[int], list[int], list[int]]:
    """(prompt, the expected continuation, its masks) for one calculator call."""
    sp = tok.encode_special
    conversation = {"messages": [{"role": "user", "content": QUESTION}, {"role": "assistant", "content": "x"}]}
    prompt = tok.render_for_completion(conversation)
    forced = [sp("<|output_start|>"), *tok.encode("14"), sp("<|output_end|>")]
    head = [sp("<|python_start|>"), *tok.encode(CODE), sp("<|python_end|>")]
    tail = [*tok.encode(ANSWER), sp("<|assistant_end|>")]
    return prompt, head + forced + tail, [1] * len(head) + [0] * len(forced) + [1] * len(tail)


def _stream(engine, *args, **kwargs) -> list[tuple[list[int], list[int]]]:
    return [(list(c), list(m)) for c, m in engine.generate(*args, **kwargs)]


def _compare_streams(name: str, got, want, tok) -> str | None:
    for i, (g, w) in enumerate(zip(got, want, strict=False)):
        if g != w:
            def show(col):
                return [tok.id_to_token(t) if t >= 0 else "<pad>" for t in col]
            return (f"{name}: position {i} differs: tokens {g[0]} {show(g[0])}, masks {g[1]} vs tokens {w[0]} "
                    f"{show(w[0])}, masks {w[1]}")
    if len(got) != len(want):
        return f"{name}: {len(got)} positions generated, expected {len(want)}"
    return None


def checks(impl, oracle: Oracle) -> Iterator[tuple[str, object]]:
    tok = fixtures.tokenizer()
    V = tok.get_vocab_size()

    def cache_matches_full_forward():
        model = fixtures.gpt(V, seed=1, n_layer=3)
        c = model.config
        ids = torch.randint(0, V, (1, 40), generator=torch.Generator().manual_seed(0))
        with torch.inference_mode():
            full = model(ids)
            cache = impl.KVCache(1, c.n_kv_head, 48, c.n_embd // c.n_head, c.n_layer)
            parts = [model(ids[:, :30], kv_cache=cache)]
            if cache.get_pos() != 30:
                return f"get_pos() after a 30-token prefill is {cache.get_pos()}, expected 30"
            parts += [model(ids[:, t:t + 1], kv_cache=cache) for t in range(30, 40)]
        return compare.tensors("logits (30-token prefill, then 10 one-token decodes)", torch.cat(parts, 1), full,
                               atol=1e-5)

    def expand():
        model = fixtures.gpt(V, seed=2)
        c = model.config
        gen = torch.Generator().manual_seed(1)
        prompt, nxt = torch.randint(0, V, (1, 12), generator=gen), torch.randint(0, V, (3, 2), generator=gen)
        with torch.inference_mode():
            cache = impl.KVCache(1, c.n_kv_head, 16, c.n_embd // c.n_head, c.n_layer)
            model(prompt, kv_cache=cache)
            wide = cache.expand(3)
            if wide.get_pos() != 12:
                return f"expand(3).get_pos() is {wide.get_pos()}, expected 12 (the positions come along)"
            got = torch.cat([model(nxt[:, :1], kv_cache=wide), model(nxt[:, 1:], kv_cache=wide)], 1)
            want = model(torch.cat([prompt.expand(3, -1), nxt], 1))[:, 12:]
        return compare.tensors("logits of 3 rows decoded after expand(3)", got, want, atol=1e-5)

    def sampling():
        if oracle.is_engine:
            from engine.engine import sample_next_token
        else:
            sample_next_token = oracle.nanochat("engine").sample_next_token
        logits = torch.randn(4, V, generator=torch.Generator().manual_seed(3)) * 3
        cases = [(0.0, None), (1.0, None), (0.7, 5), (1.3, 1)]
        if oracle.is_engine:  # top_k past the vocab: the engine samples the full softmax, nanochat its sorted top-V
            cases.append((0.9, V + 10))
        for temperature, top_k in cases:
            for seed in (0, 1):
                got = impl.sample_next_token(logits, torch.Generator().manual_seed(seed), temperature, top_k)
                want = sample_next_token(logits, torch.Generator().manual_seed(seed), temperature, top_k)
                problem = compare.tensors(f"tokens (temperature {temperature}, top_k {top_k}, seed {seed})",
                                          got, want)
                if problem:
                    return problem
        return None

    def free_generation():
        oracle.require_engine("Engine with a tool argument (its calculator is built in)")
        from engine.engine import Engine

        model = fixtures.gpt(V, seed=4)
        prompt = [tok.get_bos_token_id(), *tok.encode("def wrap(text")]
        for samples, temperature, top_k in ((3, 0.9, 20), (1, 0.0, None)):
            kwargs = dict(num_samples=samples, max_tokens=10, temperature=temperature, top_k=top_k, seed=7)
            problem = _compare_streams(f"{samples} samples at temperature {temperature}, top_k {top_k}",
                                       _stream(impl.Engine(model, tok, Recorder()), prompt, **kwargs),
                                       _stream(Engine(model, tok, Recorder()), prompt, **kwargs), tok)
            if problem:
                return problem
        return None

    def tool_call():
        oracle.require_engine("Engine with a tool argument (its calculator is built in)")
        from engine.engine import Engine

        prompt, cont, masks = tool_script(tok)
        plan = {len(prompt) + i: t for i, (t, m) in enumerate(zip(cont, masks, strict=True)) if m}
        model = Steered(fixtures.gpt(V, seed=5, sequence_len=128), plan)
        kwargs = dict(num_samples=2, max_tokens=len(cont) + 4, temperature=0.8, top_k=8, seed=3)
        mine, theirs = Recorder(), Recorder()
        got = _stream(impl.Engine(model, tok, mine), prompt, **kwargs)
        want = _stream(Engine(model, tok, theirs), prompt, **kwargs)
        expected = [([t, t], [m, m]) for t, m in zip(cont, masks, strict=True)]
        if want != expected:  # the oracle itself must produce the script, else the check proves nothing
            return "the engine did not produce the planned tool call: the check's setup is broken (report it)"
        if mine.calls != theirs.calls:
            return f"the tool was called with {mine.calls}, expected {theirs.calls}"
        return _compare_streams("calculator generation", got, expected, tok)

    yield "KV cache: prefill + decode == full forward", cache_matches_full_forward
    yield "KV cache: expand to several samples", expand
    yield "sampling: argmax, temperature, top-k", sampling
    yield "generation without tools (same seed, same tokens)", free_generation
    yield "generation with the calculator tool (forced output, masks)", tool_call


def example(impl) -> str:
    tok = fixtures.tokenizer()
    prompt, cont, masks = tool_script(tok)
    plan = {len(prompt) + i: t for i, (t, m) in enumerate(zip(cont, masks, strict=True)) if m}
    model = Steered(fixtures.gpt(tok.get_vocab_size(), seed=5, sequence_len=128), plan)
    tool = Recorder()
    rows: list[list[int]] = [[]]
    marks: list[list[int]] = [[]]
    for column, mask in impl.Engine(model, tok, tool).generate(prompt, max_tokens=len(cont) + 4, temperature=0.8,
                                                               top_k=8, seed=3):
        rows[0].append(column[0])
        marks[0].append(mask[0])
    shown = "".join(tok.decode([t]) if m else f"[{tok.decode([t])}]" for t, m in zip(rows[0], marks[0], strict=True))
    return (f"prompt: {tok.decode(prompt)!r}\n"
            f"generated ({len(rows[0])} tokens, forced ones in [brackets]):\n  {shown}\n"
            f"tool calls: {tool.calls}")
