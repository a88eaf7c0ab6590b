"""RL (engine.rl) figures: held-out reward before and after, time per step, from a run's telemetry.

    python bench/rl_bench.py --run-dir <base>/runs/<rl run>                  # a finished run
    python bench/rl_bench.py --source <sft ckpt dir> [--steps 60] [-- <engine.rl flags>]   # run one, then report

Prints the held-out reward and pass@k (eval_result, suite "rl") at the first and last evaluated step, the
training reward of the first and last 10 steps (rollout events), the median time per step and its rollout
share, sample lengths and tool-call rate. Timings on a loaded machine are noisy: compare medians.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def read(run_dir: Path) -> list[dict]:
    lines = (run_dir / "telemetry.jsonl").read_text().splitlines()
    return [json.loads(x) for x in lines if x.strip()]


def report(run_dir: Path) -> None:
    events = read(run_dir)
    evals: dict[int, dict[str, float]] = {}
    for e in events:
        if e["event"] == "eval_result" and e.get("suite") == "rl":
            evals.setdefault(e["step"], {})[e["metric"]] = e["value"]
    rollouts = [e for e in events if e["event"] == "rollout"]
    steps = [e for e in events if e["event"] == "step"]
    if evals:
        first, last = min(evals), max(evals)
        for s in (first, last):
            m = evals[s]
            passes = " ".join(f"{k}={v:.3f}" for k, v in m.items() if k.startswith("pass@"))
            print(f"held-out step {s:4d}: reward {m.get('reward', float('nan')):.4f}  {passes}")
    if rollouts:
        head, tail = rollouts[:10], rollouts[-10:]
        mean = lambda rows, k: sum(r[k] for r in rows) / len(rows)  # noqa: E731
        print(f"train reward: first {len(head)} steps {mean(head, 'reward_mean'):.4f}, last {len(tail)} steps "
              f"{mean(tail, 'reward_mean'):.4f}")
        print(f"sample length: first {mean(head, 'mean_len'):.1f}, last {mean(tail, 'mean_len'):.1f} tokens; "
              f"tool-call rate: first {mean(head, 'tool_call_rate'):.2f}, last {mean(tail, 'tool_call_rate'):.2f}")
    if steps:
        dts = [s["dt"] for s in steps[1:]] or [steps[0]["dt"]]
        roll = [s["t_data"] for s in steps[1:]] or [steps[0]["t_data"]]
        print(f"time per RL step: median {statistics.median(dts):.2f}s (rollouts {statistics.median(roll):.2f}s), "
              f"min {min(dts):.2f}s, max {max(dts):.2f}s over {len(steps)} steps")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run-dir", type=Path, help="an RL run dir to report on")
    p.add_argument("--source", help="an SFT checkpoint dir (or model_XXXXXX.pt) to run RL from")
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("rest", nargs="*", help="more engine.rl flags, after --")
    args = p.parse_args()
    if args.run_dir:
        report(args.run_dir)
        return 0
    if not args.source:
        p.error("give --run-dir or --source")
    base = Path(tempfile.mkdtemp(prefix="rl-bench-"))
    cmd = [sys.executable, "-m", "engine.rl", "--run", "bench", "--base-dir", str(base), "--source", args.source,
           "--num-iterations", str(args.steps), "--device-type", "cpu", "--log-every", "10", *args.rest]
    subprocess.run(cmd, cwd=ROOT, check=True)
    report(base / "runs" / "bench")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
