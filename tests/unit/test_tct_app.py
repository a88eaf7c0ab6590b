"""The app's view of a TCT run: a tct-cpu config uses TCT's tokenizer (its fingerprint, 8192 ids) and reads the
folder its tct: data dir resolves to, so a TCT checkpoint is compatible with it."""

from __future__ import annotations

from engine.tct import fingerprint
from engine.tct.location import uses_tct, window_dir_for
from nanochat_cli.services.checkpoints.registry import CheckpointRegistry
from nanochat_cli.services.config.prefabs import PrefabStore


def test_a_tct_config_has_the_tct_tokenizer_and_the_resolved_window_folder(tmp_path):
    resolved = PrefabStore().resolve("tct-cpu", {"run.base_dir": str(tmp_path)})
    active = CheckpointRegistry(tmp_path).active(resolved)
    assert active.tokenizer_hash == fingerprint() and active.tokenizer_note == "TCT tokenizer"
    assert active.data_dir == str(tmp_path / "tct_data" / "workflows-ctx256")
    assert window_dir_for("tct:workflows", tmp_path, 256) == tmp_path / "tct_data" / "workflows-ctx256"
    assert uses_tct("tct:x") and not uses_tct(None) and not uses_tct(str(tmp_path))
    assert CheckpointRegistry(tmp_path).active(PrefabStore().resolve("cpu-tiny")).tokenizer_note != "TCT tokenizer"
