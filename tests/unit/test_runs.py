"""services/runs: the run dir, the status model, the liveness check, command lines, the follower, LiveRun."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time

import pytest
from train_screen_helpers import run_events, write_run

from engine.config import TrainConfig, parse_config
from engine.control import CONTROL_FILE
from engine.telemetry import TELEMETRY_FILE, TelemetryReader, TelemetryWriter
from nanochat_cli.cli import main
from nanochat_cli.errors import AppError
from nanochat_cli.services.config.prefabs import PrefabStore
from nanochat_cli.services.ingest import MetricStore
from nanochat_cli.services.ingest.eta import EtaEstimator
from nanochat_cli.services.runs import (
    DEFAULT_HUNG_AFTER_S,
    HUNG_KEY,
    LaunchSpec,
    RunDir,
    RunOrchestrator,
    RunsRoot,
    RunSummary,
    classify,
    dotted_config,
    pid_alive,
    preview_commands,
    run_processes,
    spec_from_resolved,
)
from nanochat_cli.services.runs.follow import Follower
from nanochat_cli.services.runs.live import LiveRun
from nanochat_cli.services.text import printable

# ---- the run dir ----------------------------------------------------------------------------------------

def test_run_dir_names_its_files_as_the_engine_does(tmp_path):
    run = RunDir(tmp_path / "r")
    assert run.telemetry_path.name == TELEMETRY_FILE and run.control_path.name == CONTROL_FILE
    assert not run.exists() and run.record() == {} and run.config() == {}
    run.path.mkdir()
    assert not run.is_run()
    run.write_record({"pid": 1})
    assert run.is_run() and run.record() == {"pid": 1}
    assert run.update_record(exit_code=0) == {"pid": 1, "exit_code": 0}
    run.record_path.write_text('{"pid": ')  # torn
    assert run.record() == {}
    run.record_path.write_text("[" * 100_000)
    assert run.record() == {}
    run.write_config({"run": "r", "depth": 4})
    assert run.config() == {"run": "r", "depth": 4}
    run.pids_path.mkdir()
    (run.pids_path / "rank-0.json").write_text(json.dumps({"pid": 123, "rank": 0}))
    (run.pids_path / "rank-1.json").write_text("junk")
    (run.pids_path / "rank-2.json").write_text(json.dumps({"pid": -4}))
    assert [e["pid"] for e in run.rank_pids()] == [123]
    run.clear_rank_pids()
    assert run.rank_pids() == []


def test_runs_root_finds_names_and_the_newest(tmp_path):
    root = RunsRoot(tmp_path / "runs")
    assert root.newest() is None and root.unique_name("demo") == "demo"
    for name, started in (("demo", 10.0), ("demo-2", 30.0), ("other", 20.0)):
        RunDir(root.path / name).write_record({"started": started})
    (root.path / "stray").mkdir()
    assert root.unique_name("demo") == "demo-3" and root.newest() == "demo-2"
    with pytest.raises(AppError, match="no such run"):
        root.get("ghost")
    with pytest.raises(AppError, match="not a run name"):
        root.get("../demo")


# ---- status ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("alive, end, launched, quiet, expected", [
    (True, None, True, 10.0, "running"),
    (True, None, True, 301.0, "hung"),
    (True, "finished", True, 1.0, "running"),  # run_end written, a process still exiting
    (False, "finished", True, None, "finished"),
    (False, "failed", True, None, "failed"),
    (False, None, True, None, "crashed"),
    (False, None, False, None, "unknown"),
])
def test_classify(alive, end, launched, quiet, expected):
    summary = RunSummary(end_status=end)
    assert classify(alive=alive, summary=summary, launched=launched, quiet_s=quiet,
                    hung_after_s=DEFAULT_HUNG_AFTER_S) == expected


def test_info_reads_status_from_files_and_processes(tmp_path):
    base = tmp_path / "base"
    orch = RunOrchestrator(base)
    write_run(base, "done", run_events("done"))
    assert orch.info("done").status == "finished" and orch.info("done").step == 60
    now = time.time()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    write_run(base, "died", run_events("died", steps=30, end=None), {"pid": dead.pid, "started": now})
    assert orch.info("died").status == "crashed"
    # this test process stands in for a live job; quiet for 500 s against its own 400 s threshold
    write_run(base, "quiet", run_events("quiet", steps=30, end=None, t0=now - 530),
              {"pid": os.getpid(), "started": now - 530, "hung_after_s": 400})
    info = orch.info("quiet")
    assert info.status == "hung" and info.hung_after_s == 400 and info.pids == [os.getpid()]
    RunDir(base / "runs" / "quiet").update_record(hung_after_s=600)
    assert orch.info("quiet").status == "running"
    assert [r.name for r in orch.list_runs()][:2] == ["died", "quiet"]  # newest first


def test_the_hung_threshold_is_one_config_field_carried_to_the_record(tmp_path):
    resolved = PrefabStore().resolve("cpu-tiny")
    assert resolved[HUNG_KEY] == DEFAULT_HUNG_AFTER_S
    spec = spec_from_resolved({**resolved, HUNG_KEY: 42.0})
    assert spec.hung_after_s == 42.0
    assert dotted_config({"depth": 4}, 42.0) == {"model.depth": 4, HUNG_KEY: 42.0}


# ---- liveness -------------------------------------------------------------------------------------------

def test_pid_alive_says_no_to_zombies_and_junk():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and pid_alive(child.pid):  # exited, not reaped: a zombie
        time.sleep(0.05)
    assert not pid_alive(child.pid)
    child.wait()
    assert pid_alive(os.getpid())
    for junk in (None, 0, -1, True, "12", 1.5):
        assert not pid_alive(junk)


def test_run_processes_finds_ranks_and_their_children(tmp_path):
    run = RunDir(tmp_path / "r")
    run.path.mkdir()
    rank = subprocess.Popen([sys.executable, "-c", "import subprocess, sys, time; "
                             "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
                             "time.sleep(60)"])
    try:
        from engine.lifeline import start_ticks

        run.pids_path.mkdir()
        (run.pids_path / "rank-0.json").write_text(json.dumps({"pid": rank.pid, "ticks": start_ticks(rank.pid)}))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(run_processes(run)) < 2:
            time.sleep(0.05)
        procs = run_processes(run)
        assert len(procs) == 2 and rank.pid in [p.pid for p in procs]  # the rank and its child
    finally:
        for p in run_processes(run):
            p.kill()
        rank.wait()


# ---- command lines ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("prefab", ["cpu-tiny", "cpu-small", "$10", "$100", "$1000"])
def test_preview_commands_carry_the_whole_config(prefab):
    spec = spec_from_resolved(PrefabStore().resolve(prefab))
    for line in preview_commands(spec):
        argv = shlex.split(line)
        assert argv[0] == "torchrun" and "--config" not in argv  # nothing to write first
        assert parse_config(argv[argv.index("--") + 1:]) == spec.config


def test_runs_command_prints_a_line_that_runs_as_is(capsys):
    # before: `--config runs/d24/config.yaml`, a relative path that was never written
    assert main(["runs", "command", "--prefab", "$100"]) == 0
    (line,) = capsys.readouterr().out.strip().splitlines()
    argv = shlex.split(line)
    assert "config.yaml" not in line
    assert parse_config(argv[argv.index("--") + 1:]).depth == 24
    assert main(["runs", "command", "--prefab", "cpu-tiny", "--set", "hardware.nnodes=2",
                 "hardware.rdzv_endpoint=node0:29500", "training.total_batch_size=8192"]) == 0
    out = capsys.readouterr().out
    assert "# node 0" in out and "# node 1" in out and "--node_rank=1" in out


# ---- following ------------------------------------------------------------------------------------------

def test_the_follower_reads_from_an_offset_and_words_events_as_the_store(tmp_path, monkeypatch):
    base = tmp_path / "base"
    events = run_events("f", steps=60)
    write_run(base, "f", events[:30])
    orch = RunOrchestrator(base)
    f = Follower(orch, "f", log_every=10)
    lines, steps = f.poll()
    assert [s.split(" |")[0] for s in steps] == ["step 00010/00060", "step 00020/00060"]
    offset = f.reader.offset
    assert f.poll() == ([], []) and f.reader.offset == offset  # nothing new: nothing read
    with TelemetryWriter(base / "runs" / "f" / TELEMETRY_FILE, run="f") as w:
        for ev in events[30:]:
            w.emit(ev)
    more, _ = f.poll()
    store = MetricStore()
    store.apply(TelemetryReader(base / "runs" / "f" / TELEMETRY_FILE).read_new())
    logged = [e.message for e in store.log()]
    printed = [ln.text.split(": ", 1)[1] if ln.text.startswith("step ") else ln.text for ln in lines + more]
    for message in logged:  # the Events panel's words, in the follower's lines
        assert any(message in p for p in printed), message
    assert f.ended() == 0 and f.summary.end_status == "finished"

    import nanochat_cli.services.runs.orchestrator as orch_mod

    def no_replay(*a, **k):
        raise AssertionError("the follower's status must not replay the file")

    monkeypatch.setattr(orch_mod, "TelemetryReader", no_replay)
    assert f.info().status == "finished"


def test_eta_says_estimating_until_it_has_measured():
    # before: at step 1 the ETA was the first step's time (warm-up included) times the steps left
    eta = EtaEstimator()
    eta.add(1, 30.0)  # step 1: warm-up and compilation
    assert eta.eta(100) is None
    eta.add(2, 32.0)
    eta.add(3, 34.0)
    assert eta.eta(100) is None  # 2 steps timed
    eta.add(4, 36.0 + 12.0)  # an eval between steps 3 and 4 counts too
    assert eta.eta(100) == pytest.approx((48.0 - 30.0) / 3 * 96)
    eta.add(1, 5.0)  # a resumed process: its clock starts over
    assert eta.eta(100) is None


# ---- LiveRun ---------------------------------------------------------------------------------------------

def test_live_run_sends_requests_through_the_orchestrator(tmp_path, monkeypatch):
    base = tmp_path / "base"
    write_run(base, "live", run_events("live", steps=10, end=None), {"pid": os.getpid(), "started": time.time()})
    orch = RunOrchestrator(base)
    sent = []
    real = orch.request

    def spy(name, kind, changes=None):
        sent.append((name, kind, changes))
        return real(name, kind, changes)

    monkeypatch.setattr(orch, "request", spy)
    live = LiveRun(orch, "live", sources=[])
    rid = live.request("patch", {"lr_scale": 0.5})
    assert sent == [("live", "patch", {"lr_scale": 0.5})] and live.pending == {rid: "patch"}
    assert json.loads((base / "runs" / "live" / CONTROL_FILE).read_text())["id"] == rid
    assert live.alive() and live.liveness(time.time()).status in ("starting", "running")
    assert live.config()[HUNG_KEY] == DEFAULT_HUNG_AFTER_S


def test_printable_spells_out_control_characters():
    assert printable("a\x1b[2Jb\x07\r\u202e") == "a\\x1b[2Jb\\x07\\r\\u202e"
    assert printable("one\ntwo\tx", newlines=False, tabs=False) == "one⏎ two x"
    assert printable("x[/]") == "x[/]"


def test_launch_spec_default_threshold():
    assert LaunchSpec(TrainConfig()).hung_after_s == DEFAULT_HUNG_AFTER_S


def test_a_record_that_cannot_prove_its_pid_is_never_signalled(tmp_path):
    # an older run.json (no create_time) naming a pid that now belongs to something else: alive for the
    # status, but `stop` must not kill what it cannot prove is the run's
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        write_run(tmp_path / "base", "legacy", run_events("legacy", steps=5, end=None, t0=time.time()),
                  {"pid": other.pid, "pgid": other.pid, "started": time.time()})
        orch = RunOrchestrator(tmp_path / "base")
        assert orch.info("legacy").status == "running"
        result = orch.stop("legacy", graceful_timeout=0.1, signal_timeout=0.1, kill_timeout=0.3)
        assert not result.stopped and result.survivors == (other.pid,)
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()
