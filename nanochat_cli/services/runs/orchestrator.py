"""Run orchestrator: turn a `LaunchSpec` into a torchrun job, start it, steer it, find it again.

Plain Python (no Textual): the Train tab, `nanochat-cli train` and `runs …` all call it. Steering goes
through one path, `request()` (the control channel: save_now, patch, stop); `stop()` then makes sure
every process of the run is gone (procs.Terminator) before it says so.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.control import send_request
from engine.telemetry import TelemetryReader
from nanochat_cli.services.compute import trainer_threads
from nanochat_cli.services.runs.launch import LaunchSpec, build_command, display_command, secret_env
from nanochat_cli.services.runs.procs import Terminator, create_time, run_processes
from nanochat_cli.services.runs.rundir import RunDir, RunsRoot
from nanochat_cli.services.runs.status import FAILED, RunInfo, RunSummary, classify, hung_after

REPO_ROOT = Path(__file__).resolve().parents[3]  # the job must find `engine` from any working directory


@dataclass(frozen=True)
class StopResult:
    """How a stop ended: `survivors` are pids still alive after SIGKILL (then it did not stop)."""

    name: str
    exit_code: int | None
    survivors: tuple[int, ...] = ()
    was_running: bool = True

    @property
    def stopped(self) -> bool:
        return not self.survivors


class RunOrchestrator:
    """Starts, stops and inspects training runs under `<base>/runs/`."""

    def __init__(self, base: Path, python: str = sys.executable):
        self.base = Path(base)
        self.runs = RunsRoot(self.base / "runs")
        self.runs_dir = self.runs.path
        self.python = python
        self._procs: dict[str, subprocess.Popen] = {}

    # ---- launch -----------------------------------------------------------------------------------
    def prepare(self, spec: LaunchSpec, resume: bool = False) -> tuple[LaunchSpec, RunDir]:
        """Choose the run dir (suffixing a taken name unless resuming) and write config.yaml there."""
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        cfg = spec.config
        name = cfg.run if resume else self.runs.unique_name(cfg.run)
        fields = type(cfg).model_fields  # stage configs (eval) may have no resume or model_tag
        updates: dict[str, Any] = {"run": name, "base_dir": str(self.base)}
        if "resume" in fields:
            updates["resume"] = resume or cfg.resume
        if "model_tag" in fields and getattr(cfg, "model_tag", None) in (None, cfg.run):
            updates["model_tag"] = name
        cfg = cfg.model_copy(update=updates)
        run = RunDir(self.runs_dir / name)
        run.path.mkdir(parents=True, exist_ok=True)
        run.write_config(cfg.model_dump())
        return LaunchSpec(cfg, spec.nproc_per_node, spec.nnodes, spec.node_rank, spec.rdzv_endpoint,
                          spec.hung_after_s, spec.module, spec.stage), run

    def start(self, spec: LaunchSpec, resume: bool = False, env: dict[str, str] | None = None) -> RunInfo:
        spec, run = self.prepare(spec, resume=resume)
        argv = build_command(spec, run.config_path, self.python)
        child_env = {**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"}
        child_env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), child_env.get("PYTHONPATH")) if p)
        child_env.setdefault("OMP_NUM_THREADS", str(trainer_threads(spec.nproc_per_node)))
        run.clear_rank_pids()
        with open(run.stdout_path, "ab") as out, open(run.stderr_path, "ab") as err:
            proc = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=child_env,
                                    cwd=run.path, start_new_session=True)
        self._procs[spec.config.run] = proc
        run.write_record({"name": spec.config.run, "pid": proc.pid, "pgid": proc.pid,
                          "create_time": create_time(proc.pid), "command": display_command(spec, run.config_path),
                          "argv": argv, "started": time.time(), "nproc_per_node": spec.nproc_per_node,
                          "nnodes": spec.nnodes, "resume": resume, "hung_after_s": spec.hung_after_s,
                          "module": spec.module, "stage": spec.stage, "exit_code": None})
        return self.info(spec.config.run)

    def launch(self, spec: LaunchSpec, secrets: Any = None) -> RunInfo:
        """Start `spec` (resuming when its config says so) with the secrets it needs in its environment."""
        return self.start(spec, resume=bool(getattr(spec.config, "resume", False)),
                          env=secret_env(spec.config, secrets))

    def wait(self, name: str, timeout: float | None = None) -> int | None:
        """Wait for a job this orchestrator started; records its exit code. None on timeout."""
        proc = self._procs.get(name)
        if proc is None:
            return None
        try:
            code = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        self._record_exit(name, code)
        return code

    def poll(self, name: str) -> int | None:
        """The launcher's exit code once it exited (jobs this orchestrator started), else None."""
        proc = self._procs.get(name)
        code = proc.poll() if proc else None
        if code is not None:
            self._record_exit(name, code)
        return code

    def exited(self, name: str, summary: RunSummary | None = None) -> int | None:
        """Exit code once every process of the run is gone, also for jobs another process started; else None.

        Without a recorded exit code: 0 after a clean run_end, else 1 (from `summary` when the caller
        follows the telemetry, else from one replay)."""
        self.poll(name)  # reap our own child, if we started it
        run = self.run(name)
        record = run.record()
        if run_processes(run, record):
            return None
        code = record.get("exit_code")
        if isinstance(code, int):
            return code
        status = summary.end_status if summary is not None else self.info(name).status
        return 0 if status in ("finished", "stopped") else 1

    def _record_exit(self, name: str, code: int) -> None:
        run = RunDir(self.runs_dir / name)
        if run.record().get("exit_code") is None:
            run.update_record(exit_code=code, ended=time.time())

    # ---- steer (the one control path) -------------------------------------------------------------
    def request(self, name: str, kind: str, changes: dict[str, Any] | None = None) -> str:
        """Send save_now / patch / stop over the control channel; returns the request id its ack carries."""
        return send_request(self.run(name).path, kind, changes)

    def save_now(self, name: str) -> str:
        return self.request(name, "save_now")

    def patch(self, name: str, changes: dict[str, Any]) -> str:
        return self.request(name, "patch", changes)

    def terminator(self, name: str) -> Terminator:
        run = self.run(name)
        return Terminator(run, run.record(), reap=lambda: self.poll(name))

    def stop(self, name: str, graceful_timeout: float = 60.0, signal_timeout: float = 10.0,
             terminator: Terminator | None = None, kill_timeout: float = 10.0) -> StopResult:
        """Ask nicely (save, exit); then SIGINT, SIGTERM, SIGKILL after timeouts, to every process of the run.

        Returns once every process is gone, or with the `survivors` that outlived SIGKILL. Pass a
        `terminator` (from `terminator(name)`) to escalate from another thread."""
        run = self.run(name)
        term = terminator or Terminator(run, run.record(), reap=lambda: self.poll(name))
        if not term.alive():
            return StopResult(name, self.exited(name), was_running=False)
        try:
            self.request(name, "stop")
        except OSError:  # a full disk or a read-only run dir must not keep the signals from coming
            graceful_timeout = 0.0
        survivors = term.run_stages(graceful_timeout, signal_timeout, kill_timeout)
        code = self.poll(name) if name in self._procs else run.record().get("exit_code")
        return StopResult(name, code, tuple(survivors))

    # ---- inspect ----------------------------------------------------------------------------------
    def run(self, name: str) -> RunDir:
        return self.runs.get(name)

    def run_dir(self, name: str) -> Path:
        return self.run(name).path

    def info(self, name: str, events: Iterable[Any] | None = None, summary: RunSummary | None = None) -> RunInfo:
        """Status from run.json, the run's processes and its telemetry (replayed once, unless a follower
        passes the `summary` it keeps)."""
        run = self.run(name)
        self.poll(name)
        record = run.record()
        if summary is None:
            summary = RunSummary()
            reader = TelemetryReader(run.telemetry_path)
            summary.extend(reader.read_new() if events is None else events)
        procs = run_processes(run, record)
        started = record.get("started") if isinstance(record.get("started"), int | float) else None
        last = summary.last_event_time or started
        quiet = time.time() - last if last is not None else None
        threshold = hung_after(record)
        status = classify(alive=bool(procs), summary=summary, launched=bool(record.get("pid")), quiet_s=quiet,
                          hung_after_s=threshold)
        error = summary.error
        if status == FAILED and not error:
            error = summary.end_reason or None
        exit_code = record.get("exit_code") if isinstance(record.get("exit_code"), int) else None
        return RunInfo(name=name, run_dir=run.path, status=status, pid=record.get("pid"), step=summary.step,
                       total=summary.total, loss=summary.loss, val_bpb=summary.val_bpb, started=started,
                       elapsed=summary.elapsed, error=error, exit_code=exit_code, command=record.get("command", ""),
                       hung_after_s=threshold, pids=sorted(p.pid for p in procs), record=record)

    def list_runs(self) -> list[RunInfo]:
        runs = [self.info(d.name) for d in self.runs.dirs()]
        return sorted(runs, key=lambda r: r.started or 0, reverse=True)

    def stderr_tail(self, name: str, lines: int = 20) -> str:
        return self.run(name).stderr_tail(lines)
