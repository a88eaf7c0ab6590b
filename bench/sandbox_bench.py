"""Wall-clock overhead of the sandbox: execute_code("print(1)") against a bare `python -I -S -c 'print(1)'`.

    python bench/sandbox_bench.py [--runs 50] [--warmup 3]

Prints the median and p90 of each, in ms, and which isolation layers were active. Both are timed
from this process (spawn to exit), alternating, so that machine load hits both alike.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.execution import execute_code  # noqa: E402  (after the path setup: runs from a checkout)


def sandboxed() -> float:
    start = time.perf_counter()
    result = execute_code("print(1)")
    elapsed = time.perf_counter() - start
    if (result.status, result.stdout) != ("ok", "1\n"):
        raise SystemExit(f"sandbox_bench: print(1) did not run cleanly: {result.status}: {result.reason}")
    return elapsed


def bare() -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-I", "-S", "-c", "print(1)"], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def summary(name: str, seconds: list[float]) -> str:
    ms = sorted(s * 1000 for s in seconds)
    p90 = ms[min(len(ms) - 1, round(0.9 * (len(ms) - 1)))]
    return f"{name:<34} median {statistics.median(ms):6.1f} ms   p90 {p90:6.1f} ms   (n={len(ms)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50, help="timed runs of each (default 50)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed runs of each first (default 3)")
    args = parser.parse_args()
    if args.runs < 1 or args.warmup < 0:
        parser.error("--runs must be >= 1 and --warmup >= 0")
    for _ in range(args.warmup):
        sandboxed()
        bare()
    times: dict[str, list[float]] = {"sandbox": [], "bare": []}
    for _ in range(args.runs):
        times["sandbox"].append(sandboxed())
        times["bare"].append(bare())
    print(f"layers: {', '.join(execute_code('pass').layers)}")
    print(summary("execute_code('print(1)')", times["sandbox"]))
    print(summary("python -I -S -c 'print(1)'", times["bare"]))
    overhead = statistics.median(times["sandbox"]) - statistics.median(times["bare"])
    print(f"{'overhead (difference of medians)':<34} {overhead * 1000:6.1f} ms")


if __name__ == "__main__":
    main()
