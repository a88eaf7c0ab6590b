"""MegaContext under a real 2-process torchrun: both ranks add the MC loss (GistNet/LensNet gradients averaged
with the model's by the optimizer), rank 0 writes the plugin telemetry and the MC weights next to the model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from engine_assets import build_assets

from engine.checkpoint import checkpoint_dir, load_extra_state
from engine.extensions import extension_file

ROOT = Path(__file__).resolve().parents[2]
ENTRY = "nanochat_plugins.megacontext.extension:MegaContextExtension"


@pytest.mark.slow  # a real 2-process torchrun with MegaContext on: 15-40 s depending on load
def test_two_rank_torchrun_with_megacontext(tmp_path):
    assets = build_assets(tmp_path / "assets")
    settings = {"enabled": True, "budget": 128, "doc_tokens": 384, "tail_tokens": 32, "lens_refresh": 2}
    args = ["--depth", "2", "--aspect-ratio", "32", "--head-dim", "32", "--max-seq-len", "64", "--vocab-size",
            "512", "--device-batch-size", "4", "--total-batch-size", "512", "--num-iterations", "4",
            "--warmup-iters", "2", "--eval-every", "-1", "--eval-tokens", "512", "--sample-every", "-1",
            "--log-every", "1", "--device-type", "cpu", "--run", "mcddp", "--data-dir", assets["data"],
            "--tokenizer-dir", assets["tok"],
            "--extensions", json.dumps([{"name": "megacontext", "entry": ENTRY, "settings": settings}])]
    env = {**os.environ, "NANOCHAT_BASE_DIR": str(tmp_path), "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    proc = subprocess.run([*launcher, "-m", "engine.train", "--", "--base-dir", str(tmp_path), *args], env=env,
                          capture_output=True, text=True, timeout=400, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    events = [json.loads(line) for line in (tmp_path / "runs" / "mcddp" / "telemetry.jsonl").read_text().splitlines()]
    assert events[0]["world_size"] == 2 and events[-1]["event"] == "run_end"
    steps = [e for e in events if e["event"] == "step"]
    assert [s["step"] for s in steps] == [1, 2, 3, 4] and all(s["loss"] > 0 for s in steps)
    contexts = [e for e in events if e["event"] == "plugin" and e["kind"] == "context"]
    assert len(contexts) == 4 and all(c["data"]["slots"] <= 128 and c["data"]["mc_loss"] > 0 for c in contexts)
    assert any("probes" in c["data"] for c in contexts)  # LensNet was fitted on measured targets
    state = load_extra_state(extension_file(checkpoint_dir(tmp_path, "mcddp"), "megacontext", 4))
    assert {"gistnet", "lensnet"} <= set(state)
