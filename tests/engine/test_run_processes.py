"""Real torchrun: a rank dies with its launcher, and `runs stop` ends every process of a real run.

The first test is quick (a torch-free worker under the real torchrun agent) and runs by default; the
others train engine.train on two CPU ranks and are marked slow.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from engine_assets import build_assets, tiny_overrides
from process_helpers import gone, wait_until

from nanochat_cli.cli import main
from nanochat_cli.services.runs import RunDir, RunOrchestrator, run_processes, spec_from_resolved

ROOT = Path(__file__).resolve().parents[2]
WORKER = """
import os, sys, time
from engine.lifeline import record_pid, tie_to_launcher
tie_to_launcher()
record_pid(sys.argv[1], int(os.environ["RANK"]))
while True:
    time.sleep(0.1)
"""






def kill_all(pids) -> None:
    for pid in pids:
        try:
            p = psutil.Process(pid)
            p.resume()
            p.kill()
        except psutil.Error:
            pass


@pytest.mark.parametrize("how", ["agent", "group"])
def test_ranks_die_when_the_torchrun_agent_is_killed(tmp_path, how):
    # before: torch starts each worker in its own session; kill -9 of the agent (or of its process group)
    # left both ranks running
    (tmp_path / "worker.py").write_text(WORKER)
    run_dir = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    agent = subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                              str(tmp_path / "worker.py"), str(run_dir)], env=env, start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ranks: list[int] = []
    try:
        entries = wait_until("both ranks", lambda: len(r := RunDir(run_dir).rank_pids()) == 2 and r)
        ranks = [e["pid"] for e in entries]
        if how == "agent":
            os.kill(agent.pid, signal.SIGKILL)
        else:
            os.killpg(agent.pid, signal.SIGKILL)
        agent.wait(10)
        wait_until("the ranks to die with their launcher", lambda: all(gone(p) for p in ranks), timeout=10)
    finally:
        kill_all([agent.pid, *ranks])


# ---- real training --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def assets(tmp_path_factory) -> dict[str, str]:
    return build_assets(tmp_path_factory.mktemp("assets"))


def start_real(tmp_path: Path, assets, name: str) -> tuple[RunOrchestrator, Path, int, list[int]]:
    from nanochat_cli.services.config.prefabs import PrefabStore

    orch = RunOrchestrator(tmp_path / "base")
    resolved = PrefabStore().resolve("cpu-tiny", tiny_overrides(assets, name))
    info = orch.start(spec_from_resolved(resolved))
    run = RunDir(info.run_dir)
    entries = wait_until("both ranks", lambda: len(r := run.rank_pids()) == 2 and r, 120)
    ranks = [e["pid"] for e in entries]
    wait_until("training steps", lambda: run.telemetry_path.exists()
               and run.telemetry_path.read_text().count('"event":"step"') >= 3, 180)
    return orch, info.run_dir, info.pid, ranks


@pytest.mark.slow
def test_killing_the_agent_of_a_real_run_ends_its_ranks(tmp_path, assets):
    # before: 80 more steps in 5 s from the orphans, writing into the same checkpoint dir
    orch, run_dir, agent, ranks = start_real(tmp_path, assets, "orphan")
    try:
        os.kill(agent, signal.SIGKILL)
        orch.wait("orphan", timeout=30)
        wait_until("the ranks to die", lambda: all(gone(p) for p in ranks), timeout=15)
        size = (run_dir / "telemetry.jsonl").stat().st_size
        time.sleep(1.0)
        assert (run_dir / "telemetry.jsonl").stat().st_size == size  # nobody trains on
        assert orch.info("orphan").status == "crashed"
    finally:
        kill_all([agent, *ranks])


@pytest.mark.slow
def test_runs_stop_on_frozen_real_ranks_ends_them_before_saying_stopped(tmp_path, assets, monkeypatch, capsys):
    # before: `runs stop --timeout 5` said "stopped" while both SIGSTOP'ed ranks lived on
    monkeypatch.setenv("NANOCHAT_BASE_DIR", str(tmp_path / "base"))
    orch, run_dir, agent, ranks = start_real(tmp_path, assets, "frozen")
    try:
        for pid in ranks:
            os.kill(pid, signal.SIGSTOP)
        assert main(["runs", "stop", "frozen", "--timeout", "5"]) == 0
        assert "run frozen: stopped" in capsys.readouterr().out
        assert all(gone(p) for p in [agent, *ranks])
        assert run_processes(RunDir(run_dir)) == []
    finally:
        kill_all([agent, *ranks])
        orch.wait("frozen", timeout=10)
