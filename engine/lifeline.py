"""A training process never outlives its launcher, and says who it is so the app can find it.

torchrun starts each worker in its own session, so a group kill of the launcher (or `kill -9` of the
torchrun agent) misses the workers: they would train on as orphans, writing into the same checkpoint
dir. `tie_to_launcher()` closes that hole twice over:

- on Linux, `prctl(PR_SET_PDEATHSIG, SIGKILL)`: the kernel kills this process when its parent dies;
- everywhere, a daemon thread that watches `getppid()` and kills this process once it changes
  (reparented to init or a subreaper means the parent is gone).

`record_pid()` writes `<run_dir>/pids/rank-<rank>.json` (pid, start ticks, time) so `runs stop` can
end every process of a run even after its launcher is gone. Torch-free.
"""

from __future__ import annotations

import atexit
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

from engine.shared import atomic_write

PIDS_DIR = "pids"  # under the run dir: one file per rank
PR_SET_PDEATHSIG = 1
WATCH_S = 0.5  # how often the fallback thread checks the parent


def under_launcher() -> bool:
    """True when started by torchrun (or another torch elastic agent), whose death must end us."""
    return "TORCHELASTIC_RUN_ID" in os.environ


def start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (/proc/<pid>/stat field 22), None off Linux.

    With the pid it names one process for good: a reused pid has a later start."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rfind(b")") + 2:].split()  # the command name may hold spaces and parentheses
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def _set_pdeathsig(sig: int) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _watch(parent: int) -> None:
    while not _stop.wait(WATCH_S):
        if os.getppid() != parent:
            _die()


def _end_watch(thread: threading.Thread) -> None:
    # A daemon thread that wakes while the interpreter finalizes is torn down mid-call, which can abort
    # the whole process at exit (SIGABRT/SIGSEGV after a clean run); end it while Python still runs.
    _stop.set()
    thread.join(timeout=2 * WATCH_S)


_tied = False
_stop = threading.Event()


def tie_to_launcher() -> bool:
    """Die with the launcher (no-op outside torchrun; once per process). True when this process is tied."""
    global _tied
    if _tied or not under_launcher():
        return _tied
    parent = os.getppid()
    _set_pdeathsig(signal.SIGKILL)
    if os.getppid() != parent:  # the launcher died before prctl took effect
        _die()
    watcher = threading.Thread(target=_watch, args=(parent,), name="lifeline", daemon=True)
    watcher.start()
    atexit.register(_end_watch, watcher)
    _tied = True
    return True


def record_pid(run_dir: str | Path, rank: int) -> Path:
    """Write <run_dir>/pids/rank-<rank>.json atomically; returns its path."""
    path = Path(run_dir) / PIDS_DIR / f"rank-{rank}.json"
    data = {"pid": os.getpid(), "rank": rank, "ticks": start_ticks(os.getpid()), "time": time.time()}
    atomic_write(path, json.dumps(data))
    return path
