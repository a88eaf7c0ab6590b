"""Checkpoints: nanochat layout, meta written last, incomplete/corrupt ones never count as complete."""

import pytest
import torch

from engine.checkpoint import (
    check_model_config,
    checkpoint_dir,
    complete_steps,
    latest_step,
    load_meta,
    load_model_state,
    load_rank_state,
    save_model_and_meta,
    save_rank_state,
)
from engine.errors import EngineError


def test_layout_and_round_trip(tmp_path):
    d = checkpoint_dir(tmp_path, "demo")
    assert d == tmp_path / "base_checkpoints" / "demo"
    save_rank_state(d, 5, 0, {"state": {}, "param_groups": []}, {"cursor": 3}, {"cpu": torch.get_rng_state()})
    save_model_and_meta(d, 5, {"w": torch.ones(2)}, {"model_config": {"n_layer": 2}, "val_bpb": 1.5})
    assert sorted(p.name for p in d.iterdir()) == ["meta_000005.json", "model_000005.pt", "optim_000005_rank0.pt"]
    meta = load_meta(d, 5)
    assert meta["step"] == 5 and meta["val_bpb"] == 1.5 and "engine_version" in meta
    assert torch.equal(load_model_state(d, 5)["w"], torch.ones(2))
    assert load_rank_state(d, 5, 0)["dataloader"] == {"cursor": 3}


def test_model_without_meta_is_incomplete(tmp_path):
    d = checkpoint_dir(tmp_path, "demo")
    save_model_and_meta(d, 1, {"w": torch.ones(1)}, {"model_config": {}})
    torch.save({"w": torch.ones(1)}, d / "model_000002.pt")  # a kill before the meta was written
    assert complete_steps(d) == [1] and latest_step(d) == 1
    assert not list(d.glob("*.tmp"))


def test_corrupt_files_give_one_line_errors(tmp_path):
    d = checkpoint_dir(tmp_path, "demo")
    d.mkdir(parents=True)
    (d / "meta_000003.json").write_text("{not json")
    (d / "meta_000004.json").write_text('{"model_config": {}}')  # a stock meta: no checksums to catch it first
    (d / "model_000004.pt").write_bytes(b"truncated")
    with pytest.raises(EngineError, match="corrupt checkpoint meta"):
        load_meta(d, 3)
    with pytest.raises(EngineError, match="unreadable checkpoint file"):
        load_model_state(d, 4)


def test_stock_nanochat_optimizer_file_is_read(tmp_path):
    d = checkpoint_dir(tmp_path, "d4")
    d.mkdir(parents=True)
    torch.save({"state": {}, "param_groups": [{"lr": 0.1}]}, d / "optim_000000_rank0.pt")
    state = load_rank_state(d, 0, 0)
    assert state["optimizer"]["param_groups"][0]["lr"] == 0.1 and state["dataloader"] is None


def test_config_mismatch_names_key_and_fix(tmp_path):
    with pytest.raises(EngineError, match=r"n_layer=4 .* 6: set depth so that n_layer matches"):
        check_model_config({"n_layer": 4, "n_embd": 256}, {"n_layer": 6, "n_embd": 256}, tmp_path / "meta.json")
    check_model_config({"n_layer": 4}, {"n_layer": 4}, tmp_path / "meta.json")
