"""Pilot test of the Chat tab's mode selector with a registered chat mode (services/chat_modes.py): the mode is
offered beside chat and continuation, runs on the loaded checkpoint's path, and its result is shown highlighted
with its validation lines; a checkpoint the mode claims opens in it; back to chat loads the model again."""

from __future__ import annotations

import pytest
from chat_screen_helpers import load, send
from ckpt_screen_helpers import build_world, make_app, settle
from textual.widgets import Select

from engine.checkpoint import checkpoint_dir
from nanochat_cli.services.chat_modes import ChatMode, ModeRequest, ModeResult
from nanochat_cli.services.registry import REGISTRY
from nanochat_cli.widgets.chat.transcript import ModeResultView

SEEN: list[ModeRequest] = []


def echo(request: ModeRequest) -> ModeResult:
    SEEN.append(request)
    if request.prompt == "bad":
        return ModeResult(f"name: {request.prompt}", "yaml", ("invalid: 'bad' is not allowed",), ok=False)
    return ModeResult(f"name: {request.prompt or 'empty'}\non: push\n", "yaml", ("valid against the schema",),
                      ok=True, stats="2 lines")


@pytest.fixture(scope="module")
def tok_src(tmp_path_factory):
    from ckpt_helpers import train_tokenizer

    return train_tokenizer(tmp_path_factory.mktemp("tok") / "tokenizer")


@pytest.fixture
def echo_mode():
    REGISTRY.register_chat_mode(ChatMode("echo_yaml", "echo (YAML)", echo, help="Echoes the prompt as YAML.",
                                         claims=lambda path: "claimed" in str(path)))
    SEEN.clear()
    yield
    REGISTRY.unregister_chat_mode("echo_yaml")


async def test_a_registered_mode_is_picked_runs_and_shows_its_checked_result(echo_mode, tmp_path, tok_src):
    world = build_world(tmp_path / "base", tok_src, stock=False)
    tiny = checkpoint_dir(world["base"], "tiny").resolve()
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 36)) as pilot:
        await load(pilot, str(tiny))
        screen = app.screen
        assert screen.session is not None and screen.ext_mode is None
        select = screen.query_one("#chat-mode", Select)
        assert ("echo (YAML)", "echo_yaml") in [(str(p), v) for p, v in select._options]
        select.value = "echo_yaml"  # the same checkpoint, now run by the mode
        await settle(pilot)
        assert screen.ext_mode == "echo_yaml" and screen.session is None
        assert str(screen.query_one("#chat-model").content) == "tiny · echo (YAML) · 0 results"
        await send(pilot, "ci")
        await send(pilot, "bad")
        good, bad = screen.query(ModeResultView)
        assert good.result.text.startswith("name: ci") and good.result.ok
        assert [str(s.content) for s in good.query(".mode-check")] == ["valid against the schema"]
        assert good.query_one(".mode-check").has_class("-valid")
        assert bad.query_one(".mode-check").has_class("-invalid")
        assert SEEN[0].checkpoint.parent == tiny and SEEN[0].prompt == "ci" and SEEN[0].max_tokens == 256
        assert str(screen.query_one("#chat-model").content).endswith("· 2 results")
        assert app.session.state.chat_mode == "echo_yaml"

        select.value = "chat"  # back to a conversation: the model is loaded again
        await settle(pilot)
        assert screen.ext_mode is None and screen.session is not None and screen.session.mode == "chat"

        claimed = tiny.parent / "claimed"  # a checkpoint the mode claims opens in it
        claimed.symlink_to(tiny)
        await load(pilot, str(claimed))
        assert screen.ext_mode == "echo_yaml" and screen.query_one("#chat-mode", Select).value == "echo_yaml"


async def test_a_tct_checkpoint_opens_in_the_workflow_mode_and_samples_a_valid_workflow(tmp_path, tok_src):
    import json

    from tct_helpers import save_tct_checkpoint

    from engine.tct import yaml_to_json
    from engine.tct.validate import workflow_errors

    build_world(tmp_path / "base", tok_src, stock=False)  # the UI state the app starts from
    ckpt = save_tct_checkpoint(tmp_path / "base", tag="wf")
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 36)) as pilot:
        if REGISTRY.chat_mode("workflow") is None:
            pytest.skip("the tct plugin is disabled here")
        await load(pilot, str(ckpt))
        screen = app.screen
        assert screen.ext_mode == "workflow" and screen.query_one("#chat-mode", Select).value == "workflow"
        screen.query_one("#chat-max-tokens").value = "32"
        await send(pilot, "Lint")
        (view,) = screen.query(ModeResultView)
        result = view.result
        assert result.ok and result.language == "yaml" and result.validation[0].startswith("valid")
        doc = json.loads(yaml_to_json(result.text))
        assert doc["name"] == "Lint" and workflow_errors(doc) == []
        assert "ms/token" in result.stats
