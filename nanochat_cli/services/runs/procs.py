"""The one liveness check, and ending every process of a run.

A run's processes are its launcher (run.json's pid: the torchrun agent), every descendant of it, and
each rank that recorded itself in `pids/` (engine/lifeline.py), with its descendants: torchrun starts
ranks in their own sessions, so a process-group signal misses them, and a rank whose launcher died is
no longer anyone's descendant. A pid counts only while it names the same process: the start time in
the record must match (pids are reused), and a zombie is dead.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import psutil

from engine.lifeline import start_ticks
from nanochat_cli.services.runs.rundir import RunDir

CREATE_TIME_SLACK_S = 1.0  # psutil's create_time is rounded to clock ticks; run.json's to what we read then


def pid_alive(pid: Any) -> bool:
    """True while the process exists and is not a zombie (another user's process counts as alive)."""
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True


def create_time(pid: int) -> float | None:
    """The process's start (unix time) as psutil reports it; None when it is gone or hidden."""
    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def _identify(pid: Any, *, create: Any = None, ticks: Any = None, before: Any = None,
              ) -> tuple[psutil.Process | None, bool]:
    """(the live process `pid` names, whether it is provably the one recorded).

    Proof is its start: the same clock ticks (ranks, Linux), the same create time (the launcher), or
    a start before the rank wrote its file (elsewhere). A reused pid fails it: (None, False). A record
    with nothing to check (older runs, hand-written ones) gives (process, False): alive, not proven."""
    if not pid_alive(pid):
        return None, False
    now_ticks = start_ticks(pid) if isinstance(ticks, int) else None
    created = create_time(pid)
    if now_ticks is not None:
        proven = now_ticks == ticks
    elif isinstance(create, int | float) and created is not None:
        proven = abs(created - create) <= CREATE_TIME_SLACK_S
    elif isinstance(before, int | float) and created is not None:
        proven = created <= before + CREATE_TIME_SLACK_S
    else:
        return _handle(pid), False
    return (_handle(pid), True) if proven else (None, False)


def _handle(pid: int) -> psutil.Process | None:
    try:
        return psutil.Process(pid)
    except psutil.NoSuchProcess:
        return None


def _alive(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True


def run_processes(run: RunDir, record: dict[str, Any] | None = None, *, proven_only: bool = False,
                  ) -> list[psutil.Process]:
    """Every live process of the run: launcher, ranks, and the descendants of those proven to be the run's
    (each once). `proven_only`: leave out a launcher whose record cannot prove it (what may be signalled)."""
    record = run.record() if record is None else record
    roots: list[tuple[psutil.Process, bool]] = []
    launcher, proven = _identify(record.get("pid"), create=record.get("create_time"))
    if launcher is not None:
        roots.append((launcher, proven))
    for entry in run.rank_pids():
        p, proven = _identify(entry["pid"], ticks=entry.get("ticks"), before=entry.get("time"))
        if p is not None:
            roots.append((p, proven))
    seen: dict[int, psutil.Process] = {}
    for root, proven in roots:
        if proven_only and not proven:
            continue
        seen.setdefault(root.pid, root)
        if not proven or root.pid == os.getpid():  # not provably the run's: its children are not ours to walk
            continue
        with contextlib.suppress(psutil.Error):
            for child in root.children(recursive=True):
                seen.setdefault(child.pid, child)
    return [p for p in seen.values() if _alive(p) and not (proven_only and p.pid == os.getpid())]


# ---- ending a run -------------------------------------------------------------------------------


def _signal(p: psutil.Process, sig: int) -> None:
    if p.pid == os.getpid():  # never this process, whatever a record says
        return
    with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied, ProcessLookupError):
        p.send_signal(sig)


def _stopped(p: psutil.Process) -> bool:
    try:
        return p.status() == psutil.STATUS_STOPPED
    except psutil.Error:
        return False


class Terminator:
    """Ends every process of a run, escalating: ask (a control request, sent by the caller), SIGINT to
    the launcher (torchrun forwards it), SIGTERM to all, SIGKILL to all. Frozen (SIGSTOP) processes get
    SIGCONT with each signal so they can act on it. `escalate()` (a second Ctrl-C) skips to SIGKILL.

    `wait_until` is told how long each stage may take; it returns True once everything is gone.
    """

    def __init__(self, run: RunDir, record: dict[str, Any], reap: Callable[[], None] | None = None):
        self.run, self.record = run, record
        self.reap = reap or (lambda: None)  # collect our own child's exit (a zombie child counts as dead)
        self._escalate = threading.Event()
        self.tracked: dict[int, psutil.Process] = {}  # every process seen so far, kept after it is found

    def escalate(self) -> None:
        self._escalate.set()

    def alive(self) -> list[psutil.Process]:
        """The run's live processes (the liveness check), remembering the ones that may be signalled."""
        self.reap()
        for p in run_processes(self.run, self.record, proven_only=True):
            self.tracked.setdefault(p.pid, p)  # kept once found: an orphaned grandchild is still the run's
        self.tracked = {pid: p for pid, p in self.tracked.items() if _alive(p)}
        live = {p.pid: p for p in run_processes(self.run, self.record)}
        return list({**live, **self.tracked}.values())

    def targets(self) -> list[psutil.Process]:
        """What may be signalled: processes proven to be the run's."""
        self.alive()
        return list(self.tracked.values())

    def _wait(self, timeout: float, poll_s: float = 0.1) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            if not self.alive():
                return True
            if time.monotonic() >= deadline or self._escalate.is_set():
                return False
            self._escalate.wait(min(poll_s, max(0.0, deadline - time.monotonic())))

    def _launcher_group(self, sig: int) -> None:
        pgid = self.record.get("pgid")
        launcher, proven = _identify(self.record.get("pid"), create=self.record.get("create_time"))
        if isinstance(pgid, int) and pgid > 0 and launcher is not None and proven and pgid != os.getpgrp():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, sig)  # the launcher and whatever it started in its own group

    def _all(self, sig: int) -> None:
        self._launcher_group(sig)
        for p in self.targets():
            if _stopped(p) or sig == signal.SIGKILL:
                _signal(p, signal.SIGCONT)
            _signal(p, sig)

    def run_stages(self, graceful_timeout: float, signal_timeout: float, final_timeout: float = 10.0) -> list[int]:
        """Wait for the requested stop, then signal; returns the pids still alive at the end ([] = all gone)."""
        if self._wait(graceful_timeout):
            return []
        if not self._escalate.is_set():
            self._launcher_group(signal.SIGINT)
            for p in self.targets():  # a frozen rank cannot act on the forwarded SIGINT
                if _stopped(p):
                    _signal(p, signal.SIGCONT)
            if self._wait(signal_timeout):
                return []
        if not self._escalate.is_set():
            self._all(signal.SIGTERM)
            if self._wait(signal_timeout):
                return []
        self._escalate.clear()  # from here on, waiting is only for SIGKILL to land
        self._all(signal.SIGKILL)
        if self._wait(final_timeout):
            return []
        return sorted(p.pid for p in self.alive())
