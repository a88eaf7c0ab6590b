"""Torch-side plumbing: distributed setup, device and dtype (the torch-free shared pieces are in shared.py).

Kept tiny on purpose: anything with a single user lives next to that user.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist

from engine.errors import EngineError

__all__ = ["EngineError", "DistInfo", "print0", "init_distributed", "cleanup_distributed", "compute_dtype",
           "autodetect_device_type"]


def print0(*args, **kwargs) -> None:
    if int(os.environ.get("RANK", 0)) == 0:
        print(*args, **kwargs, flush=True)


@dataclass(frozen=True)
class DistInfo:
    ddp: bool
    rank: int
    local_rank: int
    world_size: int
    device: torch.device

    @property
    def master(self) -> bool:
        return self.rank == 0


def autodetect_device_type() -> str:
    if torch.cuda.is_available():
        return "cuda"
    if torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def init_distributed(device_type: str = "") -> DistInfo:
    """Initialise torch.distributed from torchrun's env vars (gloo on CPU, NCCL on CUDA)."""
    device_type = device_type or autodetect_device_type()
    if device_type == "cuda" and not torch.cuda.is_available():
        raise EngineError("device_type=cuda but no CUDA device is visible: set device_type=cpu or run on a GPU node")
    rank = int(os.environ.get("RANK", 0))
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    world_size = int(os.environ.get("WORLD_SIZE", 1))
    ddp = "RANK" in os.environ and world_size > 1
    if device_type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    else:
        device = torch.device(device_type)
    if ddp and not dist.is_initialized():
        backend = "nccl" if device_type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, device_id=device if device_type == "cuda" else None)
        dist.barrier()
    return DistInfo(ddp=ddp, rank=rank, local_rank=local_rank, world_size=world_size, device=device)


def cleanup_distributed(synchronize: bool = False) -> None:
    """Tear down the process group. After a clean run, `synchronize` waits for every rank first: a gloo
    rank that destroys its group while a peer is still working aborts its process ("terminate called
    without an active exception"), and torchrun then kills the peer mid-write."""
    if not dist.is_initialized():
        return
    if synchronize:
        try:
            dist.barrier()
        except Exception:  # a peer already gone: nothing left to wait for
            pass
    dist.destroy_process_group()


@contextmanager
def cpu_threads(n: int | None) -> Iterator[None]:
    """torch's CPU threads set to `n` inside the block (None: left as they are), the caller's count restored."""
    before = torch.get_num_threads()
    if n is None or n == before:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def compute_dtype(device: torch.device) -> torch.dtype:
    """fp32 on CPU/MPS; bf16 on CUDA SM80+ (Ampere and newer), fp32 on older GPUs."""
    if device.type == "cuda" and torch.cuda.get_device_capability(device)[0] >= 8:
        return torch.bfloat16
    return torch.float32
