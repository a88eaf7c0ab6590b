"""Loading checkpoints for inference and chatting with them: deterministic greedy round trips, stats, stop,
multi-turn history, tool-call chunks, UTF-8 split across tokens, transcripts."""

import json
import shutil

import pytest
import torch
from ckpt_helpers import STOCK_FIXTURE, corpus_texts, save_ours, tiny_model, train_tokenizer, write_data_dir
from scripted_model import ScriptedModel

from engine.checkpoint import checkpoint_dir
from engine.errors import EngineError
from engine.inference_load import load_model, resolve_checkpoint
from engine.tokenizer import Tokenizer
from nanochat_cli.services.checkpoints.chat import (
    ChatSession,
    load_transcript,
    render_segments,
    save_transcript,
    transcript_dir,
)


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    return train_tokenizer(tmp_path_factory.mktemp("tok") / "tokenizer")


@pytest.fixture
def ckpt(tmp_path, tok):
    data = write_data_dir(tmp_path / "data")
    return save_ours(tmp_path / "base", "tiny", 5, tiny_model(300), tok, data)




def test_load_model_gives_the_saved_weights_and_tokenizer(ckpt, tok):
    model, tk, meta = load_model(ckpt)
    assert meta["step"] == 5 and tk.fingerprint == tok.fingerprint and not model.training
    ref = tiny_model(300)
    idx = torch.tensor([tok.encode("def main():", prepend=tok.get_bos_token_id())])
    with torch.no_grad():
        assert torch.equal(model(idx), ref(idx))
    assert resolve_checkpoint(ckpt / "model_000005.pt") == (ckpt, 5)


def test_load_model_errors_name_the_fix(ckpt, tmp_path, tok):
    meta_path = ckpt / "meta_000005.json"
    meta = json.loads(meta_path.read_text())
    with pytest.raises(EngineError, match="no complete checkpoint"):
        load_model(tmp_path)
    meta_path.write_text(json.dumps({**meta, "tokenizer_hash": "0" * 16}))
    with pytest.raises(EngineError, match="differs from the checkpoint's 0000000000000000: pass the tokenizer dir"):
        load_model(ckpt)
    meta_path.write_text(json.dumps({**meta, "tokenizer_dir": str(tmp_path / "gone")}))
    with pytest.raises(EngineError, match=r"no tokenizer found \(looked in .*gone or .*base/tokenizer\)"):
        load_model(ckpt)
    shutil.copytree(tok.directory, tmp_path / "base" / "tokenizer")  # stock nanochat's place is the fallback
    assert load_model(ckpt)[1].fingerprint == tok.fingerprint
    with pytest.raises(EngineError, match="step 4 is not a complete checkpoint"):
        load_model(ckpt, step=4)


@pytest.mark.skipif(not STOCK_FIXTURE.is_dir(), reason="needs ../shared/fixtures")
def test_stock_checkpoint_loads_with_base_tokenizer_and_matches_nanochat(tmp_path):
    base = tmp_path / "base"
    d = checkpoint_dir(base, "d4")
    d.mkdir(parents=True)
    for name in ("model_000000.pt", "meta_000000.json"):
        shutil.copy(STOCK_FIXTURE / name, d / name)
    Tokenizer.train_from_iterator(corpus_texts(), 320).save(base / "tokenizer")
    model, tok, meta = load_model(d / "model_000000.pt")
    expected = torch.load(STOCK_FIXTURE / "expected.pt")
    with torch.no_grad():
        assert torch.allclose(model(expected["idx"]), expected["logits"], atol=1e-5)
    segments, stats = ChatSession(model, tok, temperature=0.0, max_tokens=6).reply("hi")
    assert stats.prompt_tokens > 0 and stats.finish in ("stop", "length")


def test_chat_round_trip_is_deterministic_with_stats(ckpt):
    replies = []
    for _ in range(2):
        session = ChatSession.from_checkpoint(ckpt, temperature=0.0, max_tokens=12, seed=1)
        chunks = list(session.stream_reply("Hello, who are you?"))
        stats = session.last_stats
        replies.append("".join(c.text for c in chunks))
        assert all(c.kind in ("text", "tool_call", "tool_output") for c in chunks)
        assert stats.ttft_s is not None and stats.ttft_s > 0 and stats.seconds >= stats.ttft_s
        assert stats.finish in ("stop", "length") and stats.prompt_tokens > 5
        if stats.finish == "length":
            assert stats.tokens == 12
        if stats.tokens:
            assert stats.tokens_per_s > 0
    assert replies[0] == replies[1]
    assert session.info["step"] == 5 and session.info["checkpoint"].endswith("model_000005.pt")


def test_history_is_rendered_with_the_chat_template(ckpt):
    session = ChatSession.from_checkpoint(ckpt, temperature=0.0, max_tokens=4)
    session.reply("first")
    first_prompt = session.last_stats.prompt_tokens
    session.reply("second")
    assert [m["role"] for m in session.messages] == ["user", "assistant", "user", "assistant"]
    assert session.last_stats.prompt_tokens > first_prompt  # the first exchange is in the prompt
    expected = session.tokenizer.render_for_completion(
        {"messages": session.messages[:3] + [{"role": "assistant", "content": ""}]})
    assert session.last_stats.prompt_tokens == len(expected)
    session.reset()
    assert session.messages == [] and session.log == []


def test_long_history_drops_the_oldest_turns(ckpt):
    session = ChatSession.from_checkpoint(ckpt, temperature=0.0, max_tokens=8)
    for i in range(4):
        session.reply(f"message number {i} with several words in it")
    assert session.last_stats.dropped_turns >= 1
    assert session.last_stats.prompt_tokens <= 64 - 8


def test_stop_flag_ends_a_reply_mid_stream(tok):
    script = tok.encode(" one two three four five six seven eight")
    session = ChatSession(ScriptedModel(script, tok.get_vocab_size()), tok, temperature=0.0, max_tokens=30)
    got = []
    for chunk in session.stream_reply("count"):
        got.append(chunk)
        session.stop()  # as a UI thread would, between two tokens
    assert session.last_stats.finish == "cancelled" and session.last_stats.tokens == 1 and len(got) == 1
    assert session.messages[-1]["content"] == [{"type": "text", "text": got[0].text}]
    _, stats = session.reply("again")  # the flag is cleared for the next reply
    assert stats.finish == "length" and stats.tokens == 30


def test_tool_calls_are_surfaced_as_chunks(tok):
    sp = tok.encode_special
    script = [sp("<|python_start|>"), *tok.encode("2+3"), sp("<|python_end|>"),
              sp("<|output_start|>"), *tok.encode("5"), sp("<|output_end|>"),
              *tok.encode(" so 5."), sp("<|assistant_end|>")]
    calls = []
    session = ChatSession(ScriptedModel(script, tok.get_vocab_size()), tok, temperature=0.0, max_tokens=40,
                          tool=lambda code: calls.append(code) or "5")
    chunks = list(session.stream_reply("what is 2+3?"))
    joined = {}
    for c in chunks:
        joined[c.kind] = joined.get(c.kind, "") + c.text
    assert calls == ["2+3"]
    assert joined == {"tool_call": "2+3", "tool_output": "5", "text": " so 5."}
    assert [c.kind for c in session.last_segments] == ["tool_call", "tool_output", "text"]
    assert (render_segments(session.last_segments)
            == "<|python_start|>2+3<|python_end|><|output_start|>5<|output_end|> so 5.")
    assert session.last_stats.finish == "stop" and session.last_stats.tokens == len(script) - 1
    assert session.messages[-1]["content"] == [{"type": "python", "text": "2+3"},
                                               {"type": "python_output", "text": "5"},
                                               {"type": "text", "text": " so 5."}]


def test_tool_call_runs_the_real_sandboxed_python(tok):
    sp = tok.encode_special
    script = [sp("<|python_start|>"), *tok.encode("6*7"), sp("<|python_end|>"),
              sp("<|output_start|>"), *tok.encode("42"), sp("<|output_end|>"), sp("<|assistant_end|>")]
    session = ChatSession(ScriptedModel(script, tok.get_vocab_size()), tok, temperature=0.0, max_tokens=40)
    segments, _ = session.reply("what is 6*7?")
    assert [(c.kind, c.text) for c in segments] == [("tool_call", "6*7"), ("tool_output", "42")]


def test_utf8_split_across_tokens_is_never_shown_half(tok):
    script = [*tok.encode(" café ☕ naïve"), tok.encode_special("<|assistant_end|>")]
    assert len(script) > len(" café ☕ naïve".split())  # multi-byte characters span several byte tokens
    session = ChatSession(ScriptedModel(script, tok.get_vocab_size()), tok, mode="continue", temperature=0.0,
                          max_tokens=40)
    chunks = list(session.stream_reply("x"))
    assert all("\ufffd" not in c.text for c in chunks)
    assert "".join(c.text for c in chunks) == " café ☕ naïve"


def test_continue_mode_uses_no_chat_template(ckpt):
    session = ChatSession.from_checkpoint(ckpt, mode="continue", temperature=0.0, max_tokens=5)
    session.reply("def main():")
    assert session.last_stats.prompt_tokens == len(session.tokenizer.encode("def main():")) + 1
    assert session.messages == [] and [m["role"] for m in session.log] == ["user", "assistant"]
    with pytest.raises(EngineError, match="mode 'poem'"):
        ChatSession(session.model, session.tokenizer, mode="poem")


def test_transcripts_jsonl_and_markdown(ckpt, tok):
    sp = tok.encode_special
    script = [*tok.encode("Let me compute."), sp("<|python_start|>"), *tok.encode("1+1"), sp("<|python_end|>"),
              sp("<|output_start|>"), *tok.encode("2"), sp("<|output_end|>"), sp("<|assistant_end|>")]
    session = ChatSession(ScriptedModel(script, tok.get_vocab_size()), tok, temperature=0.0, max_tokens=40,
                          tool=lambda code: "2", info={"checkpoint": str(ckpt / "model_000005.pt"), "step": 5,
                                                       "run": "tiny"})
    session.reply("1+1?")
    run_dir = ckpt.parents[1] / "runs" / "tiny"
    assert transcript_dir(ckpt, "tiny") == ckpt / "transcripts"  # no run dir: next to the checkpoint
    run_dir.mkdir(parents=True)
    directory = transcript_dir(ckpt, "tiny")
    assert directory == run_dir.resolve() / "transcripts"
    jsonl, md = save_transcript(session, directory, name="t")
    header, messages = load_transcript(jsonl)
    assert header["step"] == 5 and header["temperature"] == 0.0 and header["mode"] == "chat"
    assert messages[0] == {"role": "user", "text": "1+1?"}
    assert [c["kind"] for c in messages[1]["chunks"]] == ["text", "tool_call", "tool_output"]
    assert messages[1]["stats"]["finish"] == "stop"
    text = md.read_text()
    assert "**You:**" in text and "```python\n1+1\n```" in text and "Let me compute." in text
    session.reply("again")
    save_transcript(session, directory, name="t")  # rewritten in place after each turn
    assert len(load_transcript(jsonl)[1]) == 4


def test_a_reply_runs_with_the_chosen_thread_count_in_the_thread_that_generates(ckpt, monkeypatch):
    """Torch's default (a thread per core) crawls on a busy machine: each reply sets the count it picked, in the
    thread that iterates it (OpenMP's count is per thread; the TUI generates in a worker)."""
    import threading

    from nanochat_cli.services import compute

    session = ChatSession.from_checkpoint(ckpt, mode="continue", temperature=0.0, max_tokens=4)
    monkeypatch.setattr(compute, "available_cpus", lambda: 7)  # a count no default would give
    seen = {}

    def generate(load: float) -> None:
        before = torch.get_num_threads()
        monkeypatch.setattr(compute.psutil, "getloadavg", lambda: (load, load, load))
        try:
            session.reply("def")
            seen[load] = (torch.get_num_threads(), session.last_stats.threads)
        finally:
            torch.set_num_threads(before)

    for load in (0.0, 4.5, 50.0):
        worker = threading.Thread(target=generate, args=(load,))
        worker.start()
        worker.join()
    assert seen == {0.0: (7, 7), 4.5: (2, 2), 50.0: (1, 1)}
