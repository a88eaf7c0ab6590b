"""UI responsiveness while ingesting: key-to-repaint latency, event → panel latency and RSS of the TUI.

    python bench/ui_bench.py [--rate 2000] [--seconds 10] [--presses 150]

The real app runs headless (Textual's run_test) at 120×40 on the Train tab, attached to a run whose
telemetry.jsonl a writer thread in this process appends step events to at --rate events/s (in 10 ms
batches, the way the file grows under a fast trainer). Every frame the compositor produces is also
rendered to terminal escape sequences and dropped (what the terminal driver would write), so frame cost
is counted even without a terminal.

1. key → repaint: press v (next tab, Runs included) --presses times, 100 ms apart, while events stream in;
   latency is from the key entering the app's driver queue to the first frame showing the new tab.
2. event → panel at the default refresh: with the overview tab showing, each time the progress panel
   repaints, the age of the newest step it shows, measured at the frame that puts it on screen
   (written at --rate, then as a trickle of 4 events/s where no batching hides the latency).
3. RSS of the process over the run.
Prints the figures; nothing is asserted. Targets: p99 key → repaint < 50 ms, event → panel < 300 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TMP = tempfile.mkdtemp(prefix="ui-bench-")
os.environ.update(NANOCHAT_CLI_CONFIG_DIR=f"{TMP}/config", NANOCHAT_BASE_DIR=f"{TMP}/base", HOME=f"{TMP}/home",
                  NANOCHAT_CLI_KEYRING="file")

from textual import events  # noqa: E402
from textual._compositor import CompositorUpdate  # noqa: E402

from engine.config import TrainConfig  # noqa: E402
from engine.telemetry import RunStartEvent  # noqa: E402
from nanochat_cli.app import NanochatApp  # noqa: E402
from nanochat_cli.services.config.guardrails import MachineInfo  # noqa: E402
from nanochat_cli.services.secrets import SecretStore  # noqa: E402

RUN = "bench"
TOTAL = 10_000_000
PROC = psutil.Process()


class BenchApp(NanochatApp):
    """The app, recording when each frame is produced and which Train tab it shows."""

    frames: list[tuple[float, str | None]]

    def _display(self, screen, renderable) -> None:
        if isinstance(renderable, CompositorUpdate):
            renderable.render_segments(self.console)  # the escape sequences a terminal would receive
            tabs = screen.query("#train-tabs") if screen is self.screen else []
            self.frames.append((time.perf_counter(), tabs.first().active if tabs else None))
        super()._display(screen, renderable)


class Writer(threading.Thread):
    """Appends step events at `rate` per second in 10 ms batches; remembers when each step was written."""

    def __init__(self, path: Path, rate: float, first_step: int):
        super().__init__(daemon=True)
        self.path, self.rate, self.step = path, rate, first_step
        self.written: dict[int, float] = {}
        self.stop_flag = threading.Event()

    def line(self, step: int) -> str:
        return json.dumps({"v": 1, "event": "step", "time": time.time(), "run": RUN, "step": step, "total": TOTAL,
                           "loss": 3.0 + (step % 97) * 1e-3, "smooth_loss": 3.0, "lr_mult": 1.0, "muon_momentum": 0.95,
                           "tokens_per_sec": 4.1e5, "mfu": 0.41, "dt": 1.27, "t_data": 0.004, "t_fwd_bwd": 1.19,
                           "t_optim": 0.078, "mem_bytes": 61203423232, "tokens_seen": step * 524288,
                           "elapsed": step * 1.27, "eta": 100.0}) + "\n"

    def run(self) -> None:
        t0, done = time.perf_counter(), 0
        with open(self.path, "a", encoding="utf-8") as f:
            while not self.stop_flag.is_set():
                due = int((time.perf_counter() - t0) * self.rate) - done
                if due > 0:
                    steps = range(self.step + 1, self.step + 1 + due)
                    f.write("".join(self.line(s) for s in steps))
                    f.flush()
                    now = time.perf_counter()
                    for s in steps:
                        self.written[s] = now
                    self.step += due
                    done += due
                time.sleep(0.01 if self.rate > 100 else 0.001)


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q / 100 * (len(xs) - 1))))]


def summary(label: str, ms: list[float]) -> str:
    return (f"{label}: n={len(ms)}  p50 {pct(ms, 50):.1f} ms  p90 {pct(ms, 90):.1f} ms  p99 {pct(ms, 99):.1f} ms  "
            f"max {max(ms):.1f} ms  mean {statistics.fmean(ms):.1f} ms")


def setup_run() -> Path:
    run_dir = Path(TMP) / "base" / "runs" / RUN
    run_dir.mkdir(parents=True)
    start = RunStartEvent(run=RUN, config=TrainConfig(run=RUN).model_dump(), world_size=8, device="cuda",
                          dtype="bfloat16", num_params=560_000_000, num_flops_per_token=3.4e9, num_iterations=TOTAL,
                          tokens_per_step=524288, engine_version="bench", pid=os.getpid(), run_dir=str(run_dir))
    (run_dir / "telemetry.jsonl").write_text(start.model_dump_json() + "\n")
    # the job's process is this one: the run counts as alive, as while a real job trains
    (run_dir / "run.json").write_text(json.dumps({"name": RUN, "pid": os.getpid(), "started": time.time(),
                                                  "nnodes": 1, "command": "torchrun -m engine.train"}))
    return run_dir


async def wait(cond, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError("bench: the app did not get there in time")
        await asyncio.sleep(0.005)


def panel_latencies(app: BenchApp, paints: list[tuple[float, int]], written: dict[int, float],
                    since: float) -> list[float]:
    """For each progress-panel paint after `since`: frame time that showed it − write time of its step."""
    frame_times = [t for t, _ in app.frames]
    out, j = [], 0
    for t_paint, step in paints:
        if t_paint < since or step not in written:
            continue
        while j < len(frame_times) and frame_times[j] < t_paint:
            j += 1
        if j < len(frame_times):
            out.append((frame_times[j] - written[step]) * 1000)
    return out


async def bench(rate: float, seconds: float, presses: int) -> None:
    run_dir = setup_run()
    app = BenchApp(machine=MachineInfo(cpu_count=os.cpu_count() or 1, ram_total_bytes=1, ram_free_bytes=1),
                   secrets=SecretStore(file_dir=Path(TMP) / "secrets"), online_checks=False)
    app.frames = []
    rss: list[tuple[float, int]] = []
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("2")
        screen = app.screen
        await wait(lambda: screen.views is not None and screen.views.panels_in_view())
        await pilot.pause(0.5)
        progress = screen.query_one("#panel-progress")
        paints: list[tuple[float, int]] = []
        paint = progress.paint

        def recorded_paint() -> None:
            step = progress.store.run_state().step  # read first: the paint shows at least this step
            paint()
            paints.append((time.perf_counter(), step))

        progress.paint = recorded_paint

        async def sample_rss() -> None:
            while True:
                rss.append((time.perf_counter(), PROC.memory_info().rss))
                await asyncio.sleep(0.5)

        sampler = asyncio.create_task(sample_rss())
        writer = Writer(run_dir / "telemetry.jsonl", rate, first_step=0)
        t_start = time.perf_counter()
        writer.start()
        await asyncio.sleep(1.0)  # the stream is flowing

        # 1. key → repaint while ingesting
        key_ms: list[float] = []
        tabs = screen.views.tabs
        views = [p.id for p in tabs.query("TabPane")]
        for _ in range(presses):
            expected = views[(views.index(tabs.active) + 1) % len(views)]
            t0 = time.perf_counter()
            app._driver.send_message(events.Key("v", "v"))
            await wait(lambda t0=t0, expected=expected: any(t > t0 and a == expected for t, a in app.frames[-5:]))
            t1 = next(t for t, active in app.frames if t > t0 and active == expected)
            key_ms.append((t1 - t0) * 1000)
            await asyncio.sleep(0.1)

        # 2a. event → panel at full rate, overview showing
        tabs.active = views[0]
        await asyncio.sleep(0.5)
        since = time.perf_counter()
        await asyncio.sleep(seconds)
        fast = panel_latencies(app, paints, writer.written, since)
        events_fast = writer.step
        elapsed = time.perf_counter() - t_start
        writer.stop_flag.set()
        writer.join()

        # 2b. a trickle: 4 events/s, no batching to hide behind
        await asyncio.sleep(1.0)
        trickle = Writer(run_dir / "telemetry.jsonl", 4, first_step=writer.step)
        since = time.perf_counter()
        trickle.start()
        await asyncio.sleep(5.0)
        trickle.stop_flag.set()
        trickle.join()
        await asyncio.sleep(0.5)
        slow = panel_latencies(app, paints, trickle.written, since)
        ingested = screen.live.store.count("loss")
        malformed = screen.live.store.snapshot().counters.malformed
        sampler.cancel()

    print(f"ui bench: 120×40 headless, Train tab, default layout; writer {rate:,.0f} events/s for {elapsed:.1f} s "
          f"({events_fast:,} step events written, {ingested:,} ingested, {malformed} malformed)")
    print(summary("key → repaint (v, next tab) while ingesting", key_ms))
    print(summary(f"event → progress panel on screen at {rate:,.0f} events/s (default 5 Hz)", fast))
    print(summary("event → progress panel on screen at 4 events/s", slow))
    mib = [r / 2**20 for _, r in rss]
    quarters = "  ".join(f"{mib[min(len(mib) - 1, len(mib) * q // 4)]:.1f}" for q in range(5))
    print(f"RSS (MiB) at 0/25/50/75/100% of the run: {quarters}; max {max(mib):.1f} ({len(mib)} samples)")
    ok_keys, ok_panel = pct(key_ms, 99) < 50, max(pct(fast, 99), pct(slow, 99)) < 300
    print(f"targets: p99 key → repaint < 50 ms: {'met' if ok_keys else 'MISSED'}; "
          f"event → panel < 300 ms (p99): {'met' if ok_panel else 'MISSED'}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=float, default=2000.0, help="step events per second written")
    ap.add_argument("--seconds", type=float, default=10.0, help="seconds of the event → panel phase at full rate")
    ap.add_argument("--presses", type=int, default=150, help="key presses measured")
    args = ap.parse_args()
    asyncio.run(bench(args.rate, args.seconds, args.presses))


if __name__ == "__main__":
    main()
