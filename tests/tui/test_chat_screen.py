"""Pilot tests of the Chat tab with a real tiny checkpoint: load by path, a streamed chat round trip with stats,
continuation mode, the stop key mid-stream, tool calls shown apart, validated controls, transcripts on a key,
on leaving the tab and on exit."""

from __future__ import annotations

import json
import shutil
import time

import pytest
import torch
from chat_screen_helpers import load, send
from ckpt_screen_helpers import build_world, make_app, settle
from dialog_helpers import answer
from scripted_model import ScriptedModel
from textual.widgets import Input

from engine.checkpoint import checkpoint_dir
from nanochat_cli.services.checkpoints.chat import ChatSession, load_transcript, transcript_dir
from nanochat_cli.widgets.chat.transcript import ReplyView


@pytest.fixture(scope="module")
def tok_src(tmp_path_factory):
    from ckpt_helpers import train_tokenizer

    return train_tokenizer(tmp_path_factory.mktemp("tok") / "tokenizer")


@pytest.fixture
def world(tmp_path, tok_src):
    w = build_world(tmp_path / "base", tok_src, stock=False)
    w["tiny"] = checkpoint_dir(w["base"], "tiny").resolve()
    w["sft"] = w["base"] / "chatsft_checkpoints" / "tiny"  # the same weights as an SFT checkpoint
    shutil.copytree(w["tiny"], w["sft"])
    return w






def set_control(app, control: str, value: str) -> None:
    app.screen.query_one(f"#chat-{control}", Input).value = value


def replies(app) -> list[ReplyView]:
    return list(app.screen.query(ReplyView))


def stats_text(reply: ReplyView) -> str:
    return str(reply.query_one(".chat-stats").content)


async def test_load_by_path_then_a_streamed_chat_round_trip(world, tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 36)) as pilot:
        await load(pilot, str(world["sft"]))  # an SFT checkpoint opens in chat mode
        screen = app.screen
        assert screen.session is not None and screen.session.info["step"] == 5
        assert str(screen.query_one("#chat-model").content) == "tiny step 5 · chat (template) · 0 replies"
        set_control(app, "temperature", "0")
        set_control(app, "max-tokens", "4")
        await send(pilot, "Hello, who are you?")
        (reply,) = replies(app)
        stats = screen.session.last_stats
        expected = ChatSession.from_checkpoint(world["tiny"], temperature=0.0, max_tokens=4)
        segments, want = expected.reply("Hello, who are you?")
        assert reply.text == "".join(c.text for c in segments) and reply.text
        assert stats.tokens == want.tokens and stats.finish == want.finish
        line = stats_text(reply)
        assert line.startswith(f"{stats.tokens} tokens · first token {stats.ttft_s * 1000:.0f} ms · ")
        assert f"{stats.tokens_per_s:.1f} tok/s" in line
        assert "you ▸ Hello, who are you?" in [str(s.content) for s in screen.query(".chat-user")]
        assert str(screen.query_one("#chat-model").content).endswith("· 1 reply")
        await send(pilot, "ok")  # multi-turn: the first exchange is in the second prompt
        second = screen.session.last_stats
        assert len(replies(app)) == 2 and second.dropped_turns == 0 and second.prompt_tokens > want.prompt_tokens


async def test_a_base_checkpoint_continues_the_raw_prompt_and_a_mode_switch_asks_first(world, tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 36)) as pilot:
        await load(pilot, str(world["tiny"] / "model_000005.pt"))
        screen = app.screen
        assert screen.session.mode == "continue"  # a base (pretrained) checkpoint opens in continuation mode
        set_control(app, "temperature", "0")
        set_control(app, "max-tokens", "12")
        await send(pilot, "def main():")
        (reply,) = replies(app)
        expected = ChatSession.from_checkpoint(world["tiny"], mode="continue", temperature=0.0, max_tokens=12)
        segments, want = expected.reply("def main():")
        assert reply.text == "".join(c.text for c in segments)
        assert screen.session.last_stats.prompt_tokens == want.prompt_tokens  # no chat template around it
        assert "prompt ▸ def main():" in [str(s.content) for s in screen.query(".chat-user")]

        await pilot.press("ctrl+o")  # a conversation would be cleared: asked first, and n keeps it
        dialog = await answer(pilot, "n")
        assert "Switch to chat (template)?" in dialog.question and "(1 reply)" in dialog.question
        assert screen.session.mode == "continue" and len(replies(app)) == 1
        assert screen.query_one("#chat-mode").value == "continue"
        await pilot.press("ctrl+o")
        await answer(pilot, "y")  # saves the conversation, starts an empty one in chat mode
        await settle(pilot)
        assert screen.session.mode == "chat" and replies(app) == []
        notes = " ".join(str(s.content) for s in screen.query(".chat-note"))
        assert "Mode changed: chat (template) with tiny step 5" in notes and "transcripts" in notes


async def test_tokens_stream_in_and_escape_stops_the_reply(world, tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 36)) as pilot:
        await load(pilot, str(world["tiny"]))
        session = app.screen.session
        forwards, at_stop = [], []
        session.model.register_forward_hook(lambda *_: forwards.append(time.sleep(0.03)))  # slow: watch it stream
        # the tiny model may pick an end token after a few tokens: rule the special tokens out so the reply is
        # still going whenever Esc lands, however quick or slow this machine is
        specials = torch.tensor([session.tokenizer.encode_special(n) for n in session.tokenizer.get_special_tokens()])
        session.model.register_forward_hook(lambda _m, _i, out: out.index_fill(-1, specials, float("-inf")))
        real_stop = session.stop
        session.stop = lambda: at_stop.append(len(forwards)) or real_stop()
        set_control(app, "temperature", "0")
        await send(pilot, "Tell me everything.", wait=False)
        (reply,) = replies(app)
        deadline = time.monotonic() + 10
        while not reply.text and time.monotonic() < deadline:
            await pilot.pause(0.02)
        assert reply.text and app.screen.generating and not reply.query(".chat-stats")  # partial, still going
        await pilot.press("escape")
        await settle(pilot)
        stats = session.last_stats
        # it ends before the next token: at most the forward pass under way when Esc landed finishes
        assert stats.finish == "cancelled" and stats.tokens >= 1 and len(forwards) - at_stop[0] <= 1
        assert stats_text(reply).endswith("· stopped") and not app.screen.generating
        await pilot.press("escape")  # nothing to stop now
        assert any(str(n.message) == "Nothing is being generated" for n in app._notifications)


async def test_tool_calls_and_outputs_are_shown_apart(world, tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 36)) as pilot:
        await load(pilot, str(world["tiny"]))
        real = app.screen.session
        tok = real.tokenizer
        sp = tok.encode_special
        script = [*tok.encode("Let me compute."), sp("<|python_start|>"), *tok.encode("12*7"), sp("<|python_end|>"),
                  sp("<|output_start|>"), *tok.encode("84"), sp("<|output_end|>"), *tok.encode(" It is 84."),
                  sp("<|assistant_end|>")]
        app.screen.session = ChatSession(ScriptedModel(script, tok.get_vocab_size()), tok, temperature=0.0,
                                         max_tokens=60, tool=lambda code: "84", info=real.info)
        await send(pilot, "What is 12*7?")
        (reply,) = replies(app)
        segs = list(reply.query(".chat-seg"))
        assert [(s.classes - {"chat-seg"}, str(s.content)) for s in segs] == [
            ({"-text"}, "Let me compute."), ({"-tool_call"}, "12*7"), ({"-tool_output"}, "84"),
            ({"-text"}, " It is 84.")]
        assert [s.border_title for s in segs] == [None, "python", "output", None]
        assert stats_text(reply).endswith("· end of reply")


async def test_controls_are_validated_and_bad_paths_are_reported(world, tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 36)) as pilot:
        await load(pilot, str(world["base"] / "nowhere"))
        assert app.screen.session is None
        assert any("no such checkpoint dir" in str(n.message) for n in app._notifications)
        await load(pilot, str(checkpoint_dir(world["base"], "trunc")))  # model file cut in half
        assert app.screen.session is None
        assert any("model_000003.pt" in str(n.message) and "truncated" in str(n.message)  # size vs its meta
                   for n in app._notifications)
        await load(pilot, str(world["tiny"]))
        assert app.screen.session is not None
        set_control(app, "temperature", "-1")
        await pilot.pause()
        error = app.screen.query_one("#chat-controls-error")
        assert error.display and str(error.content) == "temperature: -1.0 is below 0: use 0 (greedy) or more, e.g. 0.8"
        assert app.screen.query_one("#chat-temperature").has_class("-invalid")
        await send(pilot, "hi")
        assert replies(app) == [] and any("temperature: -1.0" in str(n.message) for n in app._notifications)
        set_control(app, "temperature", "0.5")
        set_control(app, "top-k", "x")
        await pilot.pause()
        assert str(error.content) == "top-k: 'x' is not a whole number: use 0 (no limit) or more, e.g. 50"
        set_control(app, "top-k", "0")  # no limit
        await pilot.pause()
        assert not error.display
        await send(pilot, "hi")
        assert len(replies(app)) == 1 and app.screen.session.top_k is None and app.screen.session.temperature == 0.5


async def test_transcripts_on_a_key_on_leaving_and_on_exit(world, tmp_path):
    app = make_app(tmp_path)
    directory = transcript_dir(world["tiny"], "tiny")
    async with app.run_test(size=(120, 36)) as pilot:
        await load(pilot, str(world["tiny"]))
        set_control(app, "max-tokens", "8")
        await pilot.press("ctrl+s")
        assert any("Nothing to save yet" in str(n.message) for n in app._notifications)
        await send(pilot, "one")
        await pilot.press("ctrl+s")
        (jsonl,) = directory.glob("*.jsonl")
        assert jsonl.with_suffix(".md").is_file()
        assert any(str(n.message) == f"Transcript saved: {app.show_path(jsonl)} (+ .md)" for n in app._notifications)
        header, messages = load_transcript(jsonl)
        assert header["step"] == 5 and header["max_tokens"] == 8 and [m["role"] for m in messages] == [
            "user", "assistant"]
        await send(pilot, "two")
        await pilot.press("f5")  # leaving the tab saves
        await pilot.pause()
        assert len(load_transcript(jsonl)[1]) == 4
        await pilot.press("f4")
        await pilot.pause()
        await send(pilot, "three")
    assert len(load_transcript(jsonl)[1]) == 6  # and so does closing the app
    assert list(directory.glob("*.jsonl")) == [jsonl]


async def test_up_recalls_earlier_prompts_and_down_returns_to_the_draft(world, tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 36)) as pilot:
        await load(pilot, str(world["tiny"]))
        set_control(app, "max-tokens", "2")
        for prompt in ("first", "second", "second"):
            await send(pilot, prompt)
        box = app.screen.query_one("#chat-input", Input)
        box.focus()
        await pilot.press(*"dra")
        seen = []
        for key in ("up", "up", "up", "down", "down", "down"):
            await pilot.press(key)
            seen.append(box.value)
        assert seen == ["second", "first", "first", "second", "dra", "dra"]  # a repeat is kept once


async def test_the_model_and_mode_come_back_after_a_restart(world, tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 36)) as pilot:
        await load(pilot, str(world["tiny"]))
        assert app.screen.session.mode == "continue"
        await pilot.press("ctrl+o")  # no conversation yet: switches without asking
        await settle(pilot)
        assert app.screen.session.mode == "chat"
    model_file = str(world["tiny"] / "model_000005.pt")
    state = json.loads((tmp_path / "config" / "state.json").read_text())
    assert (state["chat_checkpoint"], state["chat_mode"]) == (model_file, "chat")

    again = make_app(tmp_path)
    async with again.run_test(size=(120, 36)) as pilot:
        await pilot.press("4")
        await settle(pilot)
        screen = again.screen
        assert screen.session is not None and screen.session.info["checkpoint"] == model_file
        assert screen.session.mode == "chat" and screen.query_one("#chat-mode").value == "chat"

    shutil.rmtree(world["tiny"])  # gone since: said once, and not tried again at the next start
    third = make_app(tmp_path)
    async with third.run_test(size=(120, 36)) as pilot:
        await pilot.press("4")
        await settle(pilot)
        assert third.screen.session is None
        assert any("the model of the last session was not loaded again" in str(n.message)
                   for n in third._notifications)
    assert json.loads((tmp_path / "config" / "state.json").read_text())["chat_checkpoint"] == ""
