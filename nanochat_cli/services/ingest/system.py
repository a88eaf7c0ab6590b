"""SystemProbe: this machine's GPUs (util, VRAM, temperature, power via NVML) or, without one, CPU and RAM.

NVML comes from the optional `nvidia-ml-py` package (`pip install nanochat-cli[gpu]`). Without readings the probe
says why in `backend_note`: "CPU only" on a machine with no NVIDIA GPU (no driver device files), an install or
driver hint when a GPU is there but cannot be read. CPU and RAM come from psutil in every case, so the system
panel always has something true to show. The note goes to the app log once per process, however many runs are
watched.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from engine.shared import one_line

log = logging.getLogger(__name__)

CPU_ONLY = "CPU only: no NVIDIA GPU on this machine"
_logged: set[str] = set()  # notes already in the app log (one probe per watched run; one line per process)


def nvidia_gpu_present() -> bool:
    """Whether an NVIDIA driver exposes a GPU here (its device files), asked without NVML."""
    gpus = Path("/proc/driver/nvidia/gpus")
    return Path("/dev/nvidia0").exists() or (gpus.is_dir() and any(gpus.iterdir()))


class SystemProbe:
    """read() -> flat dict of floats: cpu_percent, ram_used, ram_total, ram_percent, gpu_count and, per GPU i,
    gpu{i}.util (%), gpu{i}.mem_used, gpu{i}.mem_total (bytes), gpu{i}.temp (°C), gpu{i}.power_w."""

    def __init__(self, nvml: Any | None = None, gpu_present: Callable[[], bool] | None = None):
        # nvml: an object with pynvml's API; None imports pynvml (tests pass a stand-in for a GPU box);
        # gpu_present: whether this machine has an NVIDIA GPU at all, for the note when NVML cannot tell
        gpu_present = gpu_present or nvidia_gpu_present
        self.backend = "psutil"
        self.backend_note = ""
        self.gpu_names: list[str] = []
        self._nvml = None
        self._handles: list[Any] = []
        try:
            if nvml is None:
                import pynvml as nvml
            nvml.nvmlInit()
            self._handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(nvml.nvmlDeviceGetCount())]
            self.gpu_names = [_text(nvml.nvmlDeviceGetName(h)) for h in self._handles]
            self._nvml, self.backend = nvml, "nvml"
        except ImportError:
            self.backend_note = ("no GPU readings: nvidia-ml-py is not installed (pip install nanochat-cli[gpu])"
                                 if gpu_present() else CPU_ONLY)
        except Exception as e:  # NVMLError: no driver / no device; the panel shows CPU and RAM instead
            self.backend_note = (f"no GPU readings: NVML unavailable ({one_line(e)})" if gpu_present()
                                 else CPU_ONLY)
        else:
            if not self._handles:
                self.backend_note = CPU_ONLY
        if self.backend_note and self.backend_note not in _logged:
            _logged.add(self.backend_note)
            log.info("system probe: %s", self.backend_note)
        psutil.cpu_percent(None)  # primes the counter: the first real reading then covers the interval

    def read(self) -> dict[str, float]:
        vm = psutil.virtual_memory()
        out = {"cpu_percent": float(psutil.cpu_percent(None)), "ram_used": float(vm.total - vm.available),
               "ram_total": float(vm.total), "ram_percent": float(vm.percent), "gpu_count": float(len(self._handles))}
        nv = self._nvml
        for i, h in enumerate(self._handles):
            readers = {
                "util": lambda h=h: nv.nvmlDeviceGetUtilizationRates(h).gpu,
                "mem_used": lambda h=h: nv.nvmlDeviceGetMemoryInfo(h).used,
                "mem_total": lambda h=h: nv.nvmlDeviceGetMemoryInfo(h).total,
                "temp": lambda h=h: nv.nvmlDeviceGetTemperature(h, nv.NVML_TEMPERATURE_GPU),
                "power_w": lambda h=h: nv.nvmlDeviceGetPowerUsage(h) / 1000.0,
            }
            for key, fn in readers.items():
                try:
                    out[f"gpu{i}.{key}"] = float(fn())
                except Exception:  # NVMLError_NotSupported on some boards: leave that reading out
                    continue
        return out

    def close(self) -> None:
        if self._nvml is not None:
            try:
                self._nvml.nvmlShutdown()
            except Exception as e:
                log.info("system probe: nvmlShutdown failed: %s", one_line(e))
            self._nvml, self._handles = None, []


def _text(name: str | bytes) -> str:
    return name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name)


