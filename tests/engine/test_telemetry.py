"""Telemetry protocol: every event round-trips, the writer appends and flushes, the reader tails safely."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from engine.errors import EngineError
from engine.telemetry import (
    EVENT_TYPES,
    SCHEMA_VERSION,
    ErrorEvent,
    EventParseError,
    NewerSchemaError,
    StepEvent,
    TelemetryReader,
    TelemetryWriter,
    parse_event,
)

STEP = dict(step=7, total=100, loss=3.25, smooth_loss=3.5, lr_mult=0.9, muon_momentum=0.95,
            tokens_per_sec=1.5e5, mfu=None, dt=0.2, t_data=0.01, t_fwd_bwd=0.15, t_optim=0.04,
            mem_bytes=123456789, tokens_seen=7 * 4096, elapsed=1.4, eta=18.6)

# one full set of fields per event
FIELDS = {
    "sink_status": dict(sink="wandb", ok=True, detail="offline run in /tmp/x", url=None),
    "run_start": dict(config={"depth": 4, "run": "r"}, world_size=2, device="cpu", dtype="float32",
                      num_params=1234, num_flops_per_token=7.4e3, num_iterations=100, tokens_per_step=4096,
                      engine_version="0.1.0", pid=42, run_dir="/tmp/runs/r", resumed_from_step=None,
                      startup={"process": 1.0e9, "imports": 1.0e9 + 1.2, "loader": 1.0e9 + 1.4}, stage="sft"),
    "step": STEP,
    "eval": dict(step=50, val_bpb=1.23, val_loss=None),
    "sample": dict(step=50, prompt="The capital of France is", text=" Paris, \"quoted\"\nnewline ünïcode"),
    "checkpoint": dict(step=100, path="/tmp/ck/model_000100.pt", reason="final", seconds=1.5, bytes=10_000),
    "control_ack": dict(request_id="abc", kind="patch", ok=True, message="applied lr_scale", step=12,
                        applied={"lr_scale": 0.5}),
    "warning": dict(message="loss spike"),
    "error": dict(message="RuntimeError: boom", traceback="Traceback...\n  boom\n", step=3),
    "run_end": dict(status="stopped", reason="stop requested", step=12, elapsed=3.5),
    "rollout": dict(step=3, prompts=4, k=8, reward_mean=0.25, reward_std=0.4, pass_at_k={"1": 0.25, "8": 0.75},
                    mean_len=41.5, max_len=96, tool_call_rate=0.5,
                    samples=[{"prompt": "2+3?", "response": "5", "reward": 1.0}]),
    "eval_result": dict(suite="core", task="mc-generated", metric="accuracy", value=0.4, n=100, baseline=0.25,
                        centered=0.2, step=200, checkpoint="/tmp/ck/model_000200.pt"),
    "plugin": dict(plugin="megacontext", kind="lod", step=5, data={"map": "0012", "resident": 3}),
}


def test_every_event_type_is_covered():
    assert set(FIELDS) == set(EVENT_TYPES)


def test_round_trip_every_event(tmp_path):
    path = tmp_path / "telemetry.jsonl"
    with TelemetryWriter(path, run="r1") as w:
        written = [w.emit(name, **fields) for name, fields in FIELDS.items()]
    lines = path.read_text().splitlines()
    assert len(lines) == len(FIELDS)
    for line, ev, (name, fields) in zip(lines, written, FIELDS.items(), strict=True):
        back = parse_event(line)
        assert back == ev
        assert type(back) is EVENT_TYPES[name]
        assert back.event == name and back.run == "r1" and back.v == SCHEMA_VERSION
        assert back.model_dump(exclude={"v", "event", "time", "run"}) == fields
        assert abs(back.time - ev.time) < 1e-6


def test_nan_and_inf_stay_valid_json():
    ev = StepEvent(run="r", **{**STEP, "loss": float("nan"), "smooth_loss": float("inf")})
    line = ev.model_dump_json()
    json.loads(line, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    back = parse_event(line)
    assert math.isnan(back.loss) and back.smooth_loss == math.inf


def test_parse_errors_are_clear_value_errors():
    with pytest.raises(EventParseError, match="not valid JSON"):
        parse_event('{"event": "step", ')
    with pytest.raises(EventParseError, match="expected a JSON object"):
        parse_event("[1, 2]")
    with pytest.raises(EventParseError, match="unknown event 'bogus'"):
        parse_event('{"v": 1, "event": "bogus", "time": 1, "run": "r"}')
    with pytest.raises(EventParseError, match=r"eval\.val_bpb"):
        parse_event('{"v": 1, "event": "eval", "time": 1, "run": "r", "step": 1, "val_bpb": "high"}')
    # a newer writer: refused as such, even for an event this reader has never heard of
    with pytest.raises(NewerSchemaError, match="upgrade"):
        parse_event('{"v": 2, "event": "eval", "time": 1, "run": "r", "step": 1, "val_bpb": 1.0}')
    with pytest.raises(NewerSchemaError):
        parse_event('{"v": 2, "event": "brand_new", "time": 1, "run": "r"}')
    assert issubclass(EventParseError, ValueError)


def test_additive_fields_are_ignored_by_readers():
    ev = parse_event('{"v": 1, "event": "eval", "time": 1, "run": "r", "step": 1, "val_bpb": 1.0, "new": 5}')
    assert ev.val_bpb == 1.0


def test_writer_rejects_bad_events(tmp_path):
    w = TelemetryWriter(tmp_path / "t.jsonl", run="r")
    with pytest.raises(EngineError, match="unknown event"):
        w.emit("stepp", **STEP)
    with pytest.raises(EngineError, match=r"unknown fields \['los'\]"):
        w.emit("eval", step=1, val_bpb=1.0, los=2)
    with pytest.raises(EngineError, match=r"step\.loss"):
        w.emit("step", **{**STEP, "loss": "x"})
    with pytest.raises(EngineError, match=r"message"):
        w.emit("error", message="two\nlines")
    with pytest.raises(EngineError, match="checkpoint.reason"):
        w.emit("checkpoint", **{**FIELDS["checkpoint"], "reason": "whim"})
    w.close()
    assert (tmp_path / "t.jsonl").read_text() == ""
    with pytest.raises(EngineError, match="closed"):
        w.emit("warning", message="late")


def test_writer_flushes_each_line_and_appends(tmp_path):
    path = tmp_path / "runs" / "r" / "telemetry.jsonl"
    reader = TelemetryReader(path)
    assert reader.read_new() == []  # not there yet
    w = TelemetryWriter(path, run="r")
    w.emit("warning", message="first")
    assert [e.message for e in reader.read_new()] == ["first"]  # visible while the writer is still open
    w.emit(StepEvent(**STEP))  # a model without run gets the writer's
    (ev,) = reader.read_new()
    assert ev.run == "r" and ev.step == 7
    w.close()
    with TelemetryWriter(path, run="r") as w2:  # a resumed run appends
        w2.emit("eval", step=8, val_bpb=1.0)
    assert [e.event for e in TelemetryReader(path).read_new()] == ["warning", "step", "eval"]


def test_disabled_writer_writes_nothing(tmp_path):
    path = tmp_path / "sub" / "telemetry.jsonl"
    w = TelemetryWriter(path, run="r", enabled=False)
    assert w.emit("step", **STEP) is None
    w.close()
    assert not path.exists() and not path.parent.exists()


def test_error_from_exception():
    try:
        raise RuntimeError("CUDA out of memory.\nTried to allocate 2 GiB")
    except RuntimeError as e:
        ev = ErrorEvent.from_exception(e, step=5)
    assert ev.message == "RuntimeError: CUDA out of memory."
    assert "Tried to allocate" in ev.traceback and "Traceback" in ev.traceback and ev.step == 5


def test_reader_partial_line_malformed_and_replay(tmp_path):
    path = tmp_path / "telemetry.jsonl"
    w = TelemetryWriter(path, run="r")
    w.emit("eval", step=1, val_bpb=2.0)
    line = StepEvent(run="r", **STEP).model_dump_json() + "\n"
    with open(path, "a") as f:
        f.write("not json\n")
        f.write('{"v": 1, "event": "eval", "time": 1, "run": "r", "step": 1}\n')  # missing val_bpb
        f.write("\n")
        f.write(line[:40])  # a writer caught mid-line
    r = TelemetryReader(path)
    assert [e.event for e in r.read_new()] == ["eval"]
    assert r.malformed == 2 and "val_bpb" in r.last_error
    assert r.read_new() == []  # the half line is never parsed
    with open(path, "a") as f:
        f.write(line[40:])
    (ev,) = r.read_new()
    assert ev.step == 7 and r.malformed == 2
    r.replay()
    assert [e.event for e in r.read_new()] == ["eval", "step"] and r.malformed == 2
    # the file replaced by a shorter one: start over
    path.write_text(line)
    assert [e.event for e in r.read_new()] == ["step"] and r.restarts == 1
    w.close()


def test_protocol_modules_do_not_import_torch():
    code = "import sys, engine.telemetry, engine.control; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.strip() == "False"


def test_protocol_doc_examples_are_valid():
    from engine.control import ControlRequest

    doc = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text()
    lines = [ln for ln in doc.splitlines() if ln.startswith('{"v":')]
    events = [parse_event(ln) for ln in lines if '"event":' in ln]
    assert {e.event for e in events} == set(EVENT_TYPES)
    requests = [ControlRequest.model_validate_json(ln) for ln in lines if '"event":' not in ln]
    assert [r.kind for r in requests] == ["patch"]
