"""Thread counts are chosen on purpose: trainer processes share the cores; the app's own inference takes the idle
ones. Devices named 'auto' resolve to this machine's best."""

import pytest

from nanochat_cli.services import compute


@pytest.mark.parametrize(("cpus", "load", "threads"), [
    (2, 0.0, 2),  # an idle machine: every core
    (2, 0.4, 1),  # a partly busy core counts as busy
    (2, 4.5, 1),  # a busy machine: one thread, never zero
    (16, 3.2, 12),
    (16, 40.0, 1),
])
def test_inference_takes_the_idle_cores(cpus, load, threads):
    assert compute.inference_threads(cpus=cpus, load=load) == threads


@pytest.mark.parametrize(("nproc", "cpus", "threads"), [(2, 2, 1), (1, 16, 16), (8, 16, 2), (3, 2, 1)])
def test_trainer_processes_share_the_cores(nproc, cpus, threads):
    assert compute.trainer_threads(nproc, cpus=cpus) == threads


def test_inference_threads_read_this_machine_when_not_given(monkeypatch):
    monkeypatch.setattr(compute, "available_cpus", lambda: 6)
    monkeypatch.setattr(compute.psutil, "getloadavg", lambda: (2.5, 1.0, 1.0))
    assert compute.inference_threads() == 3


def test_devices_resolve_and_named_ones_stay():
    assert compute.config_device({"hardware.device": "cpu"}) == "cpu"
    assert compute.config_device({}) == "cpu"
    assert compute.resolve_device("cuda") == "cuda"
    assert compute.resolve_device("auto") in ("cpu", "cuda", "mps")
