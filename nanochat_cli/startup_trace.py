"""Start-up phase stamps for bench/startup.py: wall-clock times of the steps from process start to the first
paint. Stamping costs a dict store; the report is written only when the bench asked for it (env hooks)."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

# env hooks for bench/startup.py: exit right after the first paint and report the timing there
BENCH_OUT_ENV, BENCH_T0_ENV = "NANOCHAT_CLI_BENCH_OUT", "NANOCHAT_CLI_BENCH_T0"

STAMPS: dict[str, tuple[float, float]] = {}  # phase -> (wall clock, process CPU time) when it ended


def stamp(phase: str) -> None:
    """Note that `phase` ended now (first stamp of a name wins)."""
    STAMPS.setdefault(phase, (time.time(), time.process_time()))


def bench_requested() -> bool:
    return BENCH_OUT_ENV in os.environ


def write_bench_report() -> None:
    """Write the first paint (the "first paint" stamp) and now (the first tab filled in) in seconds since
    the bench's spawn stamp, the phases in order, CPU time and which heavy modules were imported by now."""
    t0 = float(os.environ[BENCH_T0_ENV])
    now = time.time()
    paint, paint_cpu = STAMPS.get("first paint", (now, time.process_time()))
    report = {"elapsed_s": paint - t0, "paint_cpu_s": paint_cpu, "filled_s": now - t0, "cpu_s": time.process_time(),
              "phases": {name: t - t0 for name, (t, _) in STAMPS.items()},
              "phases_cpu": {name: c for name, (_, c) in STAMPS.items()}}
    report |= {m: m in sys.modules for m in ("torch", "wandb", "opentelemetry")}
    Path(os.environ[BENCH_OUT_ENV]).write_text(json.dumps(report))
