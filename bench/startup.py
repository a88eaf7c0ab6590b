"""Start-up benchmark: time from process start to the TUI's first paint, in a real pseudo-terminal.

Each run starts a fresh Python process on an 80×24 pty with NANOCHAT_CLI_BENCH_OUT set; the app writes
the elapsed time (measured from the wall-clock stamp taken just before the process was spawned) right
after its first screen refresh, the start-up phases on the way (nanochat_cli/startup_trace.py), plus
whether torch / wandb / opentelemetry were imported by then, and exits. Fresh temp config and base dirs,
so the first screen is the Config tab of a first start. Runs alternate with a bare Textual app (header,
footer, five tabs: bench/startup_bare.py) so the baseline sees the same machine load.

    python bench/startup.py            # 10 runs of each
    python bench/startup.py -n 20 --limit 1.0
    python bench/startup.py --repo ../main   # another checkout's app (before/after), same bare baseline
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import pty
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# the `nanochat-cli` entry point with no command: the CLI parses its (empty) arguments and opens the TUI
LAUNCH = ["-c", "import sys; from nanochat_cli.cli import main; sys.exit(main([]))"]
BARE = [str(REPO / "bench" / "startup_bare.py")]


def _drain(fd: int) -> None:
    """Read the app's terminal output so it never blocks on a full pty buffer."""
    try:
        while os.read(fd, 65536):
            pass
    except OSError:
        pass  # EIO once the child side closes


def one_run(tmp: Path, i: int, launch: list[str], repo: Path = REPO, timeout: float = 30.0) -> dict:
    out = tmp / f"paint-{i}.json"
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "80", "LINES": "24",
           "NANOCHAT_CLI_CONFIG_DIR": str(tmp / f"config-{i}"), "NANOCHAT_BASE_DIR": str(tmp / "base"),
           "NANOCHAT_CLI_BENCH_OUT": str(out)}
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    reader = threading.Thread(target=_drain, args=(master,), daemon=True)
    reader.start()
    env["NANOCHAT_CLI_BENCH_T0"] = repr(time.time())
    proc = subprocess.Popen([sys.executable, *launch], cwd=repo, env=env, stdin=slave, stdout=slave,
                            stderr=slave, start_new_session=True)
    os.close(slave)
    try:
        proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
        reader.join(timeout=2)
    if not out.exists():
        raise SystemExit(f"run {i}: the app exited (code {proc.returncode}) without reporting a first paint")
    return json.loads(out.read_text())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", "--runs", type=int, default=10)
    ap.add_argument("--limit", type=float, default=1.0, help="fail if the median exceeds this many seconds")
    ap.add_argument("--repo", type=Path, default=REPO, help="checkout whose app to start (default: this one)")
    args = ap.parse_args()
    results, bare = [], []
    with tempfile.TemporaryDirectory() as d:
        for i in range(args.runs):
            results.append(one_run(Path(d), 2 * i, LAUNCH, args.repo.resolve()))
            bare.append(one_run(Path(d), 2 * i + 1, BARE))
    times = sorted(r["elapsed_s"] for r in results)
    bare_median = statistics.median(r["elapsed_s"] for r in bare)
    cpu = sorted(r["cpu_s"] for r in results)
    p90 = times[min(len(times) - 1, round(0.9 * (len(times) - 1)))]
    heavy = sorted({m for r in results for m in ("torch", "wandb", "opentelemetry") if r.get(m)})
    print(f"first paint over {len(times)} runs: median {statistics.median(times):.3f} s, p90 {p90:.3f} s, "
          f"min {times[0]:.3f} s, max {times[-1]:.3f} s")
    print(f"bare Textual app (header, footer, five tabs), same rounds: median {bare_median:.3f} s; "
          f"nanochat-cli - bare = {statistics.median(times) - bare_median:+.3f} s")
    paint_cpu = statistics.median(r.get("paint_cpu_s", r["cpu_s"]) for r in results)
    print(f"CPU time of the process at first paint: median {paint_cpu:.3f} s"
          f" (bare: {statistics.median(r['paint_cpu_s'] for r in bare):.3f} s); less load-sensitive than wall time")
    print("phases (median seconds since spawn, wall / process CPU; each phase ends at its stamp):")
    names = list(dict.fromkeys(n for r in results for n in r.get("phases", {})))
    for name in names:
        values = [r["phases"][name] for r in results if name in r.get("phases", {})]
        cpu_values = [r["phases_cpu"][name] for r in results if name in r.get("phases_cpu", {})]
        print(f"  {name:<44} {statistics.median(values):.3f} / {statistics.median(cpu_values):.3f}")
    print(f"first tab filled in (Config content on screen, services loaded): median "
          f"{statistics.median(r.get('filled_s', r['elapsed_s']) for r in results):.3f} s")
    print(f"CPU time of the app process at exit (first tab filled): median {statistics.median(cpu):.3f} s "
          f"(wall time above includes interpreter start and waits for a busy machine)")
    print(f"torch imported at first paint: {any(r['torch'] for r in results)}; "
          f"heavy modules loaded: {', '.join(heavy) or 'none'}")
    ok = not heavy and statistics.median(times) <= args.limit
    print("OK" if ok else f"FAIL (limit {args.limit:.2f} s, no heavy imports allowed)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
