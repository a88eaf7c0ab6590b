"""Headless training and `runs attach`: print a run's progress for terminals, scripts and CI.

On a terminal a progress bar (step/total, loss, tokens/s, elapsed, ETA) with the run's events printed
above it; when stdout is not a terminal one plain line per `log_every` steps. The words come from
services/runs/follow.py (the Events panel's words); everything the run wrote is printed as data
(Rich markup off, control characters spelled out). A broken stdout pipe silences stdout and nothing
else. `nanochat-cli train`: Ctrl-C (or SIGTERM/SIGHUP) stops the run — the stop is sent first, then
said on stderr — and a second Ctrl-C kills every process of it at once.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.text import Text

from nanochat_cli.services.runs.follow import Follower
from nanochat_cli.services.runs.launch import LaunchSpec
from nanochat_cli.services.runs.orchestrator import RunOrchestrator, StopResult
from nanochat_cli.services.text import duration, printable

POLL_S = 0.2
LEVEL_STYLE = {"warn": "yellow", "error": "red"}


class Printer:
    """Lines to stdout (the console), notes to stderr; a closed stdout pipe turns stdout off, quietly."""

    def __init__(self, console: Console, err: Console | None = None):
        self.console = console
        self.err = err or Console(stderr=True, highlight=False)
        self.broken = False
        # Rich's default answer to a broken pipe is SystemExit(1): that would leave the run untended
        console.on_broken_pipe = self._stdout_gone  # type: ignore[method-assign]
        self.err.on_broken_pipe = self._stderr_gone  # type: ignore[method-assign]

    def line(self, text: str, style: str = "", console: Console | None = None) -> None:
        if self.broken:
            return
        try:
            (console or self.console).print(Text(text, style=style), markup=False, highlight=False, crop=False,
                                            soft_wrap=True)
        except BrokenPipeError:
            self._stdout_gone()

    def note(self, text: str) -> None:
        """To stderr, so it shows even when stdout is piped away; never raises."""
        with contextlib.suppress(OSError, ValueError):
            self.err.print(Text(printable(text)), markup=False, highlight=False, soft_wrap=True)

    def _stdout_gone(self) -> None:
        self.broken = True
        self.console.quiet = True
        _to_devnull(sys.stdout)

    def _stderr_gone(self) -> None:
        self.err.quiet = True
        _to_devnull(sys.stderr)


def _to_devnull(stream: Any) -> None:
    """Point a broken stream's fd at /dev/null: later writes, and the flush at exit, go nowhere quietly."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)


def _stats(f: Follower) -> str:
    p = f.progress
    if p is None:
        return "starting…"
    return (f"loss {p.loss:.3f} | {p.tokens_per_sec:,.0f} tok/s | elapsed {duration(p.elapsed)} | "
            f"ETA {p.eta_text}")


def follow(orch: RunOrchestrator, name: str, console: Console, log_every: int = 10, *,
           printer: Printer | None = None, on_poll: Callable[[], None] | None = None,
           detach_on_broken_pipe: bool = False, follower: Follower | None = None) -> int | None:
    """Follow a run until every process of it is gone; returns the job's exit code.

    `on_poll` runs between reads (the caller's Ctrl-C handling); None is returned only when stdout broke
    and `detach_on_broken_pipe` is set. Pass a `follower` to read its summary afterwards (no replay)."""
    printer = printer or Printer(console)
    f = follower or Follower(orch, name, log_every=log_every)
    live = console.is_terminal
    progress = Progress(TextColumn("{task.description}", markup=False, style="bold"), BarColumn(),
                        MofNCompleteColumn(), TextColumn("{task.fields[stats]}", markup=False), console=console,
                        disable=not live, transient=False)
    task = progress.add_task(printable(name, newlines=False), total=None, stats="starting…")
    code: int | None = None
    stop = threading.Event()
    with progress:
        while True:
            lines, steps = f.poll()
            for ln in lines:
                printer.line(ln.text, LEVEL_STYLE.get(ln.level, ""), progress.console)
            if not live:
                for s in steps:
                    printer.line(s)
            if f.progress is not None:
                progress.update(task, completed=f.progress.step, total=f.progress.total, stats=_stats(f))
            if on_poll is not None:
                on_poll()
            if printer.broken and detach_on_broken_pipe:
                return None
            if not f.caught_up():
                continue  # a long history: keep reading before checking anything else
            if code is not None:
                break
            code = f.ended()  # one more read after the end catches the last events
            if code is None:
                stop.wait(POLL_S)
    note = f.malformed_note
    if note:
        printer.note(f"note: {note}")
    return code


class Interrupts:
    """Ctrl-C, SIGTERM and SIGHUP counted by a handler instead of raised (so no KeyboardInterrupt can land
    in the middle of a read or a write); restored on exit. Signals already ignored stay ignored (nohup)."""

    SIGNALS = tuple(s for s in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)) if s is not None)

    def __init__(self) -> None:
        self.count = 0
        self._previous: dict[int, Any] = {}

    def _handler(self, signum: int, frame: Any) -> None:
        self.count += 1

    def __enter__(self) -> Interrupts:
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                if signal.getsignal(sig) is not signal.SIG_IGN:
                    self._previous[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def run_headless(orch: RunOrchestrator, spec: LaunchSpec, secrets: Any = None,
                 console: Console | None = None, err: Console | None = None) -> int:
    """Start `spec` and follow it to the end. Exit code: the job's (0 finished or stopped gracefully)."""
    console = console or Console(highlight=False, width=None if sys.stdout.isatty() else 160)
    printer = Printer(console, err)
    info: Any = None
    term: Any = None
    stopper: list[threading.Thread] = []
    result: list[StopResult] = []
    handled = 0

    def stop_in_background() -> None:
        result.append(orch.stop(info.name, terminator=term))

    def on_poll() -> None:
        nonlocal handled
        while handled < interrupts.count and term is not None:
            handled += 1
            if handled == 1:  # the stop goes out first: a broken pipe on the way cannot keep it from the job
                stopper.append(threading.Thread(target=stop_in_background, name="stop", daemon=True))
                stopper[0].start()
                printer.note(f"stopping run {info.name}: asked it to save a checkpoint and exit "
                             "(Ctrl-C again to kill it now)")
            elif handled == 2:
                term.escalate()
                printer.note(f"killing run {info.name}: SIGKILL to every process of it")

    with Interrupts() as interrupts:
        info = orch.launch(spec, secrets)
        printer.line(f"$ {info.command}", "dim")
        printer.line(f"run dir: {info.run_dir}")
        term = orch.terminator(info.name)
        followed = Follower(orch, info.name, log_every=getattr(spec.config, "log_every", 10))
        code = follow(orch, info.name, console, printer=printer, on_poll=on_poll, follower=followed)
        for t in stopper:
            t.join()
    final = followed.info()  # from what was followed: the telemetry is read once
    if result and not result[0].stopped:
        printer.note(f"run {info.name}: NOT stopped: pid(s) {', '.join(map(str, result[0].survivors))} "
                     "outlived SIGKILL")
        return 1
    if stopper or code != 0:
        printer.note(f"run {info.name} {final.status} at step {final.step}"
                     + (f" (exit code {code})" if code is not None else "")
                     + (f": {final.error}" if final.error and code != 0 else ""))
        tail = orch.stderr_tail(info.name, lines=15)
        if code != 0 and tail and not final.error and not stopper:
            printer.note(tail)
    return code if code is not None else 1
