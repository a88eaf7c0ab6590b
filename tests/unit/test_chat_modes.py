"""The mode a checkpoint opens in on the Chat tab: a base model continues text; SFT and RL models chat."""

from nanochat_cli.services.checkpoints.chat import default_mode


def test_base_checkpoints_continue_and_sft_rl_ones_chat(tmp_path):
    for phase_dir, mode in (("base_checkpoints", "continue"), ("chatsft_checkpoints", "chat"),
                            ("chatrl_checkpoints", "chat"), ("somewhere_else", "continue")):
        ckpt = tmp_path / phase_dir / "d12"
        ckpt.mkdir(parents=True)
        assert default_mode(ckpt) == mode, phase_dir
        assert default_mode(ckpt / "model_000100.pt") == mode, phase_dir  # a model file: its dir decides


def test_the_chat_command_picks_the_same_default_and_flags_override_it(tmp_path):
    from nanochat_cli.cli.checkpoints import chat_mode
    from nanochat_cli.cli.main import build_parser

    parser = build_parser()
    sft = tmp_path / "chatsft_checkpoints" / "d12" / "model_000100.pt"
    base = tmp_path / "base_checkpoints" / "d12" / "model_000100.pt"
    assert chat_mode(parser.parse_args(["chat", "--checkpoint", "x"]), base) == "continue"
    assert chat_mode(parser.parse_args(["chat", "--checkpoint", "x"]), sft) == "chat"
    assert chat_mode(parser.parse_args(["chat", "--checkpoint", "x", "--mode", "chat"]), base) == "chat"
    assert chat_mode(parser.parse_args(["chat", "--checkpoint", "x", "--continue"]), sft) == "continue"


def test_registered_chat_modes_checked_listed_claimed_and_rolled_back_with_their_plugin(tmp_path):
    import pytest

    from nanochat_cli.errors import AppError
    from nanochat_cli.services.chat_modes import (
        ChatMode,
        ModeRequest,
        ModeResult,
        cached_load,
        mode_for_checkpoint,
        run_mode,
    )
    from nanochat_cli.services.registry import Registry

    def run(request: ModeRequest) -> ModeResult:
        return ModeResult(request.prompt.upper(), "yaml", ("ok",), ok=True)

    reg = Registry()
    reg.register_chat_mode(ChatMode("shout", "shout (YAML)", run, claims=lambda p: p.name == "loud"))
    assert [m.name for m in reg.chat_modes()] == ["shout"] and reg.chat_mode("shout").label == "shout (YAML)"
    for bad, why in ((ChatMode("chat", "x", run), "built in"), (ChatMode("shout", "x", run), "already registered"),
                     (ChatMode("Bad-Name", "x", run), "invalid name"), (ChatMode("quiet", "", run), "empty label"),
                     (ChatMode("quiet", "q", "not callable"), "run is not callable")):
        with pytest.raises(AppError, match=why):
            reg.register_chat_mode(bad)
    assert run_mode(reg.chat_mode("shout"), ModeRequest("hi", tmp_path)).text == "HI"
    with pytest.raises(AppError, match="not a ModeResult"):
        run_mode(ChatMode("odd", "odd", lambda r: "text"), ModeRequest("hi", tmp_path))

    def broken(path):
        raise RuntimeError("plugin bug")

    modes = [ChatMode("broken", "b", run, claims=broken), *reg.chat_modes()]
    assert mode_for_checkpoint(modes, tmp_path / "loud") == "shout"  # a claim that raises is a no
    assert mode_for_checkpoint(modes, tmp_path / "quiet") is None

    with reg.owned_by("myplugin"):
        reg.register_chat_mode(ChatMode("later", "later", run))
    assert reg.owned("myplugin") == [("chat mode", "later")]
    reg.remove_owned("myplugin")
    assert [m.name for m in reg.chat_modes()] == ["shout"]

    loads = []
    (tmp_path / "ck").mkdir()
    for _ in range(2):
        assert cached_load("shout", tmp_path / "ck", "cpu", lambda p, d: loads.append(p) or len(loads)) == 1
    assert cached_load("shout", tmp_path / "ck", "cuda", lambda p, d: loads.append(p) or len(loads)) == 2
