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


def _process(pid: Any, *, create: Any = None, ticks: Any = None) -> psutil.Process | None:
    """The live process `pid` names, if it is still the one recorded (same start), else None."""
    if not pid_alive(pid):
        return None
    if isinstance(ticks, int):
        now = start_ticks(pid)
        if now is not None and now != ticks:
            return None  # the pid was reused
    elif isinstance(create, int | float):
        now_c = create_time(pid)
        if now_c is not None and abs(now_c - create) > CREATE_TIME_SLACK_S:
            return None
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


def run_processes(run: RunDir, record: dict[str, Any] | None = None) -> list[psutil.Process]:
    """Every live process of the run: launcher, ranks, and their descendants (each once)."""
    record = run.record() if record is None else record
    roots: list[psutil.Process] = []
    launcher = _process(record.get("pid"), create=record.get("create_time"))
    if launcher is not None:
        roots.append(launcher)
    for entry in run.rank_pids():
        p = _process(entry["pid"], ticks=entry.get("ticks"))
        if p is not None:
            roots.append(p)
    seen: dict[int, psutil.Process] = {}
    for root in roots:
        seen.setdefault(root.pid, root)
        if root.pid == os.getpid():  # a record naming this process (tests stand in for a job): not our tree
            continue
        with contextlib.suppress(psutil.Error):
            for child in root.children(recursive=True):
                seen.setdefault(child.pid, child)
    return [p for p in seen.values() if _alive(p)]


def run_alive(run: RunDir, record: dict[str, Any] | None = None) -> bool:
    return bool(run_processes(run, record))


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
        self.reap()
        for p in run_processes(self.run, self.record):
            self.tracked.setdefault(p.pid, p)
        live = [p for p in self.tracked.values() if _alive(p)]
        self.tracked = {p.pid: p for p in live}
        return live

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
        launcher = _process(self.record.get("pid"), create=self.record.get("create_time"))
        if isinstance(pgid, int) and pgid > 0 and launcher is not None and pgid != os.getpgrp():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, sig)  # the launcher and whatever it started in its own group

    def _all(self, sig: int) -> None:
        self._launcher_group(sig)
        for p in self.alive():
            if _stopped(p) or sig == signal.SIGKILL:
                _signal(p, signal.SIGCONT)
            _signal(p, sig)

    def run_stages(self, graceful_timeout: float, signal_timeout: float, final_timeout: float = 10.0) -> list[int]:
        """Wait for the requested stop, then signal; returns the pids still alive at the end ([] = all gone)."""
        if self._wait(graceful_timeout):
            return []
        if not self._escalate.is_set():
            self._launcher_group(signal.SIGINT)
            for p in self.alive():  # a frozen rank cannot act on the forwarded SIGINT
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
