"""Greedy speculative decoding (engine/speculative.py, GPT.decode_block, Engine's default for one greedy row):
block rows are the same bits whatever the block's length, the tokens do not depend on the drafts and equal the
one-token path's, and the drafter and its policy behave as documented."""

import pytest
import torch

from engine.engine import Engine, KVCache
from engine.gpt import GPT, GPTConfig
from engine.speculative import DraftPolicy, NgramDrafter


class Tok:
    """What Engine asks of a tokenizer; the special ids lie past the vocab, so no row stops early."""

    names = ["<|bos|>", "<|assistant_end|>", "<|python_start|>", "<|python_end|>", "<|output_start|>",
             "<|output_end|>"]

    def encode_special(self, name: str) -> int:
        return 1000 + self.names.index(name)

    def get_bos_token_id(self) -> int:
        return 1000


def tiny_gpt(seed: int, pattern: str = "SL", n_kv_head: int = 2, vocab: int = 500) -> GPT:
    torch.manual_seed(seed)
    model = GPT(GPTConfig(sequence_len=64, vocab_size=vocab, n_layer=2, n_head=4, n_kv_head=n_kv_head, n_embd=64,
                          window_pattern=pattern))
    model.init_weights()
    with torch.no_grad():  # off the init, so attention, smear and value embeddings all shape the logits
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.08)
    return model.eval()


@pytest.mark.parametrize("pattern, n_kv_head", [("L", 4), ("LS", 2)])
def test_block_rows_are_the_same_bits_whatever_the_block_length(pattern, n_kv_head):
    model = tiny_gpt(0, pattern, n_kv_head)
    ids = torch.randint(0, 500, (100,), generator=torch.Generator().manual_seed(1)).tolist()

    def run(blocks: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        cache = KVCache(1, n_kv_head, 102, 16, 2)  # a 1-token block pads one
        with torch.inference_mode():
            model(torch.tensor([ids[:20]]), kv_cache=cache)
        out, pos = [], 20
        for b in blocks:
            out.append(model.decode_block(ids[pos:pos + b], cache))
            pos += b
        return torch.cat(out), cache.kv[..., :pos, :].clone()

    logits, kv = run([2] * 40)
    for blocks in ([1] * 80, [7] * 11 + [3], [3, 8, 1, 5, 2] * 4 + [4]):
        other, other_kv = run(blocks)
        assert torch.equal(other, logits) and torch.equal(other_kv, kv), blocks
    assert min(model.window_sizes) < 100  # decoding runs past a window


def test_rewind_drops_rejected_positions():
    model = tiny_gpt(1)
    ids = [5, 9, 2, 7, 7, 3, 1, 4]
    a, b = KVCache(1, 2, 32, 16, 2), KVCache(1, 2, 32, 16, 2)
    with torch.inference_mode():
        model(torch.tensor([ids[:4]]), kv_cache=a)
        model(torch.tensor([ids[:4]]), kv_cache=b)
    model.decode_block([ids[4], 11, 12, 13], a)
    a.rewind(3)  # only ids[4] stays
    assert a.get_pos() == b.get_pos() + 1
    model.decode_block([ids[4], ids[5]], b)
    b.rewind(1)
    assert torch.equal(model.decode_block(ids[5:], a), model.decode_block(ids[5:], b))


def one_token_tokens(model, prompt, n):
    return [c[0] for c, _ in Engine(model, Tok(), speculative=False).generate(prompt, max_tokens=n, temperature=0.0)]


def every_step_a_block(plain: list[int], prompt: list[int], right: bool):
    """A DraftPolicy.guesses that always offers 3 guesses: the right future tokens (all kept) or wrong ones."""
    def guesses(self, drafter, room):
        i = len(drafter.tokens) - len(prompt) - 1  # index in `plain` of the token just emitted
        k = max(1, min(3, room))
        return plain[i + 1:i + 1 + k] or [0] if right else [(plain[i] + 1 + j) % 500 for j in range(k)]
    return guesses


@pytest.mark.parametrize("seed", [0, pytest.param(1, marks=pytest.mark.slow), pytest.param(2, marks=pytest.mark.slow)])
def test_greedy_tokens_do_not_depend_on_drafts_and_equal_the_one_token_path(seed, monkeypatch):
    model = tiny_gpt(seed)
    g = torch.Generator().manual_seed(seed)
    prompts = [torch.randint(0, 500, (12,), generator=g).tolist(), [7, 8, 9] * 6]  # the second repeats itself
    for prompt in prompts:
        plain = one_token_tokens(model, prompt, 40)
        assert [c[0] for c, _ in Engine(model, Tok()).generate(prompt, max_tokens=40, temperature=0.0)] == plain
        for right in (True, False):
            monkeypatch.setattr(DraftPolicy, "guesses", every_step_a_block(plain, prompt, right))
            engine = Engine(model, Tok())
            assert [c[0] for c, _ in engine.generate(prompt, max_tokens=40, temperature=0.0)] == plain
            assert engine.stats["forwards"] == engine.stats["blocks"] > 0
            assert (engine.stats["accepted"] == engine.stats["guesses"]) if right else engine.stats["accepted"] == 0
            monkeypatch.undo()


def test_sampling_and_several_rows_keep_the_one_token_path():
    model = tiny_gpt(3)
    prompt = [4, 5, 6, 4, 5, 6, 4, 5]
    engine = Engine(model, Tok())
    out, _ = engine.generate_batch(prompt, num_samples=2, max_tokens=20, temperature=0.0)
    assert engine.stats.get("blocks") is None and out[0] == out[1]
    sampled, _ = engine.generate_batch(prompt, max_tokens=20, temperature=0.8, seed=5)
    assert engine.stats.get("blocks") is None
    assert sampled == Engine(model, Tok(), speculative=False).generate_batch(prompt, max_tokens=20, temperature=0.8,
                                                                             seed=5)[0]


def test_drafter_reads_loops_on_and_prefers_the_longest_suffix():
    d = NgramDrafter([1, 2, 3, 1, 2])
    assert d.propose(5) == ([3, 1, 2, 3, 1], 2)  # the loop 1 2 3 continues past the end
    d.append(9)
    assert d.propose(3) == ([9], 0)  # never seen before: the blind guess
    d = NgramDrafter([4, 1, 5, 7, 1, 6, 8, 1])
    assert d.propose(2) == ([6, 8], 1)  # the latest occurrence of 1
    assert NgramDrafter([]).propose(3) == ([], 0)


def test_policy_backs_off_after_misses_and_grows_after_hits():
    d = NgramDrafter([1, 2, 1, 2, 1])
    p = DraftPolicy(8)
    assert len(p.guesses(d, room=100)) == 8
    p.update(8, 0)  # all missed: the next step goes one token at a time, and fewer guesses after
    assert p.guesses(d, room=100) == [] and len(p.guesses(d, room=100)) == 4
    p.update(4, 0)
    assert p.guesses(d, room=100) == [] and p.guesses(d, room=100) == [] and len(p.guesses(d, room=100)) == 2
    p.update(2, 2)
    assert len(p.guesses(d, room=100)) == 4 and len(p.guesses(d, room=3)) == 3
    assert DraftPolicy(8).guesses(NgramDrafter([1, 2, 3]), room=100) == []  # no earlier occurrence: no block


def test_decode_forwards_run_on_decode_threads_and_restore_the_callers(monkeypatch):
    model = tiny_gpt(4)
    seen = []
    block = model.decode_block
    monkeypatch.setattr(model, "decode_block", lambda *a, **k: seen.append(torch.get_num_threads()) or block(*a, **k))
    monkeypatch.setattr(DraftPolicy, "guesses", lambda self, drafter, room: [1])  # a block every step
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        for _ in Engine(model, Tok()).generate([3, 4, 3, 4, 3, 4, 3], max_tokens=12, temperature=0.0):
            assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    assert seen and set(seen) == {Engine.decode_threads}


def test_the_vocabulary_product_keeps_the_callers_threads_with_the_same_bits(monkeypatch):
    import engine.gpt as gpt

    model = tiny_gpt(4)
    seen = []
    product = gpt.head_product
    monkeypatch.setattr(gpt, "head_product", lambda x, w, threads: seen.append(threads) or product(x, w, threads))
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        for _ in Engine(model, Tok(), speculative=False).generate([3, 4, 5], max_tokens=6, temperature=0.0):
            assert torch.get_num_threads() == 2 and model.head_threads is None  # restored between tokens
    finally:
        torch.set_num_threads(before)
    assert seen and set(seen) == {2}
    x, w = torch.randn(3, 64), torch.randn(64, 4096)
    assert torch.equal(product(x, w, 1), product(x, w, 2))
