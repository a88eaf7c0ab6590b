"""Ingest benchmark: events/s and RSS over 1,000,000 step events; write → store latency at 2,000 events/s.

    python bench/ingest_bench.py [--events 1000000] [--rate 2000] [--seconds 10]

1. Writes N step events with the real TelemetryWriter, then ingests the file through JsonlSource and
   IngestPipeline.pump (the file path the TUI uses), printing events/s and process RSS every N/4 events.
2. Feeds the same kind of lines straight through parse_event → MetricStore.apply (no file), likewise.
3. A separate writer process appends single step events at --rate events/s for --seconds while a
   threaded pipeline tails the file through watchfiles; prints the write → store latency percentiles
   (the event's own `time` to the moment its batch is applied).
Nothing is asserted; memory is flat when the RSS column stops growing after the first checkpoint.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.telemetry import TELEMETRY_FILE, StepEvent, TelemetryWriter, parse_event  # noqa: E402
from nanochat_cli.services.ingest import IngestPipeline, JsonlSource, MetricStore  # noqa: E402

PROC = psutil.Process()


def step_event(i: int, total: int) -> StepEvent:
    return StepEvent(step=i, total=total, loss=3.0 + (i % 97) * 1e-3, smooth_loss=3.0, lr_mult=1.0,
                     muon_momentum=0.95, tokens_per_sec=4.1e5, mfu=0.41, dt=1.27, t_data=0.004, t_fwd_bwd=1.19,
                     t_optim=0.078, mem_bytes=61203423232, tokens_seen=i * 524288, elapsed=i * 1.27,
                     eta=(total - i) * 1.27)


def mib(n: int) -> str:
    return f"{n / 2**20:7.1f} MiB"


def report(label: str, marks: list[tuple[int, float, int]]) -> None:
    print(f"\n{label}")
    print(f"  {'events':>9}  {'RSS':>11}  {'events/s (since last)':>22}")
    prev_n, prev_t = 0, marks[0][1]
    for n, t, rss in marks:
        rate = f"{(n - prev_n) / (t - prev_t):,.0f}" if n > prev_n else "-"
        print(f"  {n:>9,}  {mib(rss)}  {rate:>22}")
        prev_n, prev_t = n, t
    total = marks[-1][0] / (marks[-1][1] - marks[0][1])
    print(f"  overall {total:,.0f} events/s; RSS growth from {marks[1][0]:,} events to the end: "
          f"{mib(marks[-1][2] - marks[1][2]).strip()}")


def file_ingest(run_dir: Path, n: int) -> None:
    t0 = time.perf_counter()
    with TelemetryWriter(run_dir / TELEMETRY_FILE, run="bench") as w:
        for i in range(1, n + 1):
            w.emit(step_event(i, n))
    size = (run_dir / TELEMETRY_FILE).stat().st_size
    print(f"wrote {n:,} step events ({size / 1e6:.0f} MB) in {time.perf_counter() - t0:.1f}s")

    store = MetricStore()
    every = n // 4
    marks = [(0, time.perf_counter(), PROC.memory_info().rss)]
    done = 0

    def on_batch(batch: list) -> None:  # sample RSS between batches, as the events cross each quarter
        nonlocal done
        done += len(batch)
        if done >= len(marks) * every:
            marks.append((done, time.perf_counter(), PROC.memory_info().rss))

    IngestPipeline(JsonlSource(run_dir), store, on_batch=on_batch).pump()
    assert store.count("loss") == n, store.count("loss")
    report("file → JsonlSource → MetricStore (1 MiB reads)", marks)


def direct_ingest(n: int) -> None:
    line = step_event(1, n).model_dump_json()
    head, tail = line.split('"step":1,', 1)
    store = MetricStore()
    every, batch_size = n // 4, 1000
    marks = [(0, time.perf_counter(), PROC.memory_info().rss)]
    for start in range(1, n + 1, batch_size):
        batch = [parse_event(f'{head}"step":{i},{tail}') for i in range(start, min(start + batch_size, n + 1))]
        store.apply(batch)
        done = start + len(batch) - 1
        if done % every == 0:
            marks.append((done, time.perf_counter(), PROC.memory_info().rss))
    assert store.count("loss") == n
    report("parse_event → MetricStore.apply (no file, batches of 1000)", marks)


def _writer(path: str, rate: float, seconds: float, ready: mp.Event) -> None:
    ready.wait()
    n = int(rate * seconds)
    with TelemetryWriter(path, run="bench") as w:
        t0 = time.perf_counter()
        for i in range(1, n + 1):
            delay = t0 + i / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            w.emit(step_event(i, n))


def latency(run_dir: Path, rate: float, seconds: float) -> None:
    run_dir.mkdir(parents=True)
    store, lat, lock = MetricStore(), [], threading.Lock()

    def on_batch(batch: list) -> None:
        now = time.time()
        with lock:
            lat.extend(now - e.time for e in batch)

    pipe = IngestPipeline(JsonlSource(run_dir), store, on_batch=on_batch)
    pipe.start()
    deadline = time.monotonic() + 5
    while pipe.source.health().state != "watching" and time.monotonic() < deadline:
        time.sleep(0.01)
    ready = mp.Event()
    proc = mp.Process(target=_writer, args=(str(run_dir / TELEMETRY_FILE), rate, seconds, ready))
    proc.start()
    ready.set()
    proc.join()
    n = int(rate * seconds)
    deadline = time.monotonic() + 5
    while store.count("loss") < n and time.monotonic() < deadline:
        time.sleep(0.01)
    pipe.stop()
    lat.sort()

    def pct(p: float) -> float:
        return lat[min(len(lat) - 1, int(p / 100 * len(lat)))] * 1000

    print(f"\nwrite → store latency, {rate:,.0f} events/s for {seconds:g}s from another process (watchfiles):")
    print(f"  delivered {len(lat):,}/{n:,}; p50 {pct(50):.1f} ms, p90 {pct(90):.1f} ms, p99 {pct(99):.1f} ms, "
          f"max {lat[-1] * 1000:.1f} ms; store version {store.version:,} (≈ batches applied)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--rate", type=float, default=2000.0)
    ap.add_argument("--seconds", type=float, default=10.0)
    args = ap.parse_args()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, pid {os.getpid()}")
    with tempfile.TemporaryDirectory() as tmp:
        file_ingest(Path(tmp) / "a", args.events)
        direct_ingest(args.events)
        latency(Path(tmp) / "b", args.rate, args.seconds)


if __name__ == "__main__":
    main()
