"""Where torch runs and how many CPU threads it gets: the trainer's processes and the app's own inference.

Thread counts are chosen, never left to torch's default (one thread per core). OpenMP threads that wait on
each other are cheap on idle cores and ruinous on busy ones: on a 2-core machine under load, chat decoding ran
at 10–19 tok/s with two threads and at ~100 tok/s with one (bench: a cpu-tiny-shaped model, `torch` 2.13). So:

- each trainer process gets an equal share of this machine's cores (it owns them for the run);
- the app's own inference (chat replies, evaluation) gets the cores that other processes leave idle, at least
  one, measured when the work starts (a training run in progress, or any other load, leaves it fewer).

Torch is imported only by the functions that need it, so importing this module stays cheap.
"""

from __future__ import annotations

import os
from typing import Any

from nanochat_cli.services.lazy_module import LazyModule

psutil = LazyModule("psutil")  # ~45 ms to import: kept off the CLI's and the TUI's start-up path


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask, which containers and taskset narrow), at least 1."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def trainer_threads(nproc_per_node: int, cpus: int | None = None) -> int:
    """Threads per trainer process: this node's cores shared evenly among its processes."""
    cpus = available_cpus() if cpus is None else cpus
    return max(1, cpus // max(1, nproc_per_node))


def inference_threads(cpus: int | None = None, load: float | None = None) -> int:
    """Threads for this process's own CPU inference: the cores left idle by the load (1-minute load average)
    of everything else, rounded down (a half-busy core counts as busy), at least one."""
    cpus = available_cpus() if cpus is None else cpus
    load = psutil.getloadavg()[0] if load is None else load
    return max(1, min(cpus, int(cpus - load)))


def use_inference_threads() -> int:
    """Set torch's CPU threads for inference in the calling thread (OpenMP's thread count is per calling thread:
    a worker thread must set its own) and return the count."""
    import torch

    n = inference_threads()
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


def resolve_device(name: str) -> str:
    """A device name as torch takes it: 'auto' becomes this machine's best (cuda, mps, else cpu; imports torch,
    so call it off the UI thread)."""
    if name != "auto":
        return name
    from engine.common import autodetect_device_type

    return autodetect_device_type()


def config_device(resolved: dict[str, Any]) -> str:
    """The device a resolved config runs on (`hardware.device`, default cpu), 'auto' resolved."""
    return resolve_device(resolved.get("hardware.device", "cpu"))
