"""Run orchestrator: turn a resolved config into a `torchrun` job, start it, steer it, find it again.

Plain Python (no Textual): the TUI's Train screen and the `nanochat-cli train/runs` commands both
call it. A run lives in `<base>/runs/<name>/`:

    config.yaml      the resolved engine config the job was started with (`--config`)
    run.json         launcher record: command, pid, process group, start time, nproc, exit code
    stdout.log, stderr.log   captured output of the whole torchrun process tree
    telemetry.jsonl, control.jsonl   the protocol files (docs/protocol.md)

Multi-node training is torch.distributed's job: with nodes > 1 we only build the rendezvous form of
the command and show the exact line to run on each node.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from engine.config import TrainConfig
from engine.control import send_request
from engine.errors import EngineError
from engine.shared import atomic_write
from engine.telemetry import ErrorEvent, EvalEvent, RunEndEvent, RunStartEvent, StepEvent, TelemetryReader

RUN_RECORD = "run.json"
HUNG_AFTER_S = 300.0  # no telemetry for this long while the process lives → "hung?"


@dataclass
class LaunchSpec:
    """What to run: the engine config plus how torchrun spreads it over processes and nodes."""

    config: TrainConfig
    nproc_per_node: int = 1
    nnodes: int = 1
    node_rank: int = 0
    rdzv_endpoint: str | None = None  # host:port of node 0, needed when nnodes > 1


def spec_from_resolved(resolved: dict[str, Any]) -> LaunchSpec:
    """A resolved config (dotted keys, from the prefab store) → what to launch."""
    from nanochat_cli.services.config.schema import to_engine_config

    return LaunchSpec(config=to_engine_config(resolved), nproc_per_node=resolved.get("hardware.nproc_per_node", 1),
                      nnodes=resolved.get("hardware.nnodes", 1), node_rank=resolved.get("hardware.node_rank", 0),
                      rdzv_endpoint=resolved.get("hardware.rdzv_endpoint"))


def secret_env(config: TrainConfig, store=None) -> dict[str, str]:
    """Secrets the job needs, passed through its environment only (never the config file or telemetry)."""
    env: dict[str, str] = {}
    if config.wandb != "disabled":
        if store is None:
            from nanochat_cli.services.secrets import SecretStore

            store = SecretStore()
        key = store.get("wandb_api_key")
        if key:
            env["WANDB_API_KEY"] = key
    return env


def torchrun_args(spec: LaunchSpec, config_path: Path, node_rank: int | None = None) -> list[str]:
    """torchrun's arguments (without the program): standalone on one node, c10d rendezvous on several."""
    if spec.nnodes <= 1:
        args = ["--standalone", f"--nproc_per_node={spec.nproc_per_node}"]
    else:
        if not spec.rdzv_endpoint:
            raise EngineError("hardware.rdzv_endpoint: needed when nnodes > 1: set it to <node0-host>:<port>")
        rank = spec.node_rank if node_rank is None else node_rank
        args = [f"--nnodes={spec.nnodes}", f"--node_rank={rank}", f"--nproc_per_node={spec.nproc_per_node}",
                "--rdzv_backend=c10d", f"--rdzv_endpoint={spec.rdzv_endpoint}", f"--rdzv_id={spec.config.run}"]
    return args + ["-m", "engine.train", "--", "--config", str(config_path)]


def build_command(spec: LaunchSpec, config_path: Path, python: str = sys.executable) -> list[str]:
    """The argv we execute: `python -m torch.distributed.run` is torchrun without relying on PATH."""
    return [python, "-m", "torch.distributed.run", *torchrun_args(spec, config_path)]


def display_command(spec: LaunchSpec, config_path: Path, node_rank: int | None = None) -> str:
    """The copyable command a person would type (on node `node_rank` for multi-node runs)."""
    return shlex.join(["torchrun", *torchrun_args(spec, config_path, node_rank)])


def per_node_commands(spec: LaunchSpec, config_path: Path) -> list[str]:
    return [display_command(spec, config_path, r) for r in range(max(spec.nnodes, 1))]


def unique_run_name(runs_dir: Path, name: str) -> str:
    """Never reuse a run dir silently: demo, demo-2, demo-3, …"""
    if not (runs_dir / name).exists():
        return name
    n = 2
    while (runs_dir / f"{name}-{n}").exists():
        n += 1
    return f"{name}-{n}"


def _write_json(path: Path, data: dict) -> None:
    atomic_write(path, json.dumps(data, indent=2))


def _pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child counts as dead
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[-1][:1] != "Z"
    except OSError:
        return True


@dataclass
class RunInfo:
    """What we know about one run, from its files alone (works after the TUI restarts)."""

    name: str
    run_dir: Path
    status: str  # running | finished | stopped | failed | crashed | hung | unknown
    pid: int | None = None
    step: int = 0
    total: int = 0
    loss: float | None = None
    val_bpb: float | None = None
    started: float | None = None
    elapsed: float | None = None
    error: str | None = None
    exit_code: int | None = None
    command: str = ""
    record: dict[str, Any] = field(default_factory=dict)


class RunOrchestrator:
    """Starts, stops and inspects training runs under `<base>/runs/`."""

    def __init__(self, base: Path, python: str = sys.executable):
        self.base = Path(base)
        self.runs_dir = self.base / "runs"
        self.python = python
        self._procs: dict[str, subprocess.Popen] = {}

    # ---- launch -----------------------------------------------------------------------------
    def prepare(self, spec: LaunchSpec, resume: bool = False) -> tuple[LaunchSpec, Path]:
        """Choose the run dir (suffixing a taken name unless resuming) and write config.yaml there."""
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        cfg = spec.config
        name = cfg.run if resume else unique_run_name(self.runs_dir, cfg.run)
        updates: dict[str, Any] = {"run": name, "base_dir": str(self.base), "resume": resume or cfg.resume}
        if cfg.model_tag is None or cfg.model_tag == cfg.run:
            updates["model_tag"] = name
        cfg = cfg.model_copy(update=updates)
        run_dir = self.runs_dir / name
        run_dir.mkdir(parents=True, exist_ok=True)
        config_path = run_dir / "config.yaml"
        atomic_write(config_path, yaml.safe_dump(cfg.model_dump(), sort_keys=False))
        return LaunchSpec(cfg, spec.nproc_per_node, spec.nnodes, spec.node_rank, spec.rdzv_endpoint), run_dir

    def start(self, spec: LaunchSpec, resume: bool = False, env: dict[str, str] | None = None) -> RunInfo:
        spec, run_dir = self.prepare(spec, resume=resume)
        config_path = run_dir / "config.yaml"
        argv = build_command(spec, config_path, self.python)
        child_env = {**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"}
        # the job must find `engine` even when started from another working directory
        repo_root = str(Path(__file__).resolve().parents[2])
        child_env["PYTHONPATH"] = os.pathsep.join(p for p in (repo_root, child_env.get("PYTHONPATH")) if p)
        child_env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // spec.nproc_per_node)))
        with open(run_dir / "stdout.log", "ab") as out, open(run_dir / "stderr.log", "ab") as err:
            proc = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=child_env,
                                    cwd=run_dir, start_new_session=True)
        self._procs[spec.config.run] = proc
        record = {"name": spec.config.run, "pid": proc.pid, "pgid": proc.pid,
                  "command": display_command(spec, config_path), "argv": argv, "started": time.time(),
                  "nproc_per_node": spec.nproc_per_node,
                  "nnodes": spec.nnodes, "resume": resume, "exit_code": None}
        _write_json(run_dir / RUN_RECORD, record)
        return self.info(spec.config.run)

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
        proc = self._procs.get(name)
        code = proc.poll() if proc else None
        if code is not None:
            self._record_exit(name, code)
        return code

    def exited(self, name: str) -> int | None:
        """Exit code once the job is gone, also for jobs another process started (re-attach); else None."""
        if name in self._procs:
            return self.poll(name)
        info = self.info(name)
        if info.status in ("running", "hung"):
            return None
        if info.exit_code is not None:
            return info.exit_code
        return 0 if info.status in ("finished", "stopped") else 1

    def _record_exit(self, name: str, code: int) -> None:
        path = self.runs_dir / name / RUN_RECORD
        record = json.loads(path.read_text())
        if record.get("exit_code") is None:
            record["exit_code"] = code
            record["ended"] = time.time()
            _write_json(path, record)

    # ---- steer ------------------------------------------------------------------------------
    def save_now(self, name: str) -> str:
        return send_request(self.run_dir(name), "save_now")

    def patch(self, name: str, changes: dict[str, Any]) -> str:
        return send_request(self.run_dir(name), "patch", changes)

    def stop(self, name: str, graceful_timeout: float = 60.0, signal_timeout: float = 10.0) -> int | None:
        """Ask nicely (save, exit), then SIGINT, SIGTERM, SIGKILL to the process group, each after a timeout."""
        info = self.info(name)
        if info.status != "running" and info.status != "hung":
            return info.exit_code
        send_request(info.run_dir, "stop")
        pgid = info.record.get("pgid")
        steps = [(None, graceful_timeout), (signal.SIGINT, signal_timeout), (signal.SIGTERM, signal_timeout),
                 (signal.SIGKILL, signal_timeout)]
        for sig, timeout in steps:
            if sig is not None and pgid:
                try:
                    os.killpg(pgid, sig)
                except ProcessLookupError:
                    break
            if self._wait_dead(name, info.pid, timeout):
                break
        return self.poll(name) if name in self._procs else self.info(name).exit_code

    def _wait_dead(self, name: str, pid: int | None, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if name in self._procs:
                if self._procs[name].poll() is not None:
                    self._record_exit(name, self._procs[name].returncode)
                    return True
            elif not _pid_alive(pid):
                return True
            time.sleep(0.1)
        return False

    # ---- inspect ----------------------------------------------------------------------------
    def run_dir(self, name: str) -> Path:
        path = self.runs_dir / name
        if not path.is_dir():
            raise EngineError(f"run '{name}': no such run under {self.runs_dir}: see `nanochat-cli runs list`")
        return path

    def info(self, name: str) -> RunInfo:
        """Status from run.json, the pid and a replay of telemetry.jsonl."""
        run_dir = self.run_dir(name)
        record = json.loads((run_dir / RUN_RECORD).read_text()) if (run_dir / RUN_RECORD).exists() else {}
        info = RunInfo(name=name, run_dir=run_dir, status="unknown", pid=record.get("pid"),
                       started=record.get("started"), exit_code=record.get("exit_code"),
                       command=record.get("command", ""), record=record)
        if name in self._procs and info.exit_code is None:
            info.exit_code = self.poll(name)
        reader = TelemetryReader(run_dir / "telemetry.jsonl")
        end: RunEndEvent | None = None
        last_event_time = None
        for ev in reader.read_new():
            last_event_time = ev.time
            if isinstance(ev, RunStartEvent):
                info.total = ev.num_iterations
            elif isinstance(ev, StepEvent):
                info.step, info.total, info.loss, info.elapsed = ev.step, ev.total, ev.loss, ev.elapsed
            elif isinstance(ev, EvalEvent):
                info.val_bpb = ev.val_bpb
            elif isinstance(ev, ErrorEvent):
                info.error = ev.message
            elif isinstance(ev, RunEndEvent):
                end = ev
                info.elapsed = ev.elapsed
        alive = _pid_alive(info.pid) and info.exit_code is None
        if alive:
            quiet = time.time() - (last_event_time or info.started or time.time())
            info.status = "hung" if quiet > HUNG_AFTER_S else "running"
        elif end is not None:
            info.status = end.status
            if end.status == "failed" and not info.error:
                info.error = end.reason
        elif info.pid:
            info.status = "crashed"  # died without a run_end event (killed, OOM, segfault)
        return info

    def list_runs(self) -> list[RunInfo]:
        if not self.runs_dir.is_dir():
            return []
        runs = [self.info(p.name) for p in self.runs_dir.iterdir() if p.is_dir()]
        return sorted(runs, key=lambda r: r.started or 0, reverse=True)

    def stderr_tail(self, name: str, lines: int = 20) -> str:
        path = self.run_dir(name) / "stderr.log"
        if not path.exists():
            return ""
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64 * 1024))
            return "\n".join(f.read().decode(errors="replace").splitlines()[-lines:])
