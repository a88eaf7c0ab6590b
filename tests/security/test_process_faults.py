"""Process faults (issue 12, "Processes"; issue 13, Ctrl-C): a run's processes end when asked, all of
them, and the app says "stopped" only once they have.

The jobs here are tests/helpers/fake_job.py: the orchestrator's real torchrun command line, run by a
torch-free stand-in that starts ranks the way torch does (each in its own session), so a fault takes
seconds to reproduce. tests/engine/test_run_processes.py does the same with real torchrun and
engine.train.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest
from fake_job import fake_orchestrator
from process_helpers import gone, wait_until

from engine.config import TrainConfig
from nanochat_cli.cli import main
from nanochat_cli.services.runs import LaunchSpec, RunDir, run_processes

HELPERS = Path(__file__).resolve().parents[1] / "helpers"
REPO = Path(__file__).resolve().parents[2]






def rank_pids(run_dir: Path, n: int) -> list[int]:
    pids = wait_until(f"{n} rank pid files", lambda: (r := RunDir(run_dir).rank_pids()) and len(r) == n and r)
    return [e["pid"] for e in pids]


def steps_seen(run_dir: Path) -> int:
    path = run_dir / "telemetry.jsonl"
    return path.read_text().count('"event":"step"') if path.exists() else 0


@pytest.fixture
def job(tmp_path, monkeypatch):
    """start(name, **env) -> (orchestrator, run dir, launcher pid, rank pids); everything is killed after."""
    started: list[int] = []

    def start(name: str, nproc: int = 2, **env: str):
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        orch = fake_orchestrator(tmp_path / "base", tmp_path)
        info = orch.start(LaunchSpec(TrainConfig(run=name), nproc_per_node=nproc))
        ranks = rank_pids(info.run_dir, nproc)
        started.extend([info.pid, *ranks])
        wait_until("the first steps", lambda: steps_seen(info.run_dir) >= 2)
        return orch, info.run_dir, info.pid, ranks

    yield start
    for pid in started:  # a failed assert must not leave processes behind
        try:
            p = psutil.Process(pid)
            p.resume()
            p.kill()
        except psutil.Error:
            pass


def test_stop_ends_frozen_ranks_and_only_then_says_stopped(job):
    # before: SIGKILL to the launcher's group missed the ranks (own sessions); "stopped" while both trained on
    orch, run_dir, launcher, ranks = job("frozen", FAKE_DEAF="1")
    for pid in ranks:
        os.kill(pid, signal.SIGSTOP)
    result = orch.stop("frozen", graceful_timeout=1, signal_timeout=1)
    assert result.stopped and result.survivors == ()
    assert all(gone(p) for p in [launcher, *ranks]), "stop said stopped while a process of the run lives"
    assert orch.info("frozen").status != "running"


def test_runs_stop_after_the_launcher_was_killed_ends_the_orphans(job, capsys, tmp_path, monkeypatch):
    # before: kill -9 of the agent left the ranks training; the run read "crashed" and `runs stop` did nothing
    orch, run_dir, launcher, ranks = job("orphans")
    os.kill(launcher, signal.SIGKILL)
    orch.wait("orphans", timeout=10)
    time.sleep(0.5)
    assert not any(gone(p) for p in ranks)  # the fake ranks are not tied to their launcher: orphans now
    assert orch.info("orphans").status == "running"  # not "crashed": processes of the run still train
    assert main(["runs", "list"]) == 0 and "running" in capsys.readouterr().out
    assert main(["runs", "stop", "orphans", "--timeout", "5"]) == 0
    assert capsys.readouterr().out.strip().startswith("run orphans: stopped")
    assert all(gone(p) for p in ranks)
    assert run_processes(RunDir(run_dir)) == []


def test_stop_reports_survivors_instead_of_stopped(job, monkeypatch):
    # a process that outlives SIGKILL (here: the check that it is gone is made to fail) is named, not hidden
    orch, run_dir, launcher, ranks = job("stubborn", nproc=1)
    from nanochat_cli.services.runs import procs

    real = procs._alive
    monkeypatch.setattr(procs, "_alive", lambda p: True if p.pid == ranks[0] else real(p))
    result = orch.stop("stubborn", graceful_timeout=0.2, signal_timeout=0.2, kill_timeout=0.5)
    assert not result.stopped and result.survivors == (ranks[0],)


def test_a_reused_pid_is_not_the_run(tmp_path):
    # run.json names a pid that now belongs to another process (this one): not alive, never signalled
    run = RunDir(tmp_path / "runs" / "old")
    run.path.mkdir(parents=True)
    run.write_record({"name": "old", "pid": os.getpid(), "pgid": os.getpgrp(),
                      "create_time": psutil.Process().create_time() - 3600, "started": time.time() - 3600})
    (run.pids_path).mkdir()
    (run.pids_path / "rank-0.json").write_text(json.dumps({"pid": os.getpid(), "rank": 0, "ticks": 1, "time": 0}))
    assert run_processes(run) == []


DRIVER = textwrap.dedent("""
    import sys
    sys.path.insert(0, {helpers!r})
    from pathlib import Path
    from fake_job import fake_orchestrator
    from engine.config import TrainConfig
    from nanochat_cli.headless import run_headless
    from nanochat_cli.services.runs import LaunchSpec
    tmp = Path({tmp!r})
    orch = fake_orchestrator(tmp / "base", tmp)
    sys.exit(run_headless(orch, LaunchSpec(TrainConfig(run={name!r}, log_every=1), nproc_per_node=2)))
""")


def headless(tmp_path: Path, name: str, **env: str) -> subprocess.Popen:
    code = DRIVER.format(helpers=str(HELPERS), tmp=str(tmp_path), name=name)
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, **env, "PYTHONPATH": str(REPO)}, cwd=tmp_path)


def test_ctrl_c_on_a_piped_train_stops_the_run_even_when_stdout_is_gone(tmp_path):
    # before: the tee died with the Ctrl-C, the first write raised BrokenPipe, the CLI exited and torchrun
    # trained on
    proc = headless(tmp_path, "piped")
    run_dir = tmp_path / "base" / "runs" / "piped"
    ranks = rank_pids(run_dir, 2)
    wait_until("steps", lambda: steps_seen(run_dir) >= 3)
    proc.stdout.close()  # the reader of the pipe is gone
    time.sleep(0.5)
    assert proc.poll() is None, "a broken stdout must not end the follower (nobody could stop the run then)"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    err = err.decode()
    assert "stopping run piped" in err and "run piped stopped" in err
    assert proc.returncode == 0
    assert all(gone(p) for p in ranks)
    assert '"status":"stopped"' in (run_dir / "telemetry.jsonl").read_text()


def test_a_second_ctrl_c_kills_a_run_that_does_not_stop(tmp_path):
    proc = headless(tmp_path, "deaf", FAKE_DEAF="1")
    run_dir = tmp_path / "base" / "runs" / "deaf"
    ranks = rank_pids(run_dir, 2)
    wait_until("steps", lambda: steps_seen(run_dir) >= 3)
    proc.send_signal(signal.SIGINT)
    wait_until("the stop request", lambda: (run_dir / "control.jsonl").exists())
    time.sleep(1.0)
    assert not any(gone(p) for p in ranks)  # deaf: it trains on after the first Ctrl-C
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert time.monotonic() - t0 < 20, "the second Ctrl-C must not wait out the graceful timeout (60 s)"
    assert "killing run deaf" in err.decode()
    assert all(gone(p) for p in ranks)


def test_ctrl_c_on_runs_attach_detaches_and_says_how_to_stop(job, tmp_path):
    orch, run_dir, launcher, ranks = job("watched")
    env = {**os.environ, "NANOCHAT_BASE_DIR": str(tmp_path / "base"), "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "nanochat_cli", "runs", "attach", "watched"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_until("attach to print the history", lambda: proc.stdout.read1(1024))
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert "detached; the run goes on (runs stop watched to stop it)" in err.decode()
    assert "Traceback" not in err.decode()
    assert not any(gone(p) for p in [launcher, *ranks])  # detaching leaves the run alone
    assert orch.stop("watched", graceful_timeout=10).stopped
