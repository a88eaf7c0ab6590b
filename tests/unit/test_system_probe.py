"""The system probe on a machine without GPU readings: "CPU only" where there is no NVIDIA GPU, a hint where
one is there but unreadable; the note goes to the app log once however many runs are watched."""

import logging
import sys

import pytest

from nanochat_cli.services.ingest import system
from nanochat_cli.services.ingest.system import CPU_ONLY, SystemProbe


class FailingNvml:
    NVMLError = RuntimeError

    def nvmlInit(self):
        raise RuntimeError("NVML Shared Library Not Found")


class NoDevices:
    def nvmlInit(self): ...
    def nvmlDeviceGetCount(self): return 0
    def nvmlShutdown(self): ...


@pytest.fixture(autouse=True)
def fresh_log(monkeypatch):
    monkeypatch.setattr(system, "_logged", set())


def test_a_machine_without_an_nvidia_gpu_is_cpu_only(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # nvidia-ml-py not installed
    assert SystemProbe(gpu_present=lambda: False).backend_note == CPU_ONLY
    assert SystemProbe(nvml=FailingNvml(), gpu_present=lambda: False).backend_note == CPU_ONLY
    assert SystemProbe(nvml=NoDevices(), gpu_present=lambda: True).backend_note == CPU_ONLY
    probe = SystemProbe(gpu_present=lambda: False)
    r = probe.read()
    assert r["gpu_count"] == 0 and r["ram_total"] > 0 and "cpu_percent" in r


def test_a_gpu_that_cannot_be_read_gets_a_hint_instead(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)
    assert SystemProbe(gpu_present=lambda: True).backend_note == (
        "no GPU readings: nvidia-ml-py is not installed (pip install nanochat-cli[gpu])")
    note = SystemProbe(nvml=FailingNvml(), gpu_present=lambda: True).backend_note
    assert note == "no GPU readings: NVML unavailable (RuntimeError: NVML Shared Library Not Found)"


class Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def test_the_note_is_logged_once_per_process(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)
    monkeypatch.setattr(system, "_logged", set())  # an earlier test in this worker process may have logged it
    records = Records()  # on the probe's own logger: the app's logger does not pass records up to pytest's
    system.log.addHandler(records)
    level = system.log.level
    system.log.setLevel(logging.INFO)  # setLevel, not the attribute: it also clears the logger's enabled-for cache
    try:
        for _ in range(3):  # a probe per watched run
            SystemProbe(gpu_present=lambda: False)
    finally:
        system.log.removeHandler(records)
        system.log.setLevel(level)
    assert records.messages == [f"system probe: {CPU_ONLY}"]


def test_gpu_presence_is_read_from_the_driver_files(monkeypatch, tmp_path):
    monkeypatch.setattr(system, "Path", lambda p: tmp_path / p.lstrip("/"))
    assert not system.nvidia_gpu_present()
    (tmp_path / "proc/driver/nvidia/gpus/0000:01:00.0").mkdir(parents=True)
    assert system.nvidia_gpu_present()
