"""Where a training process's first seconds go: wall-clock stamps of its start-up phases, for `run_start`.

Torch-free. Stamps are Unix times, so a launcher can line them up with its own clock: when the process
started (from /proc, Linux only), when the `engine` package was first imported (before torch), and the
ends of the phases the trainer marks.
"""

from __future__ import annotations

import os
import time


def process_start_time() -> float | None:
    """Unix time at which this process started, to ~10 ms (Linux /proc); None elsewhere."""
    try:
        with open("/proc/self/stat") as f:
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])  # field 22, counted after the comm field
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return time.time() - (uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return None


class StartupClock:
    """Ordered phase stamps: mark(name) records the end of a phase."""

    def __init__(self, imported_at: float | None = None):
        self.stamps: dict[str, float] = {}
        started = process_start_time()
        if started is not None:
            self.stamps["process"] = started
        if imported_at is not None:
            self.stamps["engine_import"] = imported_at

    def mark(self, name: str) -> None:
        self.stamps[name] = time.time()
