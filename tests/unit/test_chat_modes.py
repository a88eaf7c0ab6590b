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
