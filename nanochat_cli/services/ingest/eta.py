"""An ETA a person can trust: wall time per step measured from the run's own step events.

The engine's per-step `eta` counts only training steps (evals, samples and checkpoints are left out)
and at step 1 it is the first step's time, warm-up and compilation included. Here the rate is the
wall time between step events, evals and the rest included, measured after the first step; until
`MIN_TIMED_STEPS` steps have been timed there is no estimate ("estimating…").
"""

from __future__ import annotations

MIN_TIMED_STEPS = 3


class EtaEstimator:
    def __init__(self, min_timed_steps: int = MIN_TIMED_STEPS):
        self.min_timed_steps = min_timed_steps
        self._anchor: tuple[int, float] | None = None  # (step, elapsed) of the first timed step
        self._last: tuple[int, float] | None = None
        self._seen = 0  # step events since the (re)start

    def restart(self) -> None:
        """A (resumed) process starts: its elapsed clock starts over."""
        self._anchor = self._last = None
        self._seen = 0

    def add(self, step: int, elapsed: float) -> None:
        self._seen += 1
        if self._last is not None and (step <= self._last[0] or elapsed < self._last[1]):
            self.restart()  # steps or clock went back: a new process
            self._seen = 1
        if self._seen == 2:  # the first step carries warm-up: time from the end of it
            self._anchor = self._last
        self._last = (step, elapsed)

    def eta(self, total: int) -> float | None:
        """Seconds left to step `total`; None while estimating."""
        if self._anchor is None or self._last is None:
            return None
        steps = self._last[0] - self._anchor[0]
        if steps < self.min_timed_steps:
            return None
        per_step = (self._last[1] - self._anchor[1]) / steps
        return max(0.0, per_step * (total - self._last[0]))
