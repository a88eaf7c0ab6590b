"""Can this machine run this config? Checks before launch, each with the change that fixes it.

GPUs come from NVML (nvidia-ml-py, optional) so no torch/CUDA import is needed; CPU cores and free RAM
from psutil. Memory needs are the analytic estimates of estimate.py.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from nanochat_cli.services.config.estimate import memory_per_device, param_counts, shape_of


@dataclass(frozen=True)
class GpuInfo:
    index: int
    name: str
    total_bytes: int
    free_bytes: int
    capability: tuple[int, int]


@dataclass(frozen=True)
class MachineInfo:
    cpu_count: int
    ram_total_bytes: int
    ram_free_bytes: int
    gpus: tuple[GpuInfo, ...] = ()


@dataclass(frozen=True)
class Guardrail:
    level: str  # "warn" | "error"
    message: str
    remedy: str


def _visible(gpus: list[GpuInfo]) -> list[GpuInfo]:
    """Apply CUDA_VISIBLE_DEVICES when it lists indices (NVML itself ignores it)."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is None:
        return gpus
    wanted = [p.strip() for p in env.split(",") if p.strip()]
    if not all(p.isdigit() for p in wanted):
        return gpus  # UUIDs or MIG names: leave the list as NVML reports it
    by_index = {g.index: g for g in gpus}
    return [by_index[int(p)] for p in wanted if int(p) in by_index]


def _nvml_gpus() -> list[GpuInfo]:
    try:
        import pynvml
    except ImportError:
        return []
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:  # no driver / no GPU
        return []
    try:
        out = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            h = pynvml.nvmlDeviceGetHandleByIndex(i)
            mem = pynvml.nvmlDeviceGetMemoryInfo(h)
            name = pynvml.nvmlDeviceGetName(h)
            out.append(GpuInfo(i, name.decode() if isinstance(name, bytes) else name, int(mem.total), int(mem.free),
                               tuple(pynvml.nvmlDeviceGetCudaComputeCapability(h))))
        return out
    finally:
        pynvml.nvmlShutdown()


def detect_machine() -> MachineInfo:
    import psutil

    vm = psutil.virtual_memory()
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return MachineInfo(cpu_count=cpus, ram_total_bytes=vm.total, ram_free_bytes=vm.available,
                       gpus=tuple(_visible(_nvml_gpus())))


def _gb(n: float) -> str:
    return f"{n / 1e9:.1f} GB"


def _world_remedy(r: dict[str, Any], nproc: int) -> str:
    """Set nproc_per_node, plus a total batch that stays divisible by the new world size."""
    unit = r["training.device_batch_size"] * r["model.max_seq_len"] * nproc * r["hardware.nnodes"]
    total = r["training.total_batch_size"]
    fix = f"set hardware.nproc_per_node={nproc}"
    if total % unit:
        fix += f" and training.total_batch_size={-(-total // unit) * unit}"
    return fix


def _batch_remedy(r: dict[str, Any], device: str, budget: int, copies: int) -> str:
    """The largest smaller device_batch_size that fits `budget` and keeps the total batch divisible."""
    s = shape_of(r)
    counts = param_counts(s)
    world = r["hardware.nproc_per_node"] * r["hardware.nnodes"]
    total = r["training.total_batch_size"]
    for b in range(r["training.device_batch_size"] - 1, 0, -1):
        if total % (b * s.seq_len * world) == 0 and memory_per_device(r, s, counts, device, b) * copies <= budget:
            return f"set training.device_batch_size={b} (gradient accumulation keeps training.total_batch_size)"
    where = "a GPU with more memory" if device == "cuda" else "a machine with more RAM"
    return f"even device_batch_size=1 does not fit: lower model.depth or model.max_seq_len, or use {where}"


def check_machine(resolved: dict[str, Any], machine: MachineInfo | None = None) -> list[Guardrail]:
    """Warnings/errors for running `resolved` on `machine` (detected when None), each with its remedy."""
    m = machine or detect_machine()
    r = resolved
    out: list[Guardrail] = []
    nproc = r["hardware.nproc_per_node"]
    device = r["hardware.device"]
    if device == "auto":
        device = "cuda" if m.gpus else "cpu"
    s = shape_of(r)
    counts = param_counts(s)
    if device == "cuda":
        if not m.gpus:
            out.append(Guardrail("error", f"this config needs {nproc} CUDA GPU{'s' if nproc > 1 else ''} "
                                          "(hardware.device=cuda) but this machine has none",
                                 "run it on a GPU machine, or start from the cpu-tiny or cpu-small prefab"))
            return out
        if len(m.gpus) < nproc:
            out.append(Guardrail("error", f"hardware.nproc_per_node={nproc} but this machine has {len(m.gpus)} GPU"
                                          f"{'s' if len(m.gpus) > 1 else ''}", _world_remedy(r, len(m.gpus))))
        used = m.gpus[:nproc]
        need = memory_per_device(r, s, counts, "cuda")
        tightest = min(used, key=lambda g: g.free_bytes)
        if need > tightest.free_bytes:
            out.append(Guardrail("warn", f"estimated {_gb(need)} per GPU (weights, grads, optimizer state, "
                                         f"activations) but GPU {tightest.index} ({tightest.name}) has "
                                         f"{_gb(tightest.free_bytes)} free",
                                 _batch_remedy(r, "cuda", tightest.free_bytes, 1)))
        if r["training.fp8"] and min(g.capability for g in used) < (8, 9):
            out.append(Guardrail("error", f"training.fp8 needs compute capability 8.9+ but {used[0].name} is "
                                          f"{'.'.join(map(str, min(g.capability for g in used)))}",
                                 "set training.fp8=false"))
    else:
        if nproc > m.cpu_count:
            out.append(Guardrail("warn", f"hardware.nproc_per_node={nproc} CPU processes on {m.cpu_count} core"
                                         f"{'s' if m.cpu_count > 1 else ''}: they will compete for cores",
                                 _world_remedy(r, m.cpu_count)))
        need = memory_per_device(r, s, counts, "cpu") * nproc
        if need > m.ram_free_bytes:
            out.append(Guardrail("warn", f"estimated {_gb(need)} of RAM for {nproc} process"
                                         f"{'es' if nproc > 1 else ''} but {_gb(m.ram_free_bytes)} is available",
                                 _batch_remedy(r, "cpu", m.ram_free_bytes, nproc)))
    return out
