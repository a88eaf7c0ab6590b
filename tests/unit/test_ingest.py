"""Telemetry ingest: real telemetry files through JsonlSource/IngestPipeline into the MetricStore."""

import math
import os
import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest

from engine.sinks import SinkStatusEvent
from engine.telemetry import TELEMETRY_FILE, TelemetryWriter
from nanochat_cli.services.ingest import (
    MetricPoint,
    MetricStore,
    RunFeed,
    Series,
    SystemProbe,
    SystemSource,
    minmax_decimate,
)
from nanochat_cli.services.ingest.pipeline import IngestPipeline
from nanochat_cli.services.ingest.sources import JsonlSource
from nanochat_cli.services.ingest.store import MAX_SERIES
from nanochat_cli.services.registry import Registry


def step(i, total=1000, **kw):
    fields = dict(step=i, total=total, loss=4.0 - i * 1e-3, smooth_loss=4.1 - i * 1e-3, lr_mult=1.0,
                  muon_momentum=0.95, tokens_per_sec=1e5, mfu=None, dt=0.2, t_data=0.01, t_fwd_bwd=0.15,
                  t_optim=0.04, mem_bytes=1 << 30, tokens_seen=i * 4096, elapsed=i * 0.2, eta=(total - i) * 0.2)
    return fields | kw


RUN_START = dict(config={"run": "r", "wandb": "offline", "wandb_project": "nano", "otel_endpoint": "http://c:4318"},
                 world_size=2, device="cpu", dtype="float32", num_params=1234, num_flops_per_token=7e3,
                 num_iterations=1000, tokens_per_step=4096, engine_version="0.1.0", pid=1, run_dir="/r")


@pytest.fixture
def run_dir(tmp_path):
    d = tmp_path / "runs" / "r"
    d.mkdir(parents=True)
    return d


def pump(run_dir, store=None, **kw):
    store = store or MetricStore()
    p = IngestPipeline(JsonlSource(run_dir, **kw), store)
    return store, p, p.pump()


def test_every_event_kind_lands_in_the_store(run_dir):
    with TelemetryWriter(run_dir / TELEMETRY_FILE, run="r") as w:
        w.emit("run_start", **RUN_START)
        for i in range(1, 11):
            w.emit("step", **step(i))
        w.emit("eval", step=10, val_bpb=1.5)
        w.emit("sample", step=10, prompt="The sky is", text=" blue")
        w.emit("checkpoint", step=10, path="/ck/model_000010.pt", reason="request", seconds=0.5, bytes=2_000_000)
        w.emit("control_ack", request_id="abc", kind="patch", ok=False, message="not hot-patchable: depth", step=10)
        w.emit("warning", message="loss spike")
        w.emit("error", message="RuntimeError: boom", step=10)
        w.emit("run_end", status="failed", reason="RuntimeError: boom", step=10, elapsed=2.0)
    store, _, n = pump(run_dir)
    assert n == 18
    snap = store.snapshot()
    assert snap.counters.events == 18 and snap.counters.by_kind["step"] == 10 and snap.counters.malformed == 0
    r = snap.run
    assert (r.run, r.status, r.step, r.total, r.world_size) == ("r", "failed", 10, 1000, 2)
    assert r.reason == "RuntimeError: boom"
    assert r.tokens_seen == 10 * 4096 and r.last_checkpoint == "/ck/model_000010.pt" and r.error == "RuntimeError: boom"
    assert snap.latest["loss"] == pytest.approx(3.99) and snap.latest["val_bpb"] == 1.5
    assert "mfu" not in snap.latest  # null in every step: no series
    xs, ys = store.window("loss")
    assert xs.tolist() == list(range(1, 11)) and ys[-1] == pytest.approx(3.99)
    assert [s.text for s in store.samples()] == [" blue"]
    assert store.ack("abc").ok is False and store.ack("nope") is None
    assert [(e.kind, e.level) for e in store.log()] == [
        ("run_start", "info"), ("eval", "info"), ("checkpoint", "info"), ("control_ack", "warn"), ("warning", "warn"),
        ("error", "error"), ("run_end", "error")]
    assert (store.log()[1].step, store.log()[1].message) == (10, "val bpb 1.5000")
    assert "not hot-patchable: depth" in store.log()[3].message
    assert snap.sources["jsonl"].malformed == 0


def test_partial_last_line_waits_for_its_newline(run_dir):
    path = run_dir / TELEMETRY_FILE
    with TelemetryWriter(path, run="r") as w:
        w.emit("step", **step(1))
    line = (path.read_bytes().splitlines(keepends=True)[0]).replace(b'"step":1,', b'"step":2,')
    with open(path, "ab") as f:
        f.write(line[:40])  # the writer died mid-line, or is still writing
    source = JsonlSource(run_dir)
    assert [e.step for e in source.read_available()] == [1]
    assert source.read_available() == []
    with open(path, "ab") as f:
        f.write(line[40:])
    assert [e.step for e in source.read_available()] == [2]
    assert source.health().malformed == 0


def test_malformed_lines_are_counted_and_skipped(run_dir):
    path = run_dir / TELEMETRY_FILE
    with TelemetryWriter(path, run="r") as w:
        w.emit("step", **step(1))
    with open(path, "a") as f:
        f.write("{not json\n")
        f.write('{"v":1,"event":"step","time":1.0,"run":"r","step":"two"}\n')
        f.write('{"v":1,"event":"teleport","time":1.0,"run":"r"}\n')
        f.write("\n")
    with TelemetryWriter(path, run="r") as w:
        w.emit("step", **step(2))
    store, _, n = pump(run_dir)
    snap = store.snapshot()
    assert n == 2 and snap.counters.events == 2
    assert snap.counters.malformed == 3 and snap.sources["jsonl"].malformed == 3
    assert "unknown event 'teleport'" in snap.counters.last_error
    assert store.window("loss")[0].tolist() == [1, 2]


def test_replay_on_attach_and_in_small_chunks(run_dir):
    with TelemetryWriter(run_dir / TELEMETRY_FILE, run="r") as w:
        w.emit("run_start", **RUN_START)
        for i in range(1, 301):
            w.emit("step", **step(i))
        w.emit("sample", step=300, prompt="p", text="x" * 5000)  # one line longer than a chunk
        w.emit("step", **step(301))
    for chunk in (1 << 20, 700):
        batches = []
        store = MetricStore()
        p = IngestPipeline(JsonlSource(run_dir, chunk_bytes=chunk), store, on_batch=batches.append)
        assert p.pump() == 303
        assert store.count("loss") == 301 and store.run_state().step == 301
        assert store.samples()[0].text == "x" * 5000
        if chunk == 700:
            assert len(batches) > 100  # ~2 lines per read: memory per read stays small
        else:
            assert len(batches) == 1


def test_replaced_file_resets_the_store(run_dir):
    path = run_dir / TELEMETRY_FILE
    with TelemetryWriter(path, run="old") as w:
        for i in range(1, 51):
            w.emit("step", **step(i))
    store, p, _ = pump(run_dir)
    assert store.count("loss") == 50
    path.unlink()
    with TelemetryWriter(path, run="new") as w:
        w.emit("step", **step(1))
    assert p.pump() == 1
    assert store.count("loss") == 1 and store.snapshot().sources["jsonl"].restarts == 1


def test_versions_tell_panels_what_changed(run_dir):
    store = MetricStore()
    v0 = store.version
    with TelemetryWriter(run_dir / TELEMETRY_FILE, run="r") as w:
        w.emit("step", **step(1))
    _, p, _ = pump(run_dir, store)
    assert store.changed(["loss"], v0) and store.changed(["run"], v0)
    assert not store.changed(["samples", "log", "val_bpb"], v0)
    v1 = store.version
    store.append("sys.cpu_percent", time.time(), 12.0)
    assert store.changed(["sys.*"], v1) and not store.changed(["loss", "run"], v1)


def test_ring_buffers_and_logs_are_bounded():
    store = MetricStore(capacity=64, log_size=10, samples_size=3, acks_size=5)
    events = [SimpleNamespace(event="warning", message=f"w{i}", time=float(i)) for i in range(1000)]
    events += [SimpleNamespace(event="sample", step=i, prompt="p", text=str(i), time=1.0) for i in range(10)]
    events += [SimpleNamespace(event="control_ack", request_id=str(i), kind="patch", ok=True, message="m", step=i,
                               applied={}, time=1.0) for i in range(20)]
    store.apply(events)
    store.apply(MetricPoint("loss", i, float(i)) for i in range(10_000))
    xs, ys = store.window("loss")
    assert len(xs) == 64 and xs.tolist() == list(range(10_000 - 64, 10_000))
    assert store.count("loss") == 10_000
    assert len(store.decimate("loss", 1000)) <= 64  # whole history from the envelope: capacity // 2 buckets × 2
    assert len(store.log()) == 10 and {e.kind for e in store.log()} == {"control_ack"}  # the newest 10
    assert [s.text for s in store.samples()] == ["7", "8", "9"]
    assert store.ack("19") is not None and store.ack("14") is None
    store.apply(MetricPoint(f"m{i}", 0, 0.0) for i in range(MAX_SERIES + 10))
    assert len(store.series_names()) == MAX_SERIES and store.snapshot().counters.dropped_series == 11


def test_decimation_keeps_the_spike_and_the_dip():
    rng = np.random.default_rng(0)
    ys = 3.0 + 0.01 * rng.standard_normal(100_000)
    ys[61_234], ys[7_777], ys[500] = 50.0, -5.0, math.nan
    pts = minmax_decimate(np.arange(len(ys)), ys, 80)
    assert len(pts) <= 160
    assert (61_234.0, 50.0) in pts and (7_777.0, -5.0) in pts
    assert all(math.isfinite(y) for _, y in pts)
    assert [x for x, _ in pts] == sorted(x for x, _ in pts)
    assert minmax_decimate([1, 2, 3], [1.0, 2.0, 3.0], 80) == [(1.0, 1.0), (2.0, 2.0), (3.0, 3.0)]


def test_whole_run_envelope_keeps_extremes_past_the_ring():
    s = Series(capacity=128)
    rng = np.random.default_rng(1)
    ys = rng.standard_normal(200_003)
    ys[123_456] = 40.0
    ys[5] = -30.0
    for x, y in enumerate(ys):
        s.append(float(x), float(y))
    hx, hy = s.history()
    assert len(hx) <= 128 and np.all(np.diff(hx) >= 0)
    assert (123_456.0, 40.0) in zip(hx.tolist(), hy.tolist(), strict=True)
    assert (5.0, -30.0) in zip(hx.tolist(), hy.tolist(), strict=True)
    assert hx[0] < 5_000 and hx[-1] > 190_000  # spans the whole run (to within a bucket)


def test_store_decimate_windows_and_nan():
    store = MetricStore(capacity=256)
    store.apply(MetricPoint("loss", i, 2.0) for i in range(1000))
    store.apply([MetricPoint("loss", 1000, math.nan)])
    assert store.latest("loss") != store.latest("loss")  # the NaN is the latest value...
    assert all(y == 2.0 for _, y in store.decimate("loss", 10, last=50))  # ...but never drawn
    assert store.decimate("missing", 10) == []


def test_sink_status_from_config_then_from_engine_reports(run_dir):
    path = run_dir / TELEMETRY_FILE
    with TelemetryWriter(path, run="r") as w:
        w.emit("run_start", **RUN_START)
    store, p, _ = pump(run_dir)
    sinks = store.snapshot().sinks
    assert sinks["wandb"].state == "configured" and "offline" in sinks["wandb"].detail
    assert "nano" in sinks["wandb"].detail and sinks["wandb"].heartbeat is None
    assert sinks["otel"].state == "configured" and "http://c:4318" in sinks["otel"].detail
    # the engine's sinks report their health (engine/sinks.py); a report beats what the config implies
    with TelemetryWriter(path, run="r") as w:
        w.emit(SinkStatusEvent(sink="wandb", ok=True, detail="online", url="https://wandb.ai/me/nano/runs/abc",
                               time=123.0))
        w.emit(SinkStatusEvent(sink="otel", ok=False, detail="ConnectionError: collector down", time=124.0))
    assert p.pump() == 2
    snap = store.snapshot()
    assert snap.counters.malformed == 0 and snap.counters.by_kind["sink_status"] == 2
    wb, ot = snap.sinks["wandb"], snap.sinks["otel"]
    assert (wb.state, wb.url, wb.heartbeat) == ("ok", "https://wandb.ai/me/nano/runs/abc", 123.0)
    assert (ot.state, ot.detail) == ("down", "ConnectionError: collector down")
    assert store.log()[-1].level == "warn" and "otel: down" in store.log()[-1].message
    with TelemetryWriter(path, run="r") as w:  # heartbeats without a change are not logged again
        w.emit(SinkStatusEvent(sink="wandb", ok=True, detail="online", time=150.0))
    p.pump()
    assert store.snapshot().sinks["wandb"].heartbeat == 150.0 and len(store.log()) == 3
    assert store.snapshot().sinks["wandb"].url == "https://wandb.ai/me/nano/runs/abc"  # kept from before


def test_pipeline_thread_delivers_a_write_within_300ms_via_watchfiles(run_dir):
    path = run_dir / TELEMETRY_FILE
    writer = TelemetryWriter(path, run="r")
    writer.emit("run_start", **RUN_START)
    store, arrived = MetricStore(), threading.Event()
    latencies = []

    def on_batch(batch):
        latencies.extend(time.time() - e.time for e in batch if getattr(e, "event", "") == "step")
        if latencies:
            arrived.set()

    # poll_s=5: only the file watcher can deliver this fast
    p = IngestPipeline(JsonlSource(run_dir, poll_s=5.0), store, on_batch=on_batch)
    p.start()
    try:
        deadline = time.monotonic() + 3
        while store.snapshot().sources["jsonl"].state != "watching" and time.monotonic() < deadline:
            time.sleep(0.01)
        assert store.run_state().run == "r"  # replayed on attach
        for i in range(1, 4):
            arrived.clear()
            latencies.clear()
            writer.emit("step", **step(i))
            assert arrived.wait(1.0), "step event not delivered"
            assert latencies[0] < 0.3
        assert store.count("loss") == 3
    finally:
        p.stop()
        writer.close()
    assert store.snapshot().sources["jsonl"].state == "stopped"


def test_pipeline_waits_for_a_run_dir_that_does_not_exist_yet(tmp_path):
    run_dir = tmp_path / "later"
    store, got = MetricStore(), threading.Event()
    p = IngestPipeline(JsonlSource(run_dir, poll_s=0.1), store, on_batch=lambda b: b and got.set())
    p.start()
    try:
        time.sleep(0.2)
        with TelemetryWriter(run_dir / TELEMETRY_FILE, run="r") as w:
            w.emit("step", **step(1))
        assert got.wait(2.0)
        assert store.count("loss") == 1
    finally:
        p.stop()


def test_a_failing_consumer_does_not_stop_ingest(run_dir):
    path = run_dir / TELEMETRY_FILE
    store, calls, got = MetricStore(), [], threading.Event()

    def on_batch(batch):
        if not batch:
            return  # only the source's health changed
        calls.append(len(batch))
        if len(calls) == 1:
            raise RuntimeError("panel bug")
        got.set()

    with TelemetryWriter(path, run="r") as w:
        w.emit("step", **step(1))
    src = JsonlSource(run_dir, poll_s=0.1)
    p = IngestPipeline(src, store, on_batch=on_batch)
    p.start()
    try:
        time.sleep(0.3)
        with TelemetryWriter(path, run="r") as w:
            w.emit("step", **step(2))
        assert got.wait(2.0)
        assert store.count("loss") == 2 and src.health().last_error == "RuntimeError: panel bug"
    finally:
        p.stop()


def test_system_probe_without_a_gpu_reports_cpu_and_ram():
    probe = SystemProbe()
    r = probe.read()
    if probe.backend == "psutil":
        assert probe.backend_note.startswith("no GPU readings") or probe.backend_note.startswith("CPU only")
        assert r["gpu_count"] == 0
    assert 0 <= r["cpu_percent"] <= 100 * os.cpu_count() and 0 < r["ram_used"] < r["ram_total"]
    store = MetricStore()
    src = SystemSource(interval_s=60, probe=probe)
    IngestPipeline(src, store).pump()
    assert store.latest("sys.ram_total") == r["ram_total"]
    assert src.read_available() == []  # not due again for 60 s


class _NvmlStandIn:
    """pynvml's API for one GPU, for the NVML code path on machines without one."""

    NVML_TEMPERATURE_GPU = 0

    def __init__(self):
        self.shut = False

    def nvmlInit(self): ...
    def nvmlShutdown(self): self.shut = True
    def nvmlDeviceGetCount(self): return 1
    def nvmlDeviceGetHandleByIndex(self, i): return f"h{i}"
    def nvmlDeviceGetName(self, h): return b"NVIDIA H100 80GB HBM3"
    def nvmlDeviceGetUtilizationRates(self, h): return SimpleNamespace(gpu=87, memory=40)
    def nvmlDeviceGetMemoryInfo(self, h): return SimpleNamespace(used=60e9, total=80e9, free=20e9)
    def nvmlDeviceGetTemperature(self, h, sensor): return 71
    def nvmlDeviceGetPowerUsage(self, h): raise RuntimeError("NVMLError_NotSupported")


def test_system_probe_nvml_path():
    nv = _NvmlStandIn()
    probe = SystemProbe(nvml=nv)
    r = probe.read()
    assert probe.backend == "nvml" and probe.gpu_names == ["NVIDIA H100 80GB HBM3"]
    assert (r["gpu_count"], r["gpu0.util"], r["gpu0.mem_used"], r["gpu0.temp"]) == (1, 87, 60e9, 71)
    assert "gpu0.power_w" not in r and "cpu_percent" in r  # unsupported reading left out; CPU always there
    probe.close()
    assert nv.shut


def test_run_feed_builds_registered_sources_and_reports_bad_ones(run_dir):
    from nanochat_cli.services.ingest import register_builtin_sources

    reg = Registry()
    register_builtin_sources(reg)
    reg.register_telemetry_source("broken", lambda d: 1 / 0)
    with TelemetryWriter(run_dir / TELEMETRY_FILE, run="r") as w:
        w.emit("step", **step(1))
    feed = RunFeed(run_dir, sources=("jsonl", "system", "broken", "nope"), registry=reg)
    assert [p.source.name for p in feed.pipelines] == ["jsonl", "system"]
    assert feed.errors[0] == ("broken", "ZeroDivisionError: division by zero")
    assert feed.errors[1][0] == "nope" and "use one of jsonl, system, broken" in feed.errors[1][1]
    assert feed.pump() > 1
    assert feed.store.count("loss") == 1 and feed.store.latest("sys.ram_total") > 0
