"""Two ranks agree on the step to resume from: one rank's damaged optimizer file sends both back a step."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from engine_assets import TINY_TRAIN_FLAGS, build_assets

from engine.checkpoint import checkpoint_dir
from engine.telemetry import TelemetryReader
from nanochat_cli.services.checkpoints.registry import CheckpointRegistry

ROOT = Path(__file__).resolve().parents[2]


def torchrun(base: Path, assets: dict[str, str], *flags: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "NANOCHAT_BASE_DIR": str(base), "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "engine.train",
           "--", *TINY_TRAIN_FLAGS, "--total-batch-size", "512", "--run", "ddp", "--data-dir", assets["data"],
           "--tokenizer-dir", assets["tok"], "--save-every", "2", *flags]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=ROOT)


@pytest.mark.slow
def test_one_ranks_damaged_optimizer_file_sends_every_rank_back(tmp_path):
    assets = build_assets(tmp_path / "assets")
    base = tmp_path / "base"
    first = torchrun(base, assets, "--num-iterations", "4")
    assert first.returncode == 0, first.stderr[-3000:]
    d = checkpoint_dir(base, "ddp")
    rank1 = d / "optim_000004_rank1.pt"
    rank1.write_bytes(rank1.read_bytes()[:1000])  # truncated, as by a full disk
    listed = {e.step: e for e in CheckpointRegistry(base, index_file=tmp_path / "index.json").scan()}
    assert listed[4].complete and not listed[4].resumable and listed[2].resumable

    resumed = torchrun(base, assets, "--num-iterations", "6", "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    evs = TelemetryReader(base / "runs" / "ddp" / "telemetry.jsonl").read_new()
    run = evs[max(i for i, e in enumerate(evs) if e.event == "run_start"):]
    assert run[0].resumed_from_step == 2
    assert any(e.event == "warning" and "optim_000004_rank1.pt" in e.message for e in run)
    assert [e.step for e in run if e.event == "step"] == [3, 4, 5, 6] and run[-1].status == "finished"
