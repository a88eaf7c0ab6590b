"""The Config screen's edit session and the app log, without a terminal."""

from __future__ import annotations

import json
import logging

import pytest

from nanochat_cli.errors import AppError
from nanochat_cli.logging_setup import format_line, log_event, setup_logging
from nanochat_cli.services.config.prefabs import PrefabExists, PrefabStore
from nanochat_cli.services.config.session import ConfigSession
from nanochat_cli.services.state import UIState, load_state


@pytest.fixture
def store(tmp_path):
    # conftest.py points the user config dir (and so the user prefabs dir) at tmp_path/config
    return PrefabStore(auth_flags=lambda: {"auth.wandb_key_set": False, "auth.hf_token_set": False})


def test_edits_are_saved_at_once_and_diffed(tmp_path, store):
    path = tmp_path / "state.json"
    s = ConfigSession(UIState(), path, store)
    assert s.set_value("model.depth", 6) and s.overrides == {"model.depth": 6}
    assert load_state(path).overrides == {"model.depth": 6}
    assert [(r.key, r.current) for r in s.diff] == [("model.depth", 6)]
    assert not s.set_value("model.depth", 6)  # no change, no write
    assert s.set_value("model.depth", s.base["model.depth"]) and s.overrides == {}  # back to the prefab value
    s.set_value("training.total_batch_size", 1000)
    assert [i.field for i in s.issues] == ["training.total_batch_size"]
    with pytest.raises(AppError, match="problem"):
        s.compat()
    assert s.reset("training.total_batch_size") and not s.reset("training.total_batch_size")
    assert s.compat().params > 0
    with pytest.raises(AppError, match="unknown config field"):
        s.set_value("model.nope", 1)


def test_save_as_loads_the_new_prefab_and_refuses_silent_overwrite(tmp_path, store):
    s = ConfigSession(UIState(), tmp_path / "state.json", store)
    s.set_value("model.depth", 6)
    path = s.save_as("mine")
    assert path.parent == tmp_path / "config" / "prefabs"
    assert (s.prefab, s.overrides, s.current["model.depth"]) == ("mine", {}, 6)
    assert "mine" in [p.name for p in s.prefabs()]
    s.set_value("model.depth", 8)
    with pytest.raises(PrefabExists):
        s.save_as("mine")
    s.save_as("mine", overwrite=True)
    assert s.current["model.depth"] == 8
    assert s.check_new_name("cpu-tiny") and "shipped" in s.check_new_name("cpu-tiny")
    assert s.check_new_name("bad name!") and s.check_new_name("ok-name") is None


def test_restore_reports_what_it_had_to_change(tmp_path, store):
    state = UIState(prefab="gone", overrides={"model.depth": 5, "model.nope": 1})
    s = ConfigSession(state, tmp_path / "state.json", store)
    assert s.prefab == "cpu-tiny" and s.overrides == {"model.depth": 5}
    assert any("'gone'" in n for n in s.notices) and any("model.nope" in n for n in s.notices)
    assert load_state(tmp_path / "state.json").prefab == "cpu-tiny"


def test_launch_mode_reads_the_hardware_fields(tmp_path, store):
    s = ConfigSession(UIState(), tmp_path / "state.json", store)
    s.set_value("hardware.nproc_per_node", 1)
    assert s.launch_mode() == "cpu ×1"
    s.set_value("hardware.device", "cuda")
    s.set_value("hardware.nnodes", 2)
    assert s.launch_mode() == "cuda 1×2 nodes"


def test_app_log_is_json_lines_with_a_debug_toggle(tmp_path):
    log = setup_logging(tmp_path / "logs", clock=lambda: 0.0)
    seen = []
    log.tail.listeners.append(seen.append)
    log_event("hidden", level=logging.DEBUG)
    log_event("prefab loaded", prefab="cpu-tiny")
    log.set_debug(True)
    log_event("visible now", level=logging.DEBUG, n=2)
    log.close()
    lines = [json.loads(line) for line in log.path.read_text().splitlines()]
    assert [r["msg"] for r in lines] == ["prefab loaded", "debug log on", "visible now"]
    assert lines[0] == {"ts": 0.0, "level": "INFO", "logger": "nanochat_cli", "msg": "prefab loaded",
                        "prefab": "cpu-tiny"}
    assert [r["msg"] for r in seen] == ["prefab loaded", "debug log on", "visible now"]
    assert format_line(lines[2]).endswith("DEBUG   visible now  n=2")


def test_a_broken_state_file_is_one_line_and_exit_code_2(tmp_path, capsys):
    from nanochat_cli.app import run_app
    from nanochat_cli.services import paths

    paths.state_path().parent.mkdir(parents=True)
    paths.state_path().write_text("{not json")
    assert run_app() == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("nanochat-cli: ") and "state.json" in err and "delete the file" in err
    assert len(err.splitlines()) == 1
