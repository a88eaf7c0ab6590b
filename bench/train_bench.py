"""Training benchmark: throughput, per-step telemetry/control overhead, peak RSS, time to first step.

    python bench/train_bench.py [--nproc 1] [--steps 20] [--vocab-size 32768] [--compile-too]

Runs the real `engine.train` (depth 4, seq 512, the CPU recipe's head_dim 64) on the embedded corpus
in a scratch base dir and prints figures; nothing is asserted. Throughput is the median over steps
after the first two (warm-up, compilation).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.control import ControlChannel  # noqa: E402
from engine.telemetry import TelemetryReader, TelemetryWriter  # noqa: E402


def run(base: Path, name: str, nproc: int, steps: int, vocab: int, compile_: bool) -> dict:
    args = ["--run", name, "--depth", "4", "--head-dim", "64", "--max-seq-len", "512", "--vocab-size", str(vocab),
            "--device-batch-size", "8", "--total-batch-size", str(8 * 512 * nproc), "--num-iterations", str(steps),
            "--eval-every", "-1", "--eval-tokens", "4096", "--sample-every", "-1", "--save-every", "-1"]
    if compile_:
        args.append("--compile")
    launcher = ([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
                if nproc > 1 else [sys.executable])
    env = {**os.environ, "NANOCHAT_BASE_DIR": str(base), "PYTHONPATH": str(ROOT),
           "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // nproc))}
    t0 = time.time()
    proc = subprocess.run([*launcher, "-m", "engine.train", "--", *args], env=env, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"engine.train failed:\n{proc.stderr[-2000:]}")
    events = TelemetryReader(base / "runs" / name / "telemetry.jsonl").read_new()
    step_events = [e for e in events if e.event == "step"]
    timed = step_events[2:] or step_events
    return {
        "tok_s": statistics.median(e.tokens_per_sec for e in timed),
        "dt": statistics.median(e.dt for e in timed),
        "t_data": statistics.median(e.t_data for e in timed),
        "t_fwd_bwd": statistics.median(e.t_fwd_bwd for e in timed),
        "t_optim": statistics.median(e.t_optim for e in timed),
        "rss": max(e.mem_bytes for e in step_events),
        "first_step_s": step_events[0].time - t0,
    }


def overhead_per_step(tmp: Path, n: int = 2000) -> float:
    """Seconds per step spent on the rank-0 telemetry emit plus a control poll (single process)."""
    writer = TelemetryWriter(tmp / "telemetry.jsonl", run="bench")
    channel = ControlChannel(tmp)
    fields = dict(step=1, total=100, loss=3.2, smooth_loss=3.3, lr_mult=1.0, muon_momentum=0.95,
                  tokens_per_sec=1e4, mfu=None, dt=0.2, t_data=0.01, t_fwd_bwd=0.15, t_optim=0.04,
                  mem_bytes=1 << 30, tokens_seen=1 << 20, elapsed=10.0, eta=20.0)
    t0 = time.perf_counter()
    for i in range(n):
        writer.emit("step", **fields)
        channel.poll(i)
    writer.close()
    return (time.perf_counter() - t0) / n


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nproc", type=int, default=1)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--vocab-size", type=int, default=32768)
    p.add_argument("--compile-too", action="store_true", help="also measure with --compile")
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        # first call builds the embedded corpus and the tokenizer; not part of any figure below
        run(base, "warm", 1, 1, a.vocab_size, False)
        variants = [("eager", False)] + ([("compile", True)] if a.compile_too else [])
        for label, compile_ in variants:
            r = run(base, label, a.nproc, a.steps, a.vocab_size, compile_)
            print(f"{label:8s} nproc={a.nproc}: {r['tok_s']:,.0f} tok/s | step {r['dt'] * 1000:.0f} ms "
                  f"(data {r['t_data'] * 1000:.1f}, fwd+bwd {r['t_fwd_bwd'] * 1000:.0f}, optim "
                  f"{r['t_optim'] * 1000:.0f}) | peak RSS {r['rss'] / 2**20:,.0f} MiB | "
                  f"start→first step {r['first_step_s']:.1f} s")
            if label == "eager":
                ov = overhead_per_step(base)
                print(f"telemetry+control per step: {ov * 1e6:.1f} µs = {100 * ov / r['dt']:.3f}% of a step")


if __name__ == "__main__":
    main()
