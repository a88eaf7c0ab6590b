"""Engine extensions (engine/extensions.py): transparent when they change nothing, a raising one stops the run
with a one-line error naming it, and the MegaContext extension trains, saves its state and resumes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from engine_assets import build_assets, train_in_process

from engine.checkpoint import checkpoint_dir, load_meta
from engine.extensions import Extension

MC_ENTRY = "nanochat_plugins.megacontext.extension:MegaContextExtension"
MC_SETTINGS = {"enabled": True, "budget": 128, "doc_tokens": 384, "tail_tokens": 32, "lens_refresh": 2,
               "gistnet_dim": 32, "truncation_weight": 1.0, "distill_weight": 1.0, "raw_jitter": True,
               "gist_input": "trained_states", "bag_weight": 1.0}


class NoOp(Extension):
    """Overrides nothing: a run with it must train exactly like a vanilla one."""


class Boom(Extension):
    def train_loss(self, x, y, base):
        raise RuntimeError("kaboom")


def ext(name: str, entry: str, settings: dict | None = None) -> list[str]:
    return ["--extensions", json.dumps([{"name": name, "entry": entry, "settings": settings or {}}])]


@pytest.fixture(scope="module")
def assets(tmp_path_factory) -> dict[str, str]:
    return build_assets(tmp_path_factory.mktemp("assets"))


def losses(base: Path, run: str) -> list[float]:
    lines = (base / "runs" / run / "telemetry.jsonl").read_text().splitlines()
    return [e["loss"] for e in map(json.loads, lines) if e["event"] == "step"]


@pytest.mark.slow  # two short runs: about 10 s on a loaded 2-core machine
def test_a_no_op_extension_changes_nothing_and_vanilla_records_none(tmp_path, assets):
    assert train_in_process(tmp_path, assets, "plain", "--num-iterations", "3") == 0
    assert train_in_process(tmp_path, assets, "noop", "--num-iterations", "3",
                            *ext("noop", "tests.engine.test_extensions:NoOp")) == 0
    assert losses(tmp_path, "plain") == losses(tmp_path, "noop")
    plain = torch.load(checkpoint_dir(tmp_path, "plain") / "model_000003.pt", weights_only=True)
    noop = torch.load(checkpoint_dir(tmp_path, "noop") / "model_000003.pt", weights_only=True)
    assert all(torch.equal(plain[k], noop[k]) for k in plain)
    meta = load_meta(checkpoint_dir(tmp_path, "plain"), 3)
    assert "extensions" not in meta and "extensions" not in meta["user_config"]
    assert load_meta(checkpoint_dir(tmp_path, "noop"), 3)["user_config"]["noop"] == {}


def test_a_raising_extension_stops_the_run_with_a_clear_error(tmp_path, assets, capsys):
    assert train_in_process(tmp_path, assets, "boom", "--num-iterations", "3",
                            *ext("boom", "tests.engine.test_extensions:Boom")) == 1
    err = capsys.readouterr().err
    assert "extension boom: train_loss failed (RuntimeError: kaboom)" in err and "boom.enabled=false" in err
    assert train_in_process(tmp_path, assets, "missing", "--num-iterations", "3",
                            *ext("gone", "no_such_module:X")) == 1
    assert "extensions: gone: cannot load no_such_module:X" in capsys.readouterr().err


@pytest.mark.slow
def test_megacontext_trains_saves_its_state_and_resumes(tmp_path, assets):
    flags = ["--num-iterations", "2", *ext("megacontext", MC_ENTRY, MC_SETTINGS)]
    assert train_in_process(tmp_path, assets, "mc", *flags) == 0
    ckpt = checkpoint_dir(tmp_path, "mc")
    meta = load_meta(ckpt, 2)
    assert meta["user_config"]["megacontext"]["enabled"] is True
    assert meta["extensions"]["megacontext"]["gistnet_params"] > 0
    measured = meta["extensions"]["megacontext"]["raw_blocks_loss"]  # by raw history blocks kept: 0, 1, ...
    assert len(measured) == 3 and meta["extensions"]["megacontext"]["raw_blocks_best"] == measured.index(min(measured))
    assert (ckpt / "ext_megacontext_000002.pt").exists()
    lines = (tmp_path / "runs" / "mc" / "telemetry.jsonl").read_text().splitlines()
    context = [e for e in map(json.loads, lines) if e["event"] == "plugin" and e["kind"] == "context"]
    assert [e["step"] for e in context] == [1, 2]
    data = context[-1]["data"]
    assert data["slots"] <= 128  # within the budget (raw jitter may have left more room than a lead fills)
    assert len(data["lod"]) == 384 // 32 and "delta_nll" in context[0]["data"]
    assert context[0]["data"]["lens_error"] >= 0  # LensNet's measured swap error, which sets the margin
    assert train_in_process(tmp_path, assets, "mc", "--resume", "--num-iterations", "3",
                            *ext("megacontext", MC_ENTRY, MC_SETTINGS)) == 0
    assert (ckpt / "ext_megacontext_000003.pt").exists()
