"""From Enter to the first training step on screen: `nanochat-cli train --prefab cpu-tiny`, and where the time goes.

    python bench/train_startup.py [-n 3] [--mode tui headless] [--limit 6]

Each run starts the real command in a fresh process in a 100×40 pseudo-terminal, as the TUI (what a
terminal gets by default) or with --headless, against one scratch NANOCHAT_BASE_DIR whose embedded
corpus and tokenizer were built by a first run (its time is printed too: what a brand-new machine pays
once). The clock starts just before the process is spawned. Phases:

    cli        Enter → the app has launched torchrun (run.json's start stamp)
    launcher   torchrun's own start-up until it has started rank 0 (rank 0's process start, Linux)
    imports    rank 0: Python + torch + engine imports
    setup      distributed init, data, tokenizer, model, optimizer, loader (rank 0's run_start stamps)
    step 1     first batch, forward, backward, optimizer step: the `step` event is written
    on screen  the terminal shows step 1: "1/<total>" in the app's status line, or in headless's progress bar

Nothing is asserted; --limit only marks medians above it.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import pty
import re
import select
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PHASES = ["cli", "launcher", "imports", "setup", "step 1", "on screen"]


def _kill_group(pgid: int | None) -> None:
    if not pgid:
        return
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _events(run_dir: Path) -> list[dict]:
    path = run_dir / "telemetry.jsonl"
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            break  # a line being written
    return out


def one_run(base: Path, name: str, mode: str, timeout: float = 180.0) -> dict:
    """Launch, wait for step 1 on screen, kill everything; return the phase boundaries (seconds from spawn)."""
    env = {**os.environ, "NANOCHAT_BASE_DIR": str(base), "TERM": "xterm-256color", "COLUMNS": "100", "LINES": "40",
           "NANOCHAT_CLI_CONFIG_DIR": str(base / "config")}
    argv = [sys.executable, "-m", "nanochat_cli", "train", "--prefab", "cpu-tiny", "--name", name]
    if mode == "headless":
        argv.append("--headless")
    # both in a pseudo-terminal: what a person at a terminal sees (headless draws a live progress bar there)
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 100, 0, 0))
    t0 = time.time()
    proc = subprocess.Popen(argv, cwd=REPO, env=env, stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
    os.close(slave)
    os.set_blocking(master, False)
    run_dir = base / "runs" / name
    screen, seen, step_event, run_pgid = b"", None, None, None
    try:
        while time.time() - t0 < timeout:
            ready, _, _ = select.select([master], [], [], 0.02)
            if ready:
                try:
                    chunk = os.read(master, 1 << 16)
                except OSError:
                    chunk = b""
                screen = (screen + chunk)[-200_000:]
            if run_pgid is None and (run_dir / "run.json").exists():
                try:
                    run_pgid = json.loads((run_dir / "run.json").read_text()).get("pgid")
                except json.JSONDecodeError:
                    pass
            if step_event is None:
                step_event = next((e for e in _events(run_dir) if e["event"] == "step"), None)
            if step_event is not None and seen is None:
                total = step_event["total"]
                if re.search(rb"\b1/%d\b" % total, screen):
                    seen = time.time()
                    break
            if proc.poll() is not None and step_event is None:
                raise SystemExit(f"{mode} run {name} exited ({proc.returncode}) before step 1:\n"
                                 f"{screen[-2000:].decode(errors='replace')}")
        else:
            raise SystemExit(f"{mode} run {name}: no step 1 on screen within {timeout:.0f} s")
    finally:
        _kill_group(run_pgid)
        _kill_group(proc.pid)
        proc.wait(timeout=30)
        os.close(master)
    record = json.loads((run_dir / "run.json").read_text())
    start = next(e for e in _events(run_dir) if e["event"] == "run_start")
    stamps = start.get("startup", {})
    marks = {"cli": record["started"]}
    if "process" in stamps:
        marks["launcher"] = stamps["process"]
    marks["imports"] = stamps.get("imports", start["time"])
    marks["setup"] = stamps.get("loader", start["time"])
    marks["step 1"] = step_event["time"]
    marks["on screen"] = seen
    out, prev = {}, t0
    for phase in PHASES:
        if phase in marks:
            out[phase] = marks[phase] - prev
            prev = marks[phase]
    out["total"] = seen - t0
    out["detail"] = {k: round(v - stamps.get("process", record["started"]), 3) for k, v in stamps.items()}
    out["step_dt"] = step_event["dt"]
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-n", "--runs", type=int, default=3)
    p.add_argument("--mode", nargs="+", choices=["tui", "headless"], default=["tui", "headless"])
    p.add_argument("--limit", type=float, default=6.0, help="target for the median total (marked, not asserted)")
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        first = one_run(base, "first", "headless", timeout=900)
        print(f"first run on a fresh base dir (builds the embedded corpus and tokenizer): {first['total']:.1f} s "
              "to step 1")
        for mode in a.mode:
            runs = [one_run(base, f"{mode}-{i}", mode) for i in range(a.runs)]
            print(f"\n== {mode}: seconds per phase (median of {a.runs}; each run's in brackets)")
            for phase in [*PHASES, "total"]:
                vals = [r[phase] for r in runs if phase in r]
                if vals:
                    mark = "  > limit" if phase == "total" and statistics.median(vals) > a.limit else ""
                    each = ", ".join(f"{v:.2f}" for v in vals)
                    print(f"  {phase:<10} {statistics.median(vals):6.2f}   [{each}]{mark}")
            print(f"  rank 0 stamps from its process start (last run): {runs[-1]['detail']}")
            print(f"  step 1 compute (its dt): {statistics.median(r['step_dt'] for r in runs):.2f} s")


if __name__ == "__main__":
    main()
