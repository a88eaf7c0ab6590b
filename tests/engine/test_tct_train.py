"""engine.train on TCT windows: telemetry (val loss beside bpb, valid constrained samples), checkpoints that
open as workflow models, exact resume; and the tct-cpu prefab for real on the shared workflows (slow)."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from tct_helpers import prepare_windows

from engine.checkpoint import checkpoint_dir, complete_steps
from engine.telemetry import TelemetryReader

ROOT = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("NANOCHAT_SHARED") or ROOT.parent / "shared")
TINY = ["--depth", "1", "--aspect-ratio", "32", "--head-dim", "32", "--max-seq-len", "16", "--device-batch-size",
        "4", "--total-batch-size", "64", "--eval-tokens", "128", "--warmup-iters", "1"]


def run_engine(argv: list[str], base: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "NANOCHAT_BASE_DIR": str(base), "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "engine.train", *argv], env=env, capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


def events(base: Path, run: str) -> list:
    return TelemetryReader(base / "runs" / run / "telemetry.jsonl").read_new()


@pytest.mark.slow  # two short runs: 10-30 s on a loaded 2-core machine
def test_training_on_windows_checkpoints_samples_and_resumes_exactly(tmp_path):
    from engine.tct_sample import is_tct_checkpoint

    data = str(prepare_windows(tmp_path))
    common = [*TINY, "--data-dir", data, "--num-iterations", "6", "--eval-every", "3"]
    full = run_engine([*common, "--run", "full", "--save-every", "3", "--sample-every", "6"], tmp_path)
    assert full.returncode == 0, full.stderr[-3000:]
    evs = events(tmp_path, "full")
    evals = [e for e in evs if e.event == "eval"]
    assert [e.step for e in evals] == [3, 6] and all(e.val_loss > 0 and e.val_bpb > 0 for e in evals)
    (sample,) = [e for e in evs if e.event == "sample"]
    assert sample.prompt == "(workflow)" and re.search(r" \[(valid|invalid: .+)\]$", sample.text)  # its verdict
    json.loads(sample.text.rsplit(" [", 1)[0])  # a 6-step model may run out of budget: still JSON
    ckpt = checkpoint_dir(tmp_path, "full")
    assert complete_steps(ckpt) == [3, 6] and is_tct_checkpoint(ckpt)
    meta = json.loads((ckpt / "meta_000006.json").read_text())
    assert meta["tokenizer_kind"] == "tct" and meta["model_config"]["vocab_size"] == 8192
    assert meta["dataloader_state_dict"]["kind"] == "tct-windows"

    dst = checkpoint_dir(tmp_path, "resumed")  # a second run takes over step 3 and continues
    dst.mkdir(parents=True)
    for f in ckpt.glob("*_000003*"):
        (dst / f.name).write_bytes(f.read_bytes())
    resumed = run_engine([*common, "--run", "resumed", "--resume"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    full_losses = {e.step: e.loss for e in evs if e.event == "step"}
    resumed_losses = {e.step: e.loss for e in events(tmp_path, "resumed") if e.event == "step"}
    assert sorted(resumed_losses) == [4, 5, 6]
    assert all(resumed_losses[s] == full_losses[s] for s in resumed_losses)  # exact, not approximate


@pytest.mark.slow  # an engine process: 3-10 s
def test_missing_tct_data_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("NANOCHAT_TCT_SOURCES", str(tmp_path / "none"))
    proc = run_engine([*TINY, "--run", "nodata", "--data-dir", "tct:workflows", "--num-iterations", "1"],
                      tmp_path, timeout=120)
    assert proc.returncode != 0
    assert "data_dir tct:workflows: no TCT windows at" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.slow  # the shipped tct-cpu prefab under torchrun, a few steps: 30-90 s
@pytest.mark.skipif(not (SHARED / "data" / "workflows-real").is_dir(), reason="no ../shared/data/workflows-real")
def test_the_tct_cpu_prefab_prepares_the_shared_workflows_trains_and_samples_valid_workflows(tmp_path):
    from nanochat_cli.services.config.prefabs import PrefabStore
    from nanochat_cli.services.runs.launch import preview_commands, spec_from_resolved

    resolved = PrefabStore().resolve("tct-cpu", {"training.num_iterations": 6, "telemetry.eval_every": 3,
                                                 "telemetry.sample_every": -1, "telemetry.save_every": -1})
    (line,) = preview_commands(spec_from_resolved(resolved))
    argv = shlex.split(line)
    env = {**os.environ, "NANOCHAT_BASE_DIR": str(tmp_path), "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT),
           "NANOCHAT_SHARED": str(SHARED)}
    env.pop("NANOCHAT_TCT_SOURCES", None)
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", *argv[1:]], env=env, capture_output=True,
                          text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "tct_data" / "workflows-ctx256" / "report.json").is_file()
    evs = events(tmp_path, "tct-cpu")
    losses = [e.loss for e in evs if e.event == "step"]
    assert len(losses) == 6 and losses[-1] < losses[0]
    assert [e.step for e in evs if e.event == "eval"] == [3, 6]
    from engine.tct_sample import load_workflow_model, sample_workflow

    model, _meta = load_workflow_model(checkpoint_dir(tmp_path, "tct-cpu"))
    result = sample_workflow(model, "CI", max_tokens=64, seed=0)
    assert result.valid, result.errors
