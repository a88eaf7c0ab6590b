"""Wall-clock overhead of the sandbox: execute_code("print(1)") against a bare `python -I -S -c 'print(1)'`.

    python bench/sandbox_bench.py [--runs 50] [--warmup 3]

Prints the median and p90 of each, in ms, and which isolation layers were active. Both are timed
from this process (spawn to exit), alternating, so that machine load hits both alike. The CPU time
(this process and its children, user + system) is printed too: on a busy machine the wall clock
mostly measures waiting for a core, and the CPU time is what the same run costs on an idle one.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.execution import execute_code  # noqa: E402  (after the path setup: runs from a checkout)


def cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed(run) -> tuple[float, float]:
    """(wall, cpu) seconds of one call of `run`."""
    wall, cpu = time.perf_counter(), cpu_seconds()
    run()
    return time.perf_counter() - wall, cpu_seconds() - cpu


def sandboxed() -> None:
    result = execute_code("print(1)")
    if (result.status, result.stdout) != ("ok", "1\n"):
        raise SystemExit(f"sandbox_bench: print(1) did not run cleanly: {result.status}: {result.reason}")


def bare() -> None:
    subprocess.run([sys.executable, "-I", "-S", "-c", "print(1)"], check=True, stdout=subprocess.DEVNULL)


def summary(name: str, runs: list[tuple[float, float]]) -> str:
    def stats(ms: list[float]) -> str:
        ms = sorted(ms)
        p90 = ms[min(len(ms) - 1, round(0.9 * (len(ms) - 1)))]
        return f"median {statistics.median(ms):6.1f} ms  p90 {p90:6.1f} ms"

    wall, cpu = [w * 1000 for w, _ in runs], [c * 1000 for _, c in runs]
    return f"{name:<28} wall {stats(wall)}   cpu {stats(cpu)}   (n={len(runs)})"


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
    times: dict[str, list[tuple[float, float]]] = {"sandbox": [], "bare": []}
    for _ in range(args.runs):
        times["sandbox"].append(timed(sandboxed))
        times["bare"].append(timed(bare))
    print(f"layers: {', '.join(execute_code('pass').layers)}")
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")
    print(summary("execute_code('print(1)')", times["sandbox"]))
    print(summary("python -I -S -c 'print(1)'", times["bare"]))

if __name__ == "__main__":
    main()
