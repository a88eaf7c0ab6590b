"""Headless training: start a run, follow its telemetry, print progress for terminals, scripts and CI.

On a terminal it shows a rich progress bar (step/total, loss, tokens/s, ETA) with eval, sample,
checkpoint and control lines printed above it; when stdout is not a terminal it prints one plain
line per `log_every` steps instead, so logs stay readable. Ctrl-C asks the job to stop gracefully
(save, then exit) and escalates if it does not.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from engine.telemetry import TelemetryReader
from nanochat_cli.services.orchestrator import LaunchSpec, RunOrchestrator

POLL_S = 0.2


def describe_event(ev) -> str | None:
    """The line a person wants to read for the non-step events; None for the ones shown otherwise."""
    kind = ev.event
    if kind == "run_start":
        return (f"run {ev.run}: {ev.num_params:,} params, {ev.num_iterations} steps of {ev.tokens_per_step:,} tokens, "
                f"world {ev.world_size} on {ev.device} ({ev.dtype})")
    if kind == "eval":
        return f"step {ev.step}: val bpb {ev.val_bpb:.4f}"
    if kind == "sample":
        return f"step {ev.step}: sample {ev.prompt!r} → {ev.text!r}"
    if kind == "checkpoint":
        return f"step {ev.step}: checkpoint ({ev.reason}) {ev.path}"
    if kind == "control_ack":
        return f"step {ev.step}: {ev.kind} {'accepted' if ev.ok else 'rejected'}: {ev.message}"
    if kind == "warning":
        return f"warning: {ev.message}"
    if kind == "error":
        return f"error: {ev.message}"
    if kind == "run_end":
        return f"run {ev.status}: {ev.reason} (step {ev.step}, {ev.elapsed:.0f} s)"
    return None


def step_line(ev) -> str:
    return (f"step {ev.step:05d}/{ev.total:05d} | loss {ev.loss:.4f} (smooth {ev.smooth_loss:.4f}) | "
            f"lrm {ev.lr_mult:.2f} | {ev.tokens_per_sec:,.0f} tok/s | dt {ev.dt * 1000:.0f} ms"
            + (f" | eta {ev.eta:.0f}s" if ev.eta is not None else ""))


def follow(orch: RunOrchestrator, name: str, console: Console, log_every: int = 10,
           should_stop: Callable[[], bool] = lambda: False) -> int:
    """Follow a started run until its process exits; returns the job's exit code."""
    run_dir = orch.run_dir(name)
    reader = TelemetryReader(run_dir / "telemetry.jsonl")
    live = console.is_terminal
    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("{task.fields[stats]}"), TimeRemainingColumn(), console=console,
                        disable=not live, transient=False)
    task = progress.add_task(name, total=None, stats="starting…")
    code = None
    with progress:
        while True:
            for ev in reader.read_new():
                if ev.event == "step":
                    progress.update(task, completed=ev.step, total=ev.total,
                                    stats=f"loss {ev.loss:.3f} | {ev.tokens_per_sec:,.0f} tok/s")
                    if not live and (ev.step % log_every == 0 or ev.step == ev.total):
                        console.print(step_line(ev))
                else:
                    line = describe_event(ev)
                    if ev.event == "run_start":
                        progress.update(task, total=ev.num_iterations, stats="")
                    if line:
                        console.print(line)
            if code is not None:
                break
            code = orch.exited(name)  # one more read after exit catches the last events
            if should_stop():
                console.print("stopping: asked the job to save and exit …")
                orch.stop(name)
                should_stop = lambda: False  # noqa: E731 — ask once
            time.sleep(POLL_S)
    if reader.malformed:
        console.print(f"note: {reader.malformed} malformed telemetry line(s) skipped ({reader.last_error})")
    return code


def run_headless(orch: RunOrchestrator, spec: LaunchSpec, env: dict[str, str] | None = None,
                 console: Console | None = None) -> int:
    """Start `spec` and follow it to the end. Exit code: the job's (0 finished or stopped gracefully)."""
    console = console or Console(highlight=False, width=None if sys.stdout.isatty() else 160)
    info = orch.start(spec, resume=spec.config.resume, env=env)
    console.print(f"[dim]$ {info.command}[/dim]")
    console.print(f"run dir: {info.run_dir}")
    stop_requested = False

    def should_stop() -> bool:
        return stop_requested

    while True:
        try:
            code = follow(orch, info.name, console, log_every=spec.config.log_every, should_stop=should_stop)
            break
        except KeyboardInterrupt:
            if stop_requested:  # second Ctrl-C: escalate right away
                orch.stop(info.name, graceful_timeout=0, signal_timeout=5)
            stop_requested = True
    final = orch.info(info.name)
    if code != 0:
        console.print(f"[red]run {info.name} {final.status} (exit code {code})[/red]"
                      + (f": {final.error}" if final.error else ""))
        tail = orch.stderr_tail(info.name, lines=15)
        if tail and not final.error:
            console.print(tail, markup=False)
    return code
