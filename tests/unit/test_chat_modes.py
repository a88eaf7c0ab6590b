"""The mode a checkpoint opens in on the Chat tab: a base model continues text; SFT and RL models chat."""

from nanochat_cli.services.checkpoints.chat import default_mode


def test_base_checkpoints_continue_and_sft_rl_ones_chat(tmp_path):
    for phase_dir, mode in (("base_checkpoints", "continue"), ("chatsft_checkpoints", "chat"),
                            ("chatrl_checkpoints", "chat"), ("somewhere_else", "continue")):
        ckpt = tmp_path / phase_dir / "d12"
        ckpt.mkdir(parents=True)
        assert default_mode(ckpt) == mode, phase_dir
        assert default_mode(ckpt / "model_000100.pt") == mode, phase_dir  # a model file: its dir decides
