"""Helpers for the Train screen tests: an app with fixed machine and secrets, the screen as plain text,
waiting for a condition while the app runs, and hand-written telemetry for runs that never trained."""

from __future__ import annotations

import io
import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console

from engine.config import TrainConfig
from engine.telemetry import (
    CheckpointEvent,
    ControlAckEvent,
    EvalEvent,
    RunEndEvent,
    RunStartEvent,
    SampleEvent,
    StepEvent,
    TelemetryWriter,
    WarningEvent,
)
from nanochat_cli.app import NanochatApp
from nanochat_cli.services.config.guardrails import MachineInfo
from nanochat_cli.services.secrets import SecretStore

MACHINE = MachineInfo(cpu_count=2, ram_total_bytes=8_000_000_000, ram_free_bytes=6_000_000_000)
T0 = 1_767_225_600.0  # 2026-01-01 00:00 UTC: fixed event times keep replayed screens deterministic


def make_app(tmp_path: Path, **kw: Any) -> NanochatApp:
    return NanochatApp(machine=MACHINE, secrets=SecretStore(file_dir=tmp_path / "secrets"), online_checks=False, **kw)


def screen_text(app: NanochatApp) -> str:
    """What the terminal shows now, as plain text (the same frame a screenshot would have)."""
    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), force_terminal=True, record=True,
                      legacy_windows=False, safe_box=False)
    console.print(app.screen._compositor.render_update(full=True, screen_stack=app._background_screens))
    return console.export_text(styles=False)


def shows(app: NanochatApp, *texts: str) -> bool:
    """Does the terminal show every one of `texts` now?"""
    screen = screen_text(app)
    return all(t in screen for t in texts)


def toasts(app: NanochatApp) -> list[str]:
    return [str(n.message) for n in app._notifications]


async def wait_for(pilot: Any, what: str, cond: Callable[[], Any], timeout: float = 60.0) -> Any:
    """Let the app run until cond() is truthy; fail with `what` and the screen after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = cond()
        if result:
            return result
        await pilot.pause(0.1)
    raise AssertionError(f"timed out waiting for {what}; screen:\n{screen_text(pilot.app)}\n"
                         f"toasts: {toasts(pilot.app)}")


# ---- hand-written runs ------------------------------------------------------------------------------

def run_config(name: str, steps: int) -> dict[str, Any]:
    return TrainConfig(run=name, depth=2, aspect_ratio=32, head_dim=32, max_seq_len=64, vocab_size=512,
                       device_batch_size=4, total_batch_size=512, num_iterations=steps, eval_every=20,
                       base_dir="/data").model_dump()


def run_events(name: str, steps: int = 60, end: str | None = "finished", t0: float = T0) -> list[Any]:
    """A plausible run: start, decaying loss, evals every 20 steps, a sample, a patch ack, checkpoints, end."""
    out: list[Any] = [RunStartEvent(
        time=t0, config=run_config(name, steps), world_size=2, device="cpu", dtype="float32", num_params=1_234_567,
        num_flops_per_token=7.4e6, num_iterations=steps, tokens_per_step=512, engine_version="0.1.0", pid=4242,
        run_dir=f"/data/runs/{name}")]
    smooth = 0.0
    for s in range(1, steps + 1):
        loss = 3.2 + 3.0 * math.exp(-s / 12) + 0.08 * math.sin(s)
        smooth = 0.9 * smooth + 0.1 * loss
        out.append(StepEvent(time=t0 + s, step=s, total=steps, loss=loss, smooth_loss=smooth / (1 - 0.9 ** s),
                             lr_mult=min(1.0, s / 5), muon_momentum=0.85 + 0.1 * min(1.0, s / 30),
                             tokens_per_sec=5120.0, mfu=None, dt=0.1, t_data=0.002, t_fwd_bwd=0.08, t_optim=0.018,
                             mem_bytes=300_000_000, tokens_seen=512 * s, elapsed=s * 0.1, eta=(steps - s) * 0.1))
        if s % 20 == 0:
            out.append(EvalEvent(time=t0 + s, step=s, val_bpb=2.5 - s / 60))
        if s == 30:
            out.append(SampleEvent(time=t0 + s, step=s, prompt="The capital of France is", text=" the city of"))
            out.append(ControlAckEvent(time=t0 + s, request_id="r1", kind="patch", ok=True, step=s,
                                       message="applied lr_scale: 1.0 -> 0.5", applied={"lr_scale": 0.5}))
            out.append(CheckpointEvent(time=t0 + s, step=s, path=f"/data/ckpt/{name}/model_000030.pt",
                                       reason="request", seconds=0.2, bytes=14_000_000))
        if s == 45:
            out.append(WarningEvent(time=t0 + s, message="loss plateau: lr_mult 1.00"))
    if end:
        out.append(CheckpointEvent(time=t0 + steps, step=steps, path=f"/data/ckpt/{name}/model_{steps:06d}.pt",
                                   reason="final", seconds=0.2, bytes=14_000_000))
        out.append(RunEndEvent(time=t0 + steps, status=end, reason="completed all steps", step=steps,
                               elapsed=steps * 0.1))
    return out


def write_run(base: Path, name: str, events: list[Any], record: dict[str, Any] | None = None) -> Path:
    """<base>/runs/<name>/telemetry.jsonl written with the engine's own writer, plus run.json if given."""
    run_dir = base / "runs" / name
    run_dir.mkdir(parents=True, exist_ok=True)
    with TelemetryWriter(run_dir / "telemetry.jsonl", run=name) as w:
        for ev in events:
            w.emit(ev)
    if record is not None:
        (run_dir / "run.json").write_text(json.dumps({"name": name, **record}))
    return run_dir


async def replayed(pilot: Any) -> None:
    """Open the Train tab and wait until the replayed run, its panels and their charts are all drawn."""
    from nanochat_cli.widgets.train.chart import ChartPlot

    await pilot.press("2")
    screen = pilot.app.screen
    await wait_for(pilot, "the replay", lambda: screen.live is not None and screen.live.final is not None)
    await wait_for(pilot, "the panels",
                   lambda: screen.views is not None and all(p.paints for p in screen.views.panels_in_view()))
    plots = [plot for p in screen.views.panels_in_view() for plot in p.query(ChartPlot)]
    await wait_for(pilot, "the charts", lambda: all(p.builds and not p._busy.locked() for p in plots))
    await pilot.app.workers.wait_for_complete()
    await pilot.pause(0.2)
