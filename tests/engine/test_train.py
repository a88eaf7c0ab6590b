"""End-to-end training: a real 2-process torchrun CPU run, exact resume, control requests, bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from engine_assets import build_assets

from engine.checkpoint import checkpoint_dir, complete_steps
from engine.control import send_request
from engine.telemetry import TelemetryReader

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--depth", "2", "--aspect-ratio", "32", "--head-dim", "32", "--max-seq-len", "64", "--vocab-size", "512",
        "--device-batch-size", "4", "--eval-tokens", "512", "--sample-every", "-1", "--warmup-iters", "2"]


@pytest.fixture(scope="module")
def assets(tmp_path_factory) -> dict[str, str]:
    """A small text corpus as parquet shards and a 512-token tokenizer trained on it, shared by the module."""
    return build_assets(tmp_path_factory.mktemp("assets"))


def run_engine(args: list[str], base: Path, nproc: int = 1, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "NANOCHAT_BASE_DIR": str(base), "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    launcher = ([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
                if nproc > 1 else [sys.executable])
    # `--` keeps torchrun's own parser (which would read --run as an abbreviation of --run-path) off our flags
    return subprocess.run([*launcher, "-m", "engine.train", "--", *args], env=env, capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


def events(base: Path, run: str) -> list:
    return TelemetryReader(base / "runs" / run / "telemetry.jsonl").read_new()


@pytest.mark.slow  # a real 2-process torchrun: 8-20 s depending on load
def test_two_process_torchrun_writes_telemetry_and_checkpoint(tmp_path, assets):
    args = [*TINY, "--run", "ddp", "--data-dir", assets["data"], "--tokenizer-dir", assets["tok"],
            "--total-batch-size", "512", "--num-iterations", "4", "--eval-every", "2", "--save-every", "2"]
    proc = run_engine(args, tmp_path, nproc=2)
    assert proc.returncode == 0, proc.stderr[-3000:]
    evs = events(tmp_path, "ddp")
    kinds = [e.event for e in evs]
    assert kinds[0] == "run_start" and kinds[-1] == "run_end"
    start = evs[0]
    assert start.world_size == 2 and start.num_iterations == 4 and start.num_params > 0
    # start-up phases in the order they ran, all before run_start and after the process began
    phases = ["process", "engine_import", "imports", "distributed", "data", "tokenizer", "model", "optimizer",
              "loader"]
    assert list(start.startup) == phases
    stamps = list(start.startup.values())
    assert stamps == sorted(stamps) and stamps[-1] <= start.time and start.time - stamps[0] < 300
    steps = [e for e in evs if e.event == "step"]
    assert [s.step for s in steps] == [1, 2, 3, 4]
    assert all(s.loss > 0 and s.tokens_per_sec > 0 and s.t_fwd_bwd > 0 for s in steps)
    assert [e.step for e in evs if e.event == "eval"] == [2, 4]
    assert evs[-1].status == "finished"
    ckpt = checkpoint_dir(tmp_path, "ddp")
    assert complete_steps(ckpt) == [2, 4]
    assert (ckpt / "optim_000004_rank0.pt").exists() and (ckpt / "optim_000004_rank1.pt").exists()
    meta = json.loads((ckpt / "meta_000004.json").read_text())
    assert meta["model_config"]["n_layer"] == 2 and meta["run"] == "ddp" and meta["tokenizer_hash"]
    assert "step 00004/00004" in proc.stdout


@pytest.mark.slow
def test_resume_reproduces_uninterrupted_losses_bit_for_bit(tmp_path, assets):
    common = [*TINY, "--data-dir", assets["data"], "--tokenizer-dir", assets["tok"], "--total-batch-size", "256",
              "--num-iterations", "8", "--eval-every", "-1"]
    full = run_engine([*common, "--run", "full", "--save-every", "4"], tmp_path)
    assert full.returncode == 0, full.stderr[-3000:]
    # a second run takes over the first one's step-4 checkpoint and continues from it
    src, dst = checkpoint_dir(tmp_path, "full"), checkpoint_dir(tmp_path, "resumed")
    dst.mkdir(parents=True)
    for f in src.glob("*_000004*"):
        (dst / f.name).write_bytes(f.read_bytes())
    resumed = run_engine([*common, "--run", "resumed", "--resume"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    full_losses = {e.step: e.loss for e in events(tmp_path, "full") if e.event == "step"}
    resumed_losses = {e.step: e.loss for e in events(tmp_path, "resumed") if e.event == "step"}
    assert sorted(resumed_losses) == [5, 6, 7, 8]
    assert all(resumed_losses[s] == full_losses[s] for s in resumed_losses)  # exact, not approximate
    assert events(tmp_path, "resumed")[0].resumed_from_step == 4


@pytest.mark.slow
def test_control_channel_save_patch_stop(tmp_path, assets):
    args = [*TINY, "--run", "ctl", "--data-dir", assets["data"], "--tokenizer-dir", assets["tok"],
            "--total-batch-size", "256", "--num-iterations", "100000", "--eval-every", "-1"]
    env = {**os.environ, "NANOCHAT_BASE_DIR": str(tmp_path), "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "engine.train", *args], env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    run_dir = tmp_path / "runs" / "ctl"
    reader = TelemetryReader(run_dir / "telemetry.jsonl")
    seen: list = []

    def wait_for(pred, timeout=60.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            seen.extend(reader.read_new() if run_dir.exists() else [])
            hit = next((e for e in seen if pred(e)), None)
            if hit is not None:
                return hit
            assert proc.poll() is None or any(e.event == "run_end" for e in seen), proc.stderr.read()[-2000:]
            time.sleep(0.05)
        raise AssertionError(f"timed out; saw {[e.event for e in seen][-10:]}")

    try:
        wait_for(lambda e: e.event == "step")
        save_id = send_request(run_dir, "save_now")
        patch_id = send_request(run_dir, "patch", {"log_every": 5, "lr_scale": 0.5})
        cold_id = send_request(run_dir, "patch", {"depth": 6})
        ack = wait_for(lambda e: e.event == "control_ack" and e.request_id == save_id)
        assert ack.ok
        ckpt = wait_for(lambda e: e.event == "checkpoint" and e.reason == "request")
        assert Path(ckpt.path).exists()
        ack = wait_for(lambda e: e.event == "control_ack" and e.request_id == patch_id)
        assert ack.ok and ack.applied == {"log_every": 5, "lr_scale": 0.5}
        ack = wait_for(lambda e: e.event == "control_ack" and e.request_id == cold_id)
        assert not ack.ok and "not hot-patchable: depth" in ack.message
        stop_id = send_request(run_dir, "stop")
        wait_for(lambda e: e.event == "control_ack" and e.request_id == stop_id)
        end = wait_for(lambda e: e.event == "run_end")
        assert end.status == "stopped"
        assert proc.wait(60) == 0
        assert any(e.event == "checkpoint" and e.reason == "stop" for e in seen)
    finally:
        if proc.poll() is None:
            proc.kill()


@pytest.mark.parametrize("args, message", [
    (["--no-such-flag"], "unrecognized arguments: --no-such-flag"),
    (["--depth", "zero"], "depth: Input should be a valid integer"),
    (["--window-pattern", "SXL"], "window_pattern"),
])
def test_bad_flags_give_one_line_errors(tmp_path, args, message):
    proc = run_engine(args, tmp_path)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
def test_bad_batch_geometry_is_reported_in_telemetry(tmp_path, assets):
    args = [*TINY, "--run", "geo", "--data-dir", assets["data"], "--tokenizer-dir", assets["tok"],
            "--total-batch-size", "300", "--num-iterations", "2"]
    proc = run_engine(args, tmp_path)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "total_batch_size=300 is not a multiple" in proc.stderr
    evs = events(tmp_path, "geo")
    assert evs[-2].event == "error" and "total_batch_size" in evs[-2].message
    assert evs[-1].event == "run_end" and evs[-1].status == "failed"


@pytest.mark.slow
def test_missing_data_dir_and_unwritable_base(tmp_path, assets):
    proc = run_engine([*TINY, "--run", "nodata", "--data-dir", str(tmp_path / "nope")], tmp_path)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert str(tmp_path / "nope") in proc.stderr
    blocker = tmp_path / "file"
    blocker.write_text("not a dir")
    proc = run_engine([*TINY, "--run", "x", "--base-dir", str(blocker)], tmp_path)
    assert proc.returncode == 2 and "not writable" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.slow
def test_existing_checkpoints_are_never_overwritten_silently(tmp_path, assets):
    args = [*TINY, "--run", "dup", "--data-dir", assets["data"], "--tokenizer-dir", assets["tok"],
            "--total-batch-size", "256", "--num-iterations", "1", "--eval-every", "-1"]
    assert run_engine(args, tmp_path).returncode == 0
    again = run_engine(args, tmp_path)
    assert again.returncode == 1 and "already has checkpoints" in again.stderr and "--resume" in again.stderr
    # resuming with another architecture names the differing key and the fix
    other = run_engine([*args, "--resume", "--depth", "3"], tmp_path)
    assert other.returncode == 1 and "Traceback" not in other.stderr
    assert "n_layer=2" in other.stderr and "set depth so that n_layer matches" in other.stderr


@pytest.mark.slow  # a real multi-process run: 10-30 s on a busy 2-core machine
def test_trainer_feeds_wandb_and_otel(tmp_path, assets, monkeypatch):
    """The same metrics reach W&B (offline, read back from its run file) and an OTLP collector on loopback."""
    from sink_helpers import OtlpReceiver, read_wandb_records

    monkeypatch.setenv("WANDB_SILENT", "true")
    receiver = OtlpReceiver()
    try:
        args = [*TINY, "--run", "sinks", "--data-dir", assets["data"], "--tokenizer-dir", assets["tok"],
                "--total-batch-size", "512", "--num-iterations", "4", "--eval-every", "2",
                "--wandb", "offline", "--otel-endpoint", receiver.url]
        proc = run_engine(args, tmp_path, nproc=2)
    finally:
        receiver.close()
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(x) for x in (tmp_path / "runs" / "sinks" / "telemetry.jsonl").read_text().splitlines()]
    final = {x["sink"]: x for x in lines if x["event"] == "sink_status"}
    assert final["wandb"]["ok"] and "6 rows logged" in final["wandb"]["detail"], final
    assert final["otel"]["ok"], final
    names = [sp.name for sp, _ in receiver.spans]
    assert names.count("step") == 4 and names.count("fwd_bwd") == 4 and names.count("eval") == 2
    assert names.count("checkpoint") == 1
    (run_file,) = (tmp_path / "runs" / "sinks").glob("wandb/offline-run-*/run-*.wandb")
    rows = [{i.key or ".".join(i.nested_key): json.loads(i.value_json) for i in r.history.item}
            for r in read_wandb_records(run_file) if r.WhichOneof("record_type") == "history"]
    losses = {row["_step"]: row["loss"] for row in rows if "loss" in row}
    steps = {e.step: e.loss for e in events(tmp_path, "sinks") if e.event == "step"}
    assert losses == steps
