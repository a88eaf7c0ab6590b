"""Tests that validate and run shaders on a WebGPU adapter. Without one they are skipped, saying how to get
one; under CI (CI=true), which installs lavapipe in .ci/run, a missing adapter fails them instead."""

import os

import pytest

from nanochat_plugins.wgsl import gpu


@pytest.fixture(scope="session", autouse=True)
def adapter() -> gpu.AdapterInfo:
    try:
        return gpu.adapter_info()
    except gpu.NoAdapter as e:
        if os.environ.get("CI"):
            pytest.fail(f"CI must have a WebGPU adapter (.ci/run installs lavapipe): {e}")
        pytest.skip(f"no WebGPU adapter: {e}")
