"""`runs attach` CPU benchmark: the follower's CPU use while it follows a live run with a big history.

    python bench/attach_bench.py [--mb 45] [--seconds 20] [--code-root PATH]

Writes a run whose telemetry.jsonl holds about --mb MB of step events (the real TelemetryWriter) and whose
run.json names a live, silent process, then runs `nanochat-cli runs attach` on it with stdout to a pipe
that is drained. Prints the CPU seconds the attach process used to replay the history (until its first
output goes quiet) and its CPU use, as % of one core, over the next --seconds while it only follows.
--code-root runs another checkout's nanochat_cli (e.g. an older commit, for before/after figures).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.telemetry import TELEMETRY_FILE, StepEvent, TelemetryWriter  # noqa: E402


def write_history(run_dir: Path, mb: float) -> int:
    """Step events until the file holds `mb` MB; returns how many."""
    run_dir.mkdir(parents=True)
    t0 = time.time() - 3600
    n = 0
    with TelemetryWriter(run_dir / TELEMETRY_FILE, run=run_dir.name) as w:
        w.emit("run_start", time=t0, config={"run": run_dir.name}, world_size=8, device="cuda", dtype="bfloat16",
               num_params=560_000_000, num_flops_per_token=3.4e9, num_iterations=10_000_000, tokens_per_step=524288,
               engine_version="bench", pid=1, run_dir=str(run_dir))
        while (run_dir / TELEMETRY_FILE).stat().st_size < mb * 1e6:
            for _ in range(1000):
                n += 1
                w.emit(StepEvent(time=t0 + n * 0.01, step=n, total=10_000_000, loss=3.0, smooth_loss=3.0,
                                 lr_mult=1.0, muon_momentum=0.95, tokens_per_sec=4.1e5, mfu=0.41, dt=1.27, t_data=0.004,
                                 t_fwd_bwd=1.19, t_optim=0.078, mem_bytes=61203423232, tokens_seen=n * 524288,
                                 elapsed=n * 1.27, eta=None))
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=float, default=45.0)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--code-root", type=Path, default=ROOT)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        run_dir = base / "runs" / "big"
        steps = write_history(run_dir, args.mb)
        size = (run_dir / TELEMETRY_FILE).stat().st_size
        job = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])  # alive, silent
        (run_dir / "run.json").write_text(json.dumps({"name": "big", "pid": job.pid, "started": time.time(),
                                                      "command": "bench", "exit_code": None}))
        code = (f"import sys; sys.path.insert(0, {str(args.code_root)!r}); "
                "from nanochat_cli.cli import main; sys.exit(main(['runs', 'attach', 'big']))")
        env = {**os.environ, "NANOCHAT_BASE_DIR": str(base), "PYTHONDONTWRITEBYTECODE": "1"}
        attach = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL)
        last_output: list[float] = []

        def drain() -> None:
            while attach.stdout.read1(1 << 16):
                last_output[:] = [time.monotonic()]

        threading.Thread(target=drain, daemon=True).start()
        p = psutil.Process(attach.pid)
        try:
            # the replay prints (after parsing); following a silent run does not
            while not last_output or time.monotonic() - last_output[0] < 2.0:
                time.sleep(0.1)
            replay_cpu = sum(p.cpu_times()[:2])
            time.sleep(args.seconds)
            follow_cpu = sum(p.cpu_times()[:2]) - replay_cpu
        finally:
            attach.kill()
            job.kill()
        print(f"code: {args.code_root}")
        print(f"history: {size / 1e6:.1f} MB, {steps:,} step events")
        print(f"replay: {replay_cpu:.2f} CPU s")
        print(f"following a silent live run: {100 * follow_cpu / args.seconds:.1f}% of one core "
              f"({follow_cpu:.2f} CPU s in {args.seconds:g} s)")


if __name__ == "__main__":
    main()
