"""SVG snapshot of the Chat tab: a real tiny checkpoint loaded by path, then one reply with a tool call and its
output (a scripted model, so the text is the same on every machine) and the reply's stats with fixed timings.

Update after an intended UI change: pytest tests/tui/test_chat_screen_snapshots.py --snapshot-update
"""

from __future__ import annotations

import shutil
from dataclasses import replace

import pytest
from chat_screen_helpers import load, send
from ckpt_screen_helpers import build_world, make_app, settle, synthetic_tokenizer
from scripted_model import ScriptedModel
from textual.widgets import Input

from engine.checkpoint import checkpoint_dir
from nanochat_cli.services.checkpoints.chat import ChatSession
from nanochat_cli.widgets.chat.transcript import ReplyView


@pytest.fixture(scope="module")
def tok_src(tmp_path_factory):
    return synthetic_tokenizer(tmp_path_factory.mktemp("tok") / "tokenizer")


def test_chat_with_a_tool_call(snap_compare, tmp_path, tok_src):
    world = build_world(tmp_path / "base", tok_src, stock=False)
    app = make_app(tmp_path, base_dir_label="~/.cache/nanochat", config_dir_label="~/.config/nanochat-cli",
                   clock=lambda: 0.0)

    sft = world["base"] / "chatsft_checkpoints" / "tiny"  # an SFT checkpoint: it opens in chat mode
    shutil.copytree(checkpoint_dir(world["base"], "tiny"), sft)

    async def chat(pilot) -> None:
        await load(pilot, str(sft))
        screen = pilot.app.screen
        real = screen.session
        tok = real.tokenizer
        sp = tok.encode_special
        script = [*tok.encode("Let me compute."), sp("<|python_start|>"), *tok.encode("12*7"),
                  sp("<|python_end|>"), sp("<|output_start|>"), *tok.encode("84"), sp("<|output_end|>"),
                  *tok.encode(" It is 84."), sp("<|assistant_end|>")]
        screen.session = ChatSession(ScriptedModel(script, tok.get_vocab_size()), tok, temperature=0.0,
                                     max_tokens=60, tool=lambda code: "84", info=real.info)
        await send(pilot, "What is 12*7?")
        reply = screen.query_one(ReplyView)
        reply.show_stats(replace(screen.session.last_stats, ttft_s=0.012, tokens_per_s=850.0, seconds=0.05))
        for box in screen.query(Input):
            box.cursor_blink = False
        await settle(pilot)

    assert snap_compare(app, terminal_size=(100, 30), run_before=chat)
