"""The inference engine: cached sampling equals full recompute, seeds reproduce, rows stop on their own
stop tokens, the context limit holds, and python tool calls are run and their output forced in."""

import contextlib
import io

import pytest
import torch
import torch.nn as nn

from engine.engine import PAD_TOKEN, Engine, repl_script, run_python, sample_next_token
from engine.errors import EngineError
from engine.gpt import GPT, GPTConfig
from engine.tokenizer import SPECIAL_TOKENS, Tokenizer

TEXT = ("The quick brown fox jumps over the lazy dog. She sells sea shells by the sea shore. "
        "How much wood would a woodchuck chuck if a woodchuck could chuck wood? "
        "Peter Piper picked a peck of pickled peppers. 2+3*4 is 14 and 6*7 is 42. ")


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    return Tokenizer.train_from_iterator([TEXT] * 20, vocab_size=300)


@pytest.fixture(scope="module")
def gpt(tok) -> GPT:
    """A random GPT whose vocab stops short of the special tokens (they take the top ids), so it can
    never write a stop token and every run goes the full length. Weights are pushed off the init so
    attention, smear and value embeddings all shape the logits."""
    torch.manual_seed(0)
    vocab = tok.get_vocab_size() - len(SPECIAL_TOKENS)
    model = GPT(GPTConfig(sequence_len=64, vocab_size=vocab, n_layer=2, n_head=2, n_kv_head=1, n_embd=64,
                          window_pattern="SL"))
    model.init_weights()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return model.eval()


def stream(engine: Engine, prompt: list[int], **kw) -> tuple[list[list[int]], list[list[int]]]:
    """Run generate() and return (tokens, masks) per row, asserting grad mode never leaks to the caller."""
    columns = []
    for column, masks in engine.generate(prompt, **kw):
        assert not torch.is_inference_mode_enabled()
        columns.append((column, masks))
    rows = len(columns[0][0])
    return ([[c[0][i] for c in columns] for i in range(rows)], [[c[1][i] for c in columns] for i in range(rows)])


def test_greedy_cached_generation_equals_full_recompute(tok, gpt):
    prompt = tok.encode("The quick brown fox")
    tokens, masks = stream(Engine(gpt, tok), prompt, max_tokens=64, temperature=0.0)
    ids = list(prompt)
    with torch.no_grad():
        for _ in range(64):
            ids.append(int(gpt(torch.tensor([ids]))[0, -1].argmax()))
    assert tokens[0] == ids[len(prompt):]  # 64 tokens, past sequence_len=64: the window cut is exercised
    assert masks[0] == [1] * 64


def test_samples_reproduce_with_seed_and_differ_across_rows(tok, gpt):
    engine, prompt = Engine(gpt, tok), tok.encode("Peter Piper")
    a, _ = engine.generate_batch(prompt, num_samples=4, max_tokens=24, temperature=1.0, seed=7)
    b, _ = engine.generate_batch(prompt, num_samples=4, max_tokens=24, temperature=1.0, seed=7)
    c, _ = engine.generate_batch(prompt, num_samples=4, max_tokens=24, temperature=1.0, seed=8)
    assert a == b
    assert a != c
    assert len({tuple(row) for row in a}) == 4
    assert all(row[:len(prompt)] == prompt and len(row) == len(prompt) + 24 for row in a)


def test_temperature_zero_ignores_seed_and_top_k_one_is_greedy(tok, gpt):
    engine, prompt = Engine(gpt, tok), tok.encode("sea shells")
    greedy, masks = engine.generate_batch(prompt, num_samples=3, max_tokens=16, temperature=0.0, seed=1)
    assert engine.generate_batch(prompt, num_samples=3, max_tokens=16, temperature=0.0, seed=2)[0] == greedy
    assert greedy[0] == greedy[1] == greedy[2]
    assert masks[0] == [0] * len(prompt) + [1] * 16
    top1, _ = engine.generate_batch(prompt, num_samples=3, max_tokens=16, temperature=1.5, top_k=1, seed=3)
    assert top1 == greedy


def test_sample_next_token_respects_top_k():
    rng = torch.Generator().manual_seed(0)
    logits = torch.tensor([[0.0, 5.0, 4.0, -1.0, 3.0]]).repeat(200, 1)
    picks = sample_next_token(logits, rng, temperature=2.0, top_k=2)[:, 0]
    assert set(picks.tolist()) == {1, 2}
    assert sample_next_token(logits[:1], rng, temperature=0.0).item() == 1


def test_user_stop_token_ends_the_row(tok, gpt):
    engine, prompt = Engine(gpt, tok), tok.encode("wood")
    free, _ = stream(engine, prompt, max_tokens=20, temperature=0.0)
    stop = free[0][5]
    cut = free[0].index(stop)
    tokens, _ = stream(engine, prompt, max_tokens=20, temperature=0.0, stop_tokens=[stop])
    assert tokens[0] == free[0][:cut + 1]  # the stream ends with the stop token
    results, masks = engine.generate_batch(prompt, max_tokens=20, temperature=0.0, stop_tokens=[stop])
    assert results[0] == prompt + free[0][:cut] and len(masks[0]) == len(results[0])


def test_context_limits(tok, gpt):
    engine = Engine(gpt, tok)
    room = gpt.rotary_len
    with pytest.raises(EngineError, match="no room"):
        engine.generate([5] * room)
    tokens, _ = stream(engine, [5] * (room - 3), max_tokens=100, temperature=0.0)
    assert len(tokens[0]) == 3  # stops when prompt + generated fills the rotary table
    tokens, _ = stream(engine, [5] * 10, temperature=0.0)
    assert len(tokens[0]) == gpt.config.sequence_len - 10  # max_tokens=None fills sequence_len
    with pytest.raises(EngineError, match="max_tokens"):
        engine.generate([5] * gpt.config.sequence_len)


@pytest.mark.parametrize("kw, match", [
    ({"temperature": -1.0}, "temperature"), ({"top_k": 0}, "top_k"), ({"num_samples": 0}, "num_samples"),
    ({"max_tokens": 0}, "max_tokens"),
])
def test_bad_arguments_raise_at_call_time(tok, gpt, kw, match):
    with pytest.raises(EngineError, match=match):
        Engine(gpt, tok).generate([1, 2, 3], **kw)


def test_bad_prompts_raise(tok, gpt):
    engine = Engine(gpt, tok)
    with pytest.raises(EngineError, match="empty"):
        engine.generate([])
    with pytest.raises(EngineError, match="not token ids in the model's vocab"):
        engine.generate([tok.get_bos_token_id()])  # this model's vocab ends below the specials
    with pytest.raises(EngineError, match="not token ids"):
        engine.generate([1, 2.0])


class PolicyModel(nn.Module):
    """A stand-in model with GPT's forward signature: the next-token logits of each row come from
    `policy(generated_so_far)`, where generated_so_far is every token fed to it after the prompt.
    It keeps those fed tokens (`fed`) so a test can check what the engine gave it."""

    def __init__(self, vocab_size: int, policy):
        super().__init__()
        self.config = GPTConfig(sequence_len=128, vocab_size=vocab_size, n_layer=1, n_head=1, n_kv_head=1, n_embd=8)
        self.rotary_len = 1280
        self.anchor = nn.Parameter(torch.zeros(1))  # the engine reads device and dtype from a parameter
        self.policy = policy
        self.fed: list[list[int]] = []
        self.prompt_len = 0

    def forward(self, idx, targets=None, kv_cache=None):
        B, T = idx.shape
        if kv_cache.get_pos() == 0:
            self.fed, self.prompt_len = [[] for _ in range(B)], T
        elif len(self.fed) != B:  # the batch-1 prefill was expanded to B rows
            self.fed = [list(self.fed[0]) for _ in range(B)]
        for row, ids in zip(self.fed, idx.tolist(), strict=True):
            row.extend(ids)
        kv_cache.advance(T)
        logits = torch.full((B, T, self.config.vocab_size), -1e4)
        for b, row in enumerate(self.fed):
            logits[b, -1] = self.policy(row[self.prompt_len:])
        return logits


def scripted(tok: Tokenizer, code: str, after: str):
    """A policy that writes <|python_start|> code <|python_end|>, waits out the tool output, then writes
    `after` and <|assistant_end|>."""
    sp = tok.encode_special
    before = [sp("<|python_start|>"), *tok.encode(code), sp("<|python_end|>")]
    tail = [*tok.encode(after), sp("<|assistant_end|>")]

    def policy(seen: list[int]) -> torch.Tensor:
        if sp("<|output_end|>") in seen:
            nxt = tail[min(len(seen) - seen.index(sp("<|output_end|>")) - 1, len(tail) - 1)]
        elif len(seen) < len(before):
            nxt = before[len(seen)]
        else:  # inside the forced tool output: whatever it predicts is overridden
            nxt = 0
        return torch.nn.functional.one_hot(torch.tensor(nxt), tok.get_vocab_size()).float() * 20
    return policy, before, tail


def check_tool_round_trip(tok: Tokenizer, tool, expected_output: str) -> None:
    policy, before, tail = scripted(tok, "2+3*4", " done")
    model = PolicyModel(tok.get_vocab_size(), policy)
    prompt = [tok.get_bos_token_id(), *tok.encode("what is 2+3*4?")]
    sp = tok.encode_special
    forced = [sp("<|output_start|>"), *tok.encode(expected_output), sp("<|output_end|>")]
    tokens, masks = stream(Engine(model, tok, tool=tool), prompt, num_samples=2, max_tokens=50, temperature=0.0)
    for row, mask, fed in zip(tokens, masks, model.fed, strict=True):
        assert row == before + forced + tail  # resumed after the output, ended on assistant_end
        assert mask == [1] * len(before) + [0] * len(forced) + [1] * len(tail)
        assert fed[len(prompt):] == row[:-1]  # the forced tokens were fed to the model too


class BlockPolicyModel(PolicyModel):
    """PolicyModel with GPT.decode_block, so one greedy row takes Engine's speculative path: each fed token's
    logits come from the policy; a rewind (rejected guesses) drops the tokens fed past the cache's position."""

    def decode_block(self, idx: list[int], kv_cache, capped: bool = True) -> torch.Tensor:
        del self.fed[0][kv_cache.get_pos():]
        out = []
        for t in idx:
            self.fed[0].append(t)
            out.append(self.policy(self.fed[0][self.prompt_len:]))
        kv_cache.block_embeds = torch.zeros(len(idx), 1)
        kv_cache.advance(len(idx))
        return torch.stack(out)

    def forward(self, idx, targets=None, kv_cache=None):
        if self.fed and kv_cache.get_pos() > 0:
            del self.fed[0][kv_cache.get_pos():]
        return super().forward(idx, targets, kv_cache)


def test_tool_calls_through_the_speculative_path_match_the_one_token_path(tok):
    """Greedy with one row drafts guesses and feeds the forced tool output as a block: the tokens, masks, the
    tool's calls and what the model was fed are those of the one-token path."""
    policy, before, tail = scripted(tok, "2+3*4", " done done done")
    prompt = [tok.get_bos_token_id(), *tok.encode("what is 2+3*4? what is 2+3*4?")]
    runs = []
    for speculative in (True, False):
        calls = []
        model = BlockPolicyModel(tok.get_vocab_size(), policy)
        engine = Engine(model, tok, tool=lambda code, calls=calls: calls.append(code) or "14", speculative=speculative)
        tokens, masks = stream(engine, prompt, max_tokens=60, temperature=0.0)
        runs.append((tokens, masks, calls, model.fed[0][:len(prompt) + len(tokens[0]) - 1]))
        if speculative:
            assert engine.stats["forwards"] < len(tokens[0]) - 1  # some forwards emitted several tokens
    assert runs[0] == runs[1]
    sp = tok.encode_special
    assert runs[0][0][0] == before + [sp("<|output_start|>"), *tok.encode("14"), sp("<|output_end|>")] + tail
    assert runs[0][2] == ["2+3*4"]


def test_tool_call_output_is_forced_and_generation_resumes(tok):
    calls = []

    def calculator(code: str) -> str:
        calls.append(code)
        return str(eval(code, {"__builtins__": {}}))

    check_tool_round_trip(tok, calculator, "14")
    assert calls == ["2+3*4", "2+3*4"]  # once per row


def test_default_tool_runs_the_code_in_the_sandbox(tok):
    check_tool_round_trip(tok, None, "14")  # Engine(tool=None) is run_python: execute_code under the hood
    assert run_python("x = 6\nx * 7") == "42"
    assert run_python("1/0").startswith("Error:") and "ZeroDivisionError" in run_python("1/0")


def test_rows_stop_independently_and_pad_after(tok):
    a, end = tok.encode("a")[0], tok.encode_special("<|assistant_end|>")
    coin = torch.full((tok.get_vocab_size(),), -1e4)
    coin[[a, end]] = 0.0
    model = PolicyModel(tok.get_vocab_size(), lambda seen: coin)
    engine = Engine(model, tok, tool=lambda code: pytest.fail("no tool call expected"))
    tokens, masks = stream(engine, [tok.get_bos_token_id()], num_samples=6, max_tokens=40, seed=3)
    lengths = []
    for row, mask in zip(tokens, masks, strict=True):
        n = row.index(end) + 1
        lengths.append(n)
        assert row[:n] == [a] * (n - 1) + [end] and mask[:n] == [1] * n
        assert row[n:] == [PAD_TOKEN] * (len(row) - n) and mask[n:] == [0] * (len(row) - n)
    assert len(set(lengths)) > 1 and max(lengths) == len(tokens[0])  # ends when the last row does
    results, _ = engine.generate_batch([tok.get_bos_token_id()], num_samples=6, max_tokens=40, seed=3)
    assert [len(r) - 1 for r in results] == [n - 1 for n in lengths]


@pytest.mark.parametrize("code, printed", [
    ("2+3*4", "14\n"), ("x = 6\nx * 7", "42\n"), ("print('hi')", "hi\n"), ("'a' * 2", "'aa'\n"), ("x = 1", ""),
])
def test_repl_script_echoes_a_final_expression(code, printed):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(repl_script(code), {})
    assert out.getvalue() == printed


def test_repl_script_leaves_bad_syntax_for_the_sandbox():
    assert repl_script("2 +* 3") == "2 +* 3"
