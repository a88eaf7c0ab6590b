"""The run wrapper of a stage that does not train (`engine.base_eval`): it owns the run dir, the telemetry
writer and the `run_end` event however the stage ends. Training stages use engine.train.run_training.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from engine.config import parse_config
from engine.errors import EngineError
from engine.shared import base_dir, one_line


def stage_base(cfg: Any) -> Path:
    return Path(cfg.base_dir).expanduser() if getattr(cfg, "base_dir", None) else base_dir()


class StageRun:
    """The run dir, telemetry writer and ending of one stage process (rank 0 writes the telemetry)."""

    def __init__(self, prog: str, cfg: Any):
        from engine.lifeline import record_pid
        from engine.telemetry import TELEMETRY_FILE, TelemetryWriter

        self.prog, self.cfg = prog, cfg
        self.base = stage_base(cfg)
        self.run_dir = self.base / "runs" / cfg.run
        self.rank = int(os.environ.get("RANK", 0))
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            record_pid(self.run_dir, self.rank)
        except OSError as e:
            raise EngineError(f"run dir {self.run_dir}: not writable ({e.strerror}): set --base-dir or "
                              "NANOCHAT_BASE_DIR to a writable folder") from None
        self.tel = TelemetryWriter(self.run_dir / TELEMETRY_FILE, run=cfg.run, enabled=self.rank == 0)
        self.step = 0  # the step reached, for run_end

    def run(self, body: Callable[[StageRun], str]) -> int:
        """Run `body(self)` -> "finished"/"stopped"; errors become one line, `run_end` is always written."""
        from engine.common import cleanup_distributed

        t0, status, reason, code = time.time(), "failed", "", 1
        try:
            status = body(self)
            reason, code = ("completed" if status == "finished" else "stop requested"), 0
        except EngineError as e:
            reason = one_line(e)
            self.tel.emit("error", message=reason, traceback="", step=None)
            print(f"{self.prog}: error: {reason}", file=sys.stderr)
        except KeyboardInterrupt:
            status, reason, code = "stopped", "interrupted (SIGINT)", 130
        except Exception as e:
            reason = one_line(e)
            self.tel.emit("error", message=reason, traceback=traceback.format_exc(), step=None)
            traceback.print_exc()
            print(f"{self.prog}: error: {reason}", file=sys.stderr)
        finally:
            self.tel.emit("run_end", status=status, reason=reason, step=self.step, elapsed=time.time() - t0)
            self.tel.close()
            cleanup_distributed(synchronize=code == 0)
        return code


def stage_main(prog: str, cls: type[BaseModel], body: Callable[[StageRun], str], argv: list[str] | None,
               description: str = "") -> int:
    """Parse the config (exit 2 on a bad one), then run `body` inside a StageRun."""
    try:
        cfg = parse_config(argv, cls, prog, description)
        run = StageRun(prog, cfg)
    except EngineError as e:
        print(f"{prog}: error: {one_line(e)}", file=sys.stderr)
        return 2
    return run.run(body)
