"""A stand-in for `torchrun -m engine.train`, torch-free and quick to start, for process and follower tests.

`fake_orchestrator(base, tmp)` returns a RunOrchestrator whose "python" is a small wrapper: the
orchestrator's real command line (`python -m torch.distributed.run --nproc_per_node=N ... --config
C`) then runs this file. As the launcher it starts N ranks the way torch does (each in its own
session) and forwards SIGINT/SIGTERM to them; rank 0 writes real telemetry (run_start, a step every
STEP_S) and obeys control requests. Knobs, through the environment (inherited by the job):

    FAKE_TIE=1          ranks tie themselves to the launcher (engine/lifeline.py), as engine.train does
    FAKE_DEAF=1         ranks ignore stop requests, SIGINT and SIGTERM (a stuck job)
    FAKE_TEXT=...       rank 0 emits it as a warning, a sample and an error message right after run_start
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

STEP_S = 0.05
TOTAL = 1_000_000


def fake_orchestrator(base: Path, tmp: Path):
    from nanochat_cli.services.runs import RunOrchestrator

    wrapper = tmp / "fake-python"
    wrapper.write_text(f"#!/bin/sh\nexec {sys.executable} {Path(__file__).resolve()} \"$@\"\n")
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    return RunOrchestrator(base, python=str(wrapper))


def _launcher(argv: list[str]) -> int:
    nproc = next(int(a.split("=", 1)[1]) for a in argv if a.startswith("--nproc_per_node="))
    config = Path(argv[argv.index("--config") + 1])
    env = {**os.environ, "TORCHELASTIC_RUN_ID": "fake"}
    ranks = [subprocess.Popen([sys.executable, __file__, "--rank", str(r), str(config.parent)],
                              env={**env, "RANK": str(r)}, start_new_session=True) for r in range(nproc)]

    def forward(signum, frame):  # as torchrun does: pass it on, then wait for the ranks
        for p in ranks:
            if p.poll() is None:
                p.send_signal(signum)

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    codes = [p.wait() for p in ranks]
    return max(codes, key=abs)


def _rank(rank: int, run_dir: Path) -> int:
    from engine.control import ControlChannel
    from engine.lifeline import record_pid, tie_to_launcher
    from engine.telemetry import TelemetryWriter

    if os.environ.get("FAKE_TIE") == "1":
        tie_to_launcher()
    deaf = os.environ.get("FAKE_DEAF") == "1"
    if deaf:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    record_pid(run_dir, rank)
    if rank != 0:  # the other ranks end with rank 0, as real ones do (they meet it in every collective)
        telemetry = run_dir / "telemetry.jsonl"
        while deaf or not (telemetry.exists() and b'"run_end"' in telemetry.read_bytes()[-4096:]):
            time.sleep(STEP_S)
        return 0
    tel = TelemetryWriter(run_dir / "telemetry.jsonl", run=run_dir.name)
    control = ControlChannel(run_dir)
    tel.emit("run_start", config={"run": run_dir.name}, world_size=1, device="cpu", dtype="float32", num_params=1,
             num_flops_per_token=1.0, num_iterations=TOTAL, tokens_per_step=1, engine_version="fake",
             pid=os.getpid(), run_dir=str(run_dir))
    text = os.environ.get("FAKE_TEXT")
    if text:
        tel.emit("warning", message=text)
        tel.emit("sample", step=0, prompt=text, text=text)
        tel.emit("error", message=text.replace("\n", " "), traceback="")
    t0 = time.time()
    step = 0
    try:
        while True:
            for req in control.poll(step):
                tel.emit(req.ack(True, f"{req.kind} seen", step))
                if req.kind == "stop" and not deaf:
                    tel.emit("run_end", status="stopped", reason="stop requested", step=step,
                             elapsed=time.time() - t0)
                    return 0
            step += 1
            tel.emit("step", step=step, total=TOTAL, loss=1.0, smooth_loss=1.0, lr_mult=1.0, muon_momentum=0.9,
                     tokens_per_sec=100.0, dt=STEP_S, t_data=0.0, t_fwd_bwd=STEP_S, t_optim=0.0, mem_bytes=1,
                     tokens_seen=step, elapsed=time.time() - t0, eta=None)
            time.sleep(STEP_S)
    except KeyboardInterrupt:
        tel.emit("run_end", status="stopped", reason="interrupted (SIGINT)", step=step, elapsed=time.time() - t0)
        return 130


if __name__ == "__main__":
    args = sys.argv[1:]
    if args[:1] == ["--rank"]:
        sys.exit(_rank(int(args[1]), Path(args[2])))
    sys.exit(_launcher(args))
