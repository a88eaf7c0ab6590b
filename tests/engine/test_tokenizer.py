"""The BPE tokenizer: training, encode/decode, storage, token bytes, chat rendering, caching, CLIs."""

import json
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import tiktoken
import torch

from engine.errors import EngineError
from engine.tokenizer import SPECIAL_TOKENS, Tokenizer, cache_dir, ensure_tokenizer, limit_chars
from engine.tokenizer.bpe import TOKEN_BYTES_FILE, TOKENIZER_FILE

REPO = Path(__file__).resolve().parents[2]
UNICODE = "Grüße aus Köln! naïve café — 東京は晴れ 😀👍🏽 ∑x² = 42 🇫🇷\r\n\ttabs\n\n"
VOCAB = 400


def corpus() -> list[str]:
    """~40 KB of real text: a few stdlib sources (always on disk) plus some non-ASCII prose."""
    src = Path(json.__file__).parent
    return [p.read_text(encoding="utf-8") for p in sorted(src.glob("*.py"))] + [UNICODE * 20]


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    return Tokenizer.train_from_iterator(corpus(), VOCAB)


def test_training_is_fast_and_sizes_the_vocab():
    t0 = time.perf_counter()
    tok = Tokenizer.train_from_iterator(corpus(), 512)
    assert time.perf_counter() - t0 < 2
    assert tok.get_vocab_size() == 512


def test_special_tokens_follow_the_mergeable_ranks(tok):
    assert tok.get_special_tokens() == SPECIAL_TOKENS
    first = VOCAB - len(SPECIAL_TOKENS)
    assert [tok.encode_special(s) for s in SPECIAL_TOKENS] == list(range(first, VOCAB))
    assert tok.get_bos_token_id() == first
    assert tok.id_to_token(first + 3) == "<|assistant_start|>"
    with pytest.raises(EngineError, match="unknown"):
        tok.encode_special("<|nope|>")


@pytest.mark.parametrize("text", ["", "hello world", UNICODE, "def f(x):\n    return x ** 2\n", "🤖" * 7, "\x00\xff"])
def test_round_trip(tok, text):
    ids = tok.encode(text)
    assert all(0 <= i < VOCAB - len(SPECIAL_TOKENS) for i in ids)
    assert tok.decode(ids) == text


def test_special_token_text_is_encoded_as_plain_text(tok):
    ids = tok.encode("<|bos|>hi")
    assert tok.get_bos_token_id() not in ids
    assert tok.decode(ids) == "<|bos|>hi"


def test_numbers_split_into_groups_of_at_most_two_digits(tok):
    pieces = [tok.id_to_token(i) for i in tok.encode("1234567 89")]
    assert "".join(pieces) == "1234567 89"
    assert all(sum(c.isdigit() for c in p) <= 2 for p in pieces)


def test_prepend_and_append_by_name_or_id(tok):
    body = tok.encode("hi there")
    bos, end = tok.get_bos_token_id(), tok.encode_special("<|assistant_end|>")
    assert tok.encode("hi there", prepend="<|bos|>", append=end) == [bos, *body, end]
    assert tok("hi there", prepend=bos) == [bos, *body]
    with pytest.raises(EngineError, match="out of range"):
        tok.encode("x", prepend=VOCAB)
    with pytest.raises(EngineError, match="pass a str"):
        tok.encode(b"bytes")


def test_batch_encode_matches_single(tok):
    texts = ["one", UNICODE, "", "for i in range(10):"]
    rows = tok.encode(texts, prepend="<|bos|>", num_threads=2)
    assert rows == [tok.encode(t, prepend="<|bos|>") for t in texts]
    assert tok.encode([]) == []


def test_token_bytes_count_utf8_bytes(tok):
    tb = tok.token_bytes()
    assert tb.dtype == torch.int32 and tb.shape == (VOCAB,)
    assert tb[VOCAB - len(SPECIAL_TOKENS):].eq(0).all()
    assert tb[: 256].eq(1).all()  # the byte-level base tokens
    text = UNICODE + "".join(corpus()[:2])
    assert int(tb[tok.encode(text)].sum()) == len(text.encode("utf-8"))


def test_save_and_load_keep_ids_and_fingerprint(tok, tmp_path):
    out = tok.save(tmp_path / "tok")
    assert sorted(p.name for p in out.iterdir()) == [TOKEN_BYTES_FILE, TOKENIZER_FILE]  # no temp files left
    loaded = Tokenizer.from_directory(out)
    assert loaded.directory == out
    assert loaded.fingerprint == tok.fingerprint and len(tok.fingerprint) == 16
    assert loaded.encode(UNICODE) == tok.encode(UNICODE)
    assert torch.equal(loaded.token_bytes(), tok.token_bytes())
    assert isinstance(pickle.loads((out / TOKENIZER_FILE).read_bytes()), tiktoken.Encoding)  # stock format


def test_fingerprint_tracks_the_vocabulary(tok):
    assert Tokenizer.train_from_iterator(corpus(), VOCAB).fingerprint == tok.fingerprint  # deterministic
    assert Tokenizer.train_from_iterator(corpus(), VOCAB + 1).fingerprint != tok.fingerprint
    assert Tokenizer.train_from_iterator(corpus()[:-1], VOCAB).fingerprint != tok.fingerprint


def test_loads_a_stock_nanochat_dir_without_token_bytes(tok, tmp_path):
    (tmp_path / TOKENIZER_FILE).write_bytes(pickle.dumps(tok.enc))
    loaded = Tokenizer.from_directory(tmp_path)
    assert loaded.fingerprint == tok.fingerprint
    assert torch.equal(loaded.token_bytes(), tok.token_bytes())


def test_from_directory_rejects_bad_dirs(tok, tmp_path):
    with pytest.raises(EngineError, match="no tokenizer.pkl"):
        Tokenizer.from_directory(tmp_path / "missing")
    (tmp_path / TOKENIZER_FILE).write_bytes(b"not a pickle")
    with pytest.raises(EngineError, match="unreadable"):
        Tokenizer.from_directory(tmp_path)
    (tmp_path / TOKENIZER_FILE).write_bytes(pickle.dumps(os.getcwd))  # a global that could run code
    with pytest.raises(EngineError, match="not allowed"):
        Tokenizer.from_directory(tmp_path)
    (tmp_path / TOKENIZER_FILE).write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(EngineError, match="not a tiktoken Encoding"):
        Tokenizer.from_directory(tmp_path)
    tok.save(tmp_path)
    torch.save(torch.zeros(3, dtype=torch.int32), tmp_path / TOKEN_BYTES_FILE)
    with pytest.raises(EngineError, match="shape"):
        Tokenizer.from_directory(tmp_path)


def test_training_rejects_impossible_vocab_sizes():
    with pytest.raises(EngineError, match="at least 265"):
        Tokenizer.train_from_iterator(["abc"], 264)
    with pytest.raises(EngineError, match="give more text"):
        Tokenizer.train_from_iterator(["tiny text"], 1000)


def test_limit_chars_caps_total_and_documents():
    assert list(limit_chars(["abcdef", "ghij", "klm"], 8, doc_cap=5)) == ["abcde", "ghi"]
    assert list(limit_chars(["", "ab"], 10)) == ["ab"]


# ---- chat rendering

CHAT = {"messages": [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "What is 2+2?"},
    {"role": "assistant", "content": [
        {"type": "text", "text": "Let me check."},
        {"type": "python", "text": "print(2+2)"},
        {"type": "python_output", "text": "4"},
        {"type": "text", "text": "It is 4."},
    ]},
    {"role": "user", "content": "Thanks!"},
    {"role": "assistant", "content": "You're welcome."},
]}


def test_render_conversation_layout_and_mask(tok):
    ids, mask = tok.render_conversation(CHAT)
    sp = tok.encode_special
    expected = [  # (ids, mask) segment by segment
        ([tok.get_bos_token_id()], 0),
        ([sp("<|user_start|>")] + tok.encode("Be brief.\n\nWhat is 2+2?") + [sp("<|user_end|>")], 0),
        ([sp("<|assistant_start|>")], 0),
        (tok.encode("Let me check."), 1),
        ([sp("<|python_start|>")] + tok.encode("print(2+2)") + [sp("<|python_end|>")], 1),
        ([sp("<|output_start|>")] + tok.encode("4") + [sp("<|output_end|>")], 0),
        (tok.encode("It is 4.") + [sp("<|assistant_end|>")], 1),
        ([sp("<|user_start|>")] + tok.encode("Thanks!") + [sp("<|user_end|>"), sp("<|assistant_start|>")], 0),
        (tok.encode("You're welcome.") + [sp("<|assistant_end|>")], 1),
    ]
    assert ids == [i for seg, _ in expected for i in seg]
    assert mask == [m for seg, m in expected for _ in seg]
    assert tok.decode([i for i, m in zip(ids, mask, strict=True) if m]) == (
        "Let me check.<|python_start|>print(2+2)<|python_end|>It is 4.<|assistant_end|>"
        "You're welcome.<|assistant_end|>")


def test_render_conversation_truncates(tok):
    ids, mask = tok.render_conversation(CHAT, max_tokens=5)
    full, full_mask = tok.render_conversation(CHAT)
    assert ids == full[:5] and mask == full_mask[:5]


@pytest.mark.parametrize("messages, match", [
    ([], "no 'messages'"),
    ([{"role": "assistant", "content": "hi"}], "expected 'user'"),
    ([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}], "expected 'assistant'"),
    ([{"role": "system", "content": "s"}, {"role": "assistant", "content": "a"}], "followed by a user"),
    ([{"role": "user", "content": "a"}, {"role": "assistant", "content": [{"type": "image", "text": ""}]}],
     "part type 'image'"),
])
def test_render_conversation_rejects_malformed_chats(tok, messages, match):
    with pytest.raises(EngineError, match=match):
        tok.render_conversation({"messages": messages})


def test_render_for_completion_primes_the_reply(tok):
    ids = tok.render_for_completion(CHAT)
    assert ids[-1] == tok.encode_special("<|assistant_start|>")
    full, _ = tok.render_conversation(CHAT)
    assert full[: len(ids)] == ids
    assert tok.decode(ids).endswith("Thanks!<|user_end|><|assistant_start|>")
    assert CHAT["messages"][-1]["role"] == "assistant"  # the caller's conversation is untouched
    with pytest.raises(EngineError, match="last message"):
        tok.render_for_completion({"messages": CHAT["messages"][:-1]})


# ---- ensure_tokenizer (the trainer's entry point)

def test_ensure_tokenizer_trains_once_then_uses_the_cache(tmp_path):
    calls = []

    def texts():
        calls.append(1)
        return iter(corpus())

    a = ensure_tokenizer(None, tmp_path, VOCAB, texts, data_id="/data/json-src", max_chars=10**6)
    assert a.directory == cache_dir(tmp_path, VOCAB, "/data/json-src", 10**6)
    assert a.directory.parent == tmp_path / "tokenizer" and a.directory.name.startswith(f"v{VOCAB}-json-src-")
    assert [p.name for p in a.directory.parent.iterdir()] == [a.directory.name]  # no temp dir left behind
    b = ensure_tokenizer(None, tmp_path, VOCAB, texts, data_id="/data/json-src", max_chars=10**6)
    assert len(calls) == 1 and b.fingerprint == a.fingerprint
    c = ensure_tokenizer(None, tmp_path, VOCAB, texts, data_id="/data/other", max_chars=10**6)
    assert len(calls) == 2 and c.directory != a.directory
    named = ensure_tokenizer(str(a.directory), tmp_path, 999, texts, data_id="ignored")
    assert named.fingerprint == a.fingerprint and len(calls) == 2
    with pytest.raises(EngineError, match="no tokenizer.pkl"):
        ensure_tokenizer(str(tmp_path / "nope"), tmp_path, VOCAB, texts, data_id="x")


def test_gpt2_reference_is_skipped_without_a_cache(tmp_path, monkeypatch):
    from engine.tok_eval import gpt2_if_cached

    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    assert gpt2_if_cached() is None
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "")  # caching disabled: tiktoken would always download
    assert gpt2_if_cached() is None


# ---- command lines, on a tiny parquet dataset

def write_shards(d: Path) -> Path:
    docs = corpus()
    d.mkdir()
    for i, chunk in enumerate([docs[0::3], docs[1::3], docs[2::3]]):  # the last shard is val
        pq.write_table(pa.table({"text": chunk}), d / f"shard_{i:05d}.parquet")
    return d


def run_cli(module: str, *args: str, base: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "NANOCHAT_BASE_DIR": str(base), "TIKTOKEN_CACHE_DIR": str(base / "no-tiktoken-cache")}
    return subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.slow  # a real multi-process run: 10-30 s on a busy 2-core machine
def test_tok_train_and_tok_eval_clis(tmp_path, monkeypatch, capsys):
    pytest.importorskip("engine.dataset")
    data = write_shards(tmp_path / "data")
    r = run_cli("engine.tok_train", "--vocab-size", "300", "--data-dir", str(data), base=tmp_path)
    assert r.returncode == 0, r.stderr
    out = Path(r.stdout.strip().splitlines()[-1].removeprefix("saved to "))
    assert out.parent == tmp_path / "tokenizer" and (out / TOKENIZER_FILE).is_file()
    tok = Tokenizer.from_directory(out)
    assert tok.get_vocab_size() == 300 and f"fingerprint {tok.fingerprint}" in r.stdout

    r = run_cli("engine.tok_eval", "--vocab-size", "300", "--data-dir", str(data), base=tmp_path)
    assert r.returncode == 0, r.stderr
    row = next(line for line in r.stdout.splitlines() if line.startswith(f"ours ({tok.fingerprint})"))
    assert float(row.split()[-2]) > 1.2  # bytes/token: even 35 merges must compress the text
    assert "gpt2: skipped" in r.stdout

    from engine import tok_eval  # the error path, in-process (no second interpreter start)

    monkeypatch.setenv("NANOCHAT_BASE_DIR", str(tmp_path))
    assert tok_eval.main(["--vocab-size", "301", "--data-dir", str(data)]) == 1
    assert "engine.tok_eval: error: tokenizer cache" in capsys.readouterr().err
