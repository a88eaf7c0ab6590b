"""RL (engine.rl) figures: held-out reward before and after, time per step, from a run's telemetry.

    python bench/rl_bench.py --run-dir <base>/runs/<rl run>                  # a finished run
    python bench/rl_bench.py --source <sft ckpt dir> [--steps 60] [-- <engine.rl flags>]   # run one, then report
    python bench/rl_bench.py --compare <sft ckpt> <rl ckpt> [--prompts 128 --samples 4]   # paired, with SE

Prints the held-out reward and pass@k (eval_result, suite "rl") at the first and last evaluated step, the
training reward of the first and last 10 steps (rollout events), the median time per step and its rollout
share, sample lengths and tool-call rate. Timings on a loaded machine are noisy: compare medians.
`--compare` scores two checkpoints on the same held-out prompts with the same sampling seeds and prints each
mean reward with its standard error (prompts are the unit: SE = sd of per-prompt means / sqrt(n)) and the
paired difference with its SE, so a rise can be told from noise.
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
            se = f" ± {m['reward_se']:.4f} (SE)" if "reward_se" in m else ""
            print(f"held-out step {s:4d}: reward {m.get('reward', float('nan')):.4f}{se}  {passes}")
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


def prompt_rewards(ckpt: str, prompts: int, samples: int, max_new_tokens: int, seed: int) -> list[float]:
    """Mean reward per held-out arithmetic prompt (val split, temperature 1.0, seeds fixed per prompt)."""
    import torch

    from engine.calculator import calculator
    from engine.engine import PAD_TOKEN, Engine
    from engine.inference_load import load_model
    from engine.tasks import build_task

    model, tok, _ = load_model(ckpt, None, torch.device("cpu"))
    engine, task = Engine(model, tok, tool=calculator), build_task("arithmetic", "val", prompts, seed)
    stops = {tok.encode_special("<|assistant_end|>"), tok.get_bos_token_id()}
    out = []
    for i in range(prompts):
        conv = task[i]
        rows: list[list[int]] = [[] for _ in range(samples)]
        for column, _ in engine.generate(tok.render_for_completion(conv), num_samples=samples,
                                         max_tokens=max_new_tokens, temperature=1.0, top_k=50, seed=10_007 * i + 1):
            for row, t in zip(rows, column, strict=True):
                if t != PAD_TOKEN:
                    row.append(t)
        texts = [tok.decode(r[:-1] if r and r[-1] in stops else r) for r in rows]
        out.append(sum(float(task.reward(conv, t)) for t in texts) / samples)
    return out


def mean_se(xs: list[float]) -> tuple[float, float]:
    m = sum(xs) / len(xs)
    return m, (statistics.stdev(xs) / len(xs) ** 0.5 if len(xs) > 1 else float("nan"))


def compare(before: str, after: str, prompts: int, samples: int, max_new_tokens: int, seed: int) -> None:
    a = prompt_rewards(before, prompts, samples, max_new_tokens, seed)
    b = prompt_rewards(after, prompts, samples, max_new_tokens, seed)
    for name, xs in (("before", a), ("after", b)):
        m, se = mean_se(xs)
        print(f"{name}: reward {m:.4f} ± {se:.4f} (SE; {prompts} held-out prompts × {samples} samples)")
    m, se = mean_se([y - x for x, y in zip(a, b, strict=True)])
    print(f"paired change: {m:+.4f} ± {se:.4f} (SE), z = {m / se if se else float('nan'):.2f}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run-dir", type=Path, help="an RL run dir to report on")
    p.add_argument("--source", help="an SFT checkpoint dir (or model_XXXXXX.pt) to run RL from")
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--compare", nargs=2, metavar=("BEFORE", "AFTER"), help="two checkpoints to score, paired")
    p.add_argument("--prompts", type=int, default=128, help="held-out prompts for --compare")
    p.add_argument("--samples", type=int, default=4, help="answers per prompt for --compare")
    p.add_argument("--max-new-tokens", type=int, default=96, help="most tokens per answer for --compare")
    p.add_argument("--seed", type=int, default=42, help="the RL run's seed: which prompts are held out")
    p.add_argument("rest", nargs="*", help="more engine.rl flags, after --")
    args = p.parse_args()
    if args.compare:
        compare(*args.compare, args.prompts, args.samples, args.max_new_tokens, args.seed)
        return 0
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
