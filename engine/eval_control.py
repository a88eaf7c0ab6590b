"""The control channel as an evaluation stage answers it (`engine.chat_eval`, `engine.base_eval`).

An evaluation has no hot settings and nothing to save mid-way: `stop` ends it at the next poll, with status
"stopped" and no results file (a partial score would read as a whole one); `save_now` and `patch` are
answered as rejected and the evaluation goes on. Every rank polls at the same points, numbered alike.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.common import print0
from engine.control import ControlChannel


class Stopped(Exception):
    """A stop request arrived: the evaluation ends without a results file."""


class EvalControl:
    """One stage's end of the control channel; `poll` raises Stopped on a stop request."""

    def __init__(self, run_dir: str | Path, info: Any, telemetry: Any, unit: str):
        self.channel = ControlChannel(run_dir, info)
        self.tel = telemetry
        self.unit = unit  # what `done` counts, for the stop message ("tasks")
        self.polls = 0

    def poll(self, done: int, total: int, step: int) -> None:
        """Answer the requests that arrived; `done` of `total` units are scored, at checkpoint `step`."""
        self.polls += 1
        stop = False
        for ack in self.channel.rejected:
            self.tel.emit(ack)
        for req in self.channel.poll(self.polls):
            if req.kind == "stop":
                ok, stop = True, True
                message = f"stopping after {done} of {total} {self.unit} (results file not written: incomplete)"
            elif req.kind == "save_now":
                ok, message = False, "an evaluation has nothing to save: its results file is written when " \
                                     f"every one of its {self.unit} is scored"
            else:
                ok, message = False, f"{req.kind}: an evaluation has no hot settings: stop it and start again"
            self.tel.emit("control_ack", request_id=req.id, kind=req.kind, ok=ok, message=message, step=step,
                          applied={})
            print0(f"control {req.kind}: {'ok' if ok else 'rejected'} {message}")
        if stop:
            raise Stopped
