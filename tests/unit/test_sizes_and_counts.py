"""Sizes in one unit everywhere: the event log's checkpoint line and the Checkpoints tab say the same MiB."""

from engine.telemetry import TELEMETRY_FILE, TelemetryWriter
from nanochat_cli.formatting import count, file_size
from nanochat_cli.services.ingest import MetricStore
from nanochat_cli.services.ingest.pipeline import IngestPipeline
from nanochat_cli.services.ingest.sources import JsonlSource


def test_bytes_are_binary_and_counts_si():
    assert [file_size(n) for n in (512, 1536, 121_634_816, 3 << 30)] == ["512 B", "1.5 KiB", "116.0 MiB", "3.0 GiB"]
    assert [count(n) for n in (None, 300, 16_384, 7_340_032, 2_500_000_000)] == ["-", "300", "16.4K", "7.3M", "2.5B"]


def start(world_size: int) -> dict:
    return dict(config={"run": "r"}, world_size=world_size, device="cpu", dtype="float32", num_params=1234,
                num_flops_per_token=7e3, num_iterations=10, tokens_per_step=4096, engine_version="0.1.0", pid=1,
                run_dir="/r")


def checkpoint_line(tmp_path, world_size: int) -> str:
    run_dir = tmp_path / f"w{world_size}"
    run_dir.mkdir()
    with TelemetryWriter(run_dir / TELEMETRY_FILE, run="r") as w:
        w.emit("run_start", **start(world_size))
        w.emit("checkpoint", step=10, path="/ck/model_000010.pt", reason="final", seconds=0.5, bytes=79_167_488)
    store = MetricStore()
    IngestPipeline(JsonlSource(run_dir), store).pump()
    return next(e.message for e in store.log() if e.kind == "checkpoint")


def test_the_checkpoint_event_line_uses_mib_and_says_whose_files_it_counts(tmp_path):
    assert checkpoint_line(tmp_path, 1) == "checkpoint (final) step 10: 75.5 MiB in 0.5s: /ck/model_000010.pt"
    assert checkpoint_line(tmp_path, 2) == ("checkpoint (final) step 10: 75.5 MiB by rank 0 in 0.5s: "
                                            "/ck/model_000010.pt")
