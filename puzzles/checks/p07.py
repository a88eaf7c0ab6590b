"""Puzzle 07 checks: tool conversations tokenized identically, ordinary code, a battery of bad actors."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from puzzles import compare
from puzzles.checks import fixtures
from puzzles.oracle import Oracle

PEEK = {
    "engine": ["engine.tokenizer.bpe:SPECIAL_TOKENS", "engine.tokenizer.bpe:Tokenizer.render_conversation",
               "engine.tokenizer.bpe:Tokenizer.render_for_completion", "engine.execution:execute_code",
               "engine.execution:_run_child", "engine.execution:_watch", "engine.execution:_classify",
               "engine.sandbox_child:child_main"],
    "nanochat": ["nanochat.tokenizer:SPECIAL_TOKENS", "nanochat.tokenizer:RustBPETokenizer.render_conversation",
                 "nanochat.tokenizer:RustBPETokenizer.render_for_completion", "nanochat.execution:execute_code",
                 "nanochat.execution:reliability_guard"],
}

CONVERSATIONS = [
    {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello there"}]},
    {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"},
                  {"role": "assistant", "content": "4"}]},
    {"messages": [{"role": "user", "content": "What is 12*7?"},
                  {"role": "assistant", "content": [
                      {"type": "text", "text": "Let me compute. "},
                      {"type": "python", "text": "12*7"},
                      {"type": "python_output", "text": "84"},
                      {"type": "text", "text": "It is 84."}]},
                  {"role": "user", "content": "And count the r in strawberry?"},
                  {"role": "assistant", "content": [
                      {"type": "python", "text": "'strawberry'.count('r')"},
                      {"type": "python_output", "text": "3"},
                      {"type": "text", "text": "3"}]}]},
]
PROGRAMS = [
    ("print", "print('hello')\nprint(sum(range(10)))\n"),
    ("an exception", "x = 1 / 0\n"),
    ("a syntax error", "def f(:\n"),
    ("exit code 3", "import sys\nprint('bye')\nsys.exit(3)\n"),
]


def _oracle_render(oracle: Oracle, tok, conversation: dict, max_tokens: int) -> tuple[list[int], list[int]]:
    if oracle.is_engine:
        return tok.render_conversation(conversation, max_tokens)
    stock = oracle.nanochat("tokenizer").RustBPETokenizer(tok.enc, "<|bos|>")
    return stock.render_conversation(conversation, max_tokens)


def _oracle_completion(oracle: Oracle, tok, conversation: dict) -> list[int]:
    if oracle.is_engine:
        return tok.render_for_completion(conversation)
    return oracle.nanochat("tokenizer").RustBPETokenizer(tok.enc, "<|bos|>").render_for_completion(conversation)


def checks(impl, oracle: Oracle) -> Iterator[tuple[str, object]]:
    tok = fixtures.tokenizer()

    def describe(token_id):
        return tok.id_to_token(token_id) if isinstance(token_id, int) and 0 <= token_id < tok.get_vocab_size() else "?"

    def rendering():
        for i, conversation in enumerate(CONVERSATIONS):
            for max_tokens in (2048, 20):
                want_ids, want_mask = _oracle_render(oracle, tok, conversation, max_tokens)
                got = impl.render_conversation(tok, conversation, max_tokens)
                pair = isinstance(got, tuple) and len(got) == 2
                got_ids, got_mask = (list(got[0]), list(got[1])) if pair else (got, [])
                label = f"conversation {i} (max_tokens {max_tokens})"
                problem = (compare.sequences(f"{label} ids", got_ids, want_ids, describe)
                           or compare.sequences(f"{label} mask", got_mask, want_mask))
                if problem:
                    return problem
        return None

    def completion():
        for i, conversation in enumerate(CONVERSATIONS):
            got = impl.render_for_completion(tok, conversation)
            problem = compare.sequences(f"conversation {i} for completion", got,
                                        _oracle_completion(oracle, tok, conversation), describe)
            if problem:
                return problem
        return None

    def ordinary_code():
        oracle.require_engine("sandbox with the engine's statuses")
        from engine.execution import execute_code

        for name, code in PROGRAMS:
            got, want = impl.execute_code(code), execute_code(code)
            if got.status != want.status:
                tail = got.stderr.strip()[-120:]
                return f"{name}: status {got.status!r}, expected {want.status!r} (stderr: {tail!r})"
            if got.stdout != want.stdout:
                return f"{name}: stdout {got.stdout!r}, expected {want.stdout!r}"
        return None

    def bad_actors():
        impl_file = getattr(impl, "__file__", None)
        if not impl_file:
            return "the implementation has no file to load in the containment process"
        proc = subprocess.run([sys.executable, "-m", "puzzles.checks.contain", impl_file], capture_output=True,
                              text=True, timeout=120, cwd=str(Path(__file__).resolve().parents[2]))
        if proc.returncode != 0:
            lines = proc.stderr.strip().splitlines()
            return f"the containment run failed: {lines[-1] if lines else proc.returncode}"
        results = json.loads(proc.stdout.strip().splitlines()[-1])
        for r in results:
            if r["status"] == "not implemented":
                raise NotImplementedError(r["escaped"])
        for r in results:
            if r["escaped"]:
                return f"bad actor {r['name']!r} was not contained: {r['escaped']}"
        return None

    yield "tool conversations: ids and masks", rendering
    yield "render for completion", completion
    yield "ordinary code: status and output", ordinary_code
    yield "bad actors contained (timeout, memory, flood, files, forks, secrets)", bad_actors


def example(impl) -> str:
    tok = fixtures.tokenizer()
    ids, mask = impl.render_conversation(tok, CONVERSATIONS[2])
    shown = "".join(tok.decode([t]) if m else f"[{tok.decode([t])}]" for t, m in zip(ids, mask, strict=True))
    result = impl.execute_code("print(12*7)")
    return (f"conversation with two tool calls ({len(ids)} tokens; [bracketed] tokens are not learned):\n"
            f"  {shown}\nexecute_code('print(12*7)') -> {result}")
