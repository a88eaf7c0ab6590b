"""The control channel: requests from the TUI to a running training job (save now, stop, patch hot config).

Transport is a file, so it works for any launcher and survives TUI restarts: the TUI appends one JSON line
per request to `<run_dir>/control.jsonl` (`send_request`, a single O_APPEND write, so concurrent senders
never interleave). In the trainer, `ControlChannel.poll(step)` is called by every rank at the same steps:
rank 0 stats the file (no read unless it grew), parses the new complete lines, and with world_size > 1
broadcasts them so every rank acts on the same step. The trainer answers each request with a
`control_ack` telemetry event. Torch-free at import; see docs/protocol.md.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from engine.config import TrainConfig, validate_patch
from engine.errors import EngineError
from engine.shared import atomic_write
from engine.telemetry import ControlAckEvent

CONTROL_VERSION = 1
CONTROL_FILE = "control.jsonl"
OFFSET_FILE = "control.offset"  # bytes of control.jsonl already handled, so a resumed run doesn't replay them

Kind = Literal["save_now", "stop", "patch"]


class ControlRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    v: int = Field(CONTROL_VERSION, ge=1, le=CONTROL_VERSION)
    id: str = Field(default_factory=lambda: uuid.uuid4().hex, min_length=1)
    kind: Kind
    changes: dict[str, Any] = Field(default_factory=dict)
    time: float = Field(default_factory=time.time)

    @model_validator(mode="after")
    def _changes_match_kind(self) -> ControlRequest:
        if self.kind == "patch" and not self.changes:
            raise ValueError("a patch needs at least one change")
        if self.kind != "patch" and self.changes:
            raise ValueError(f"{self.kind} takes no changes")
        return self

    def ack(self, ok: bool, message: str, step: int,
            applied: dict[str, Any] | None = None) -> ControlAckEvent:
        """The control_ack telemetry event that answers this request."""
        return ControlAckEvent(request_id=self.id, kind=self.kind, ok=ok, message=message, step=step,
                               applied=applied or {})


def send_request(run_dir: str | Path, kind: str, changes: dict[str, Any] | None = None) -> str:
    """Append one request to <run_dir>/control.jsonl; returns its id (the ack carries it back)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise EngineError(f"control: run dir {run_dir} not found: start the run first or check its name")
    try:
        req = ControlRequest(kind=kind, changes=changes or {})
    except ValidationError as e:
        err = e.errors()[0]
        fix = "use save_now, stop or a patch with changes"
        raise EngineError(f"control: {kind}: {err['msg']}: {fix}") from None
    data = (req.model_dump_json() + "\n").encode()
    # one write() on an O_APPEND fd: the kernel appends it whole, even with other senders at the same time
    fd = os.open(run_dir / CONTROL_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        n = os.write(fd, data)
    finally:
        os.close(fd)
    if n != len(data):
        raise EngineError(f"control: {run_dir / CONTROL_FILE}: short write ({n} of {len(data)} bytes): "
                          "free some disk space")
    return req.id


def apply_patch(cfg: TrainConfig, request: ControlRequest) -> tuple[TrainConfig | None, str]:
    """Validate a patch request against the live config: (new config, what changed) or (None, why not)."""
    if request.kind != "patch":
        return None, f"{request.kind} is not a patch"
    new, reason = validate_patch(cfg, request.changes)
    if new is None:
        return None, reason or "patch rejected"
    diff = ", ".join(f"{k}: {getattr(cfg, k)!r} -> {getattr(new, k)!r}" for k in request.changes)
    return new, f"applied {diff}"


class ControlChannel:
    """The trainer's end. Every rank constructs one and calls poll(step) at the same steps."""

    apply_patch = staticmethod(apply_patch)

    def __init__(self, run_dir: str | Path, dist_info: Any = None):
        """dist_info: engine.common.DistInfo (rank, world_size) or None for a single process."""
        self.path = Path(run_dir) / CONTROL_FILE
        self.offset_path = Path(run_dir) / OFFSET_FILE
        self.rank = dist_info.rank if dist_info is not None else 0
        self.world_size = dist_info.world_size if dist_info is not None else 1
        self.rejected: list[ControlAckEvent] = []  # acks for bad lines found by the last poll (rank 0)
        self.offset = self._load_offset() if self.rank == 0 else 0
        self._group: Any = None  # gloo group for the broadcast, made on first use
        self._buf: Any = None  # the reused [count, step] tensor

    def _load_offset(self) -> int:
        try:
            text = self.offset_path.read_text().strip()
        except FileNotFoundError:
            return 0
        if not text.isdigit():
            raise EngineError(f"control: {self.offset_path}: not a byte count ({text[:40]!r}): "
                              "delete the file")
        return int(text)

    def poll(self, step: int) -> list[ControlRequest]:
        """New requests, identical on every rank. Bad lines become rejection acks in `.rejected` (rank 0)."""
        self.rejected = []
        requests = self._read(step) if self.rank == 0 else []
        if self.world_size > 1:
            requests = self._broadcast(requests, step)
        return requests

    def _read(self, step: int) -> list[ControlRequest]:
        try:
            size = os.stat(self.path).st_size
        except FileNotFoundError:
            size = 0
        if size < self.offset:  # control.jsonl was deleted or replaced: its new lines start at 0
            self.offset = 0
        if size == self.offset:
            return []
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            chunk = f.read(size - self.offset)
        end = chunk.rfind(b"\n")
        if end < 0:
            return []  # a sender's line is not complete yet
        self.offset += end + 1
        self._save_offset()
        requests = []
        for raw in chunk[: end + 1].splitlines():
            if raw.strip():
                req = self._parse(raw, step)
                if req is not None:
                    requests.append(req)
        return requests

    def _parse(self, raw: bytes, step: int) -> ControlRequest | None:
        try:
            return ControlRequest.model_validate_json(raw)
        except ValidationError as e:
            self.rejected.append(_rejection(raw, e, step))
            return None

    def _save_offset(self) -> None:
        atomic_write(self.offset_path, str(self.offset))

    def _broadcast(self, requests: list[ControlRequest], step: int) -> list[ControlRequest]:
        # the common case costs one tiny CPU broadcast; the payload travels only when there is one.
        # A gloo group keeps it off the GPU stream (no CUDA sync) even when training runs on NCCL.
        import torch
        import torch.distributed as dist

        if not dist.is_initialized():
            raise EngineError(f"control: world_size={self.world_size} but torch.distributed is not "
                              "initialized: call engine.common.init_distributed first")
        if self._buf is None:
            self._group = None if dist.get_backend() == "gloo" else dist.new_group(backend="gloo")
            self._buf = torch.zeros(2, dtype=torch.int64)
        self._buf[0], self._buf[1] = len(requests), step
        dist.broadcast(self._buf, src=0, group=self._group)
        count, src_step = int(self._buf[0]), int(self._buf[1])
        if src_step != step:
            raise EngineError(f"control: rank {self.rank} polled at step {step} but rank 0 at {src_step}: "
                              "every rank must call poll() at the same steps")
        if count == 0:
            return []
        payload = [[r.model_dump() for r in requests]]
        dist.broadcast_object_list(payload, src=0, group=self._group)
        return requests if self.rank == 0 else [ControlRequest.model_validate(d) for d in payload[0]]


def _rejection(raw: bytes, err: ValidationError, step: int) -> ControlAckEvent:
    """The ack for an invalid request line; keeps its id and kind when readable so the sender can match it."""
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: a line nested too deep is just a bad line
        data = None
    data = data if isinstance(data, dict) else {}
    first = err.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "request"
    reason = f"{where}: {first['msg'].removeprefix('Value error, ')}"
    v = data.get("v")
    if isinstance(v, int) and v > CONTROL_VERSION:
        reason = f"request v{v} is newer than this engine's v{CONTROL_VERSION}: upgrade the engine"
    return ControlAckEvent(request_id=str(data.get("id", "")), kind=str(data.get("kind", "invalid")),
                           ok=False, step=step, message=f"rejected: {reason}")
