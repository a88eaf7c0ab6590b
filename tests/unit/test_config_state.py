"""UI state persistence and the paths service."""

import json
import os
from pathlib import Path

import pytest

from engine.shared import atomic_write
from nanochat_cli.errors import AppError
from nanochat_cli.services import paths
from nanochat_cli.services.state import UIState, load_state, save_state


def test_paths_follow_the_env(tmp_path, monkeypatch):
    assert paths.user_config_dir() == tmp_path / "config"
    assert paths.base_dir() == tmp_path / "base"
    assert paths.state_path().parent == paths.logs_dir().parent == paths.crash_dir().parent == tmp_path / "config"
    assert paths.user_prefabs_dir() == tmp_path / "config" / "prefabs"
    assert (paths.shipped_prefabs_dir() / "cpu-tiny.yaml").is_file()
    monkeypatch.delenv("NANOCHAT_CLI_CONFIG_DIR")
    monkeypatch.delenv("NANOCHAT_BASE_DIR")
    assert paths.user_config_dir() == Path(os.environ["XDG_CONFIG_HOME"]) / "nanochat-cli"
    assert paths.base_dir() == Path(os.environ["HOME"]) / ".cache" / "nanochat"


def test_state_defaults_round_trip_and_atomic_write():
    assert load_state() == UIState(screen="config", prefab="cpu-tiny", overrides={}, debug=False)
    state = UIState(screen="runs", prefab="$10", overrides={"model.depth": 12, "telemetry.wandb": "offline"},
                    debug=True)
    save_state(state)
    assert load_state() == state
    assert sorted(p.name for p in paths.user_config_dir().iterdir()) == ["state.json"]  # no temp file left


def test_broken_state_says_how_to_reset():
    paths.state_path().parent.mkdir(parents=True)
    paths.state_path().write_text("{not json")
    with pytest.raises(AppError, match="state.json: not valid JSON .*delete the file"):
        load_state()
    paths.state_path().write_text(json.dumps({"screen": 3}))
    with pytest.raises(AppError, match="screen: 3 is not a str"):
        load_state()


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "f.txt"
    atomic_write(target, "old")

    with pytest.raises(TypeError):
        atomic_write(target, 123)  # f.write(int) fails after the temp file exists
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["f.txt"]
    atomic_write(target, "secret", mode=0o600)
    assert target.stat().st_mode & 0o777 == 0o600
