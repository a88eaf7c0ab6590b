"""The WebGPU device, through the `wgpu` package (it bundles wgpu-native, and with it naga).

One adapter and device per process, made on first use (about a second with lavapipe, Mesa's software
Vulkan driver). Without `wgpu` or without any adapter, `device()` raises a one-line `WgslError` that says how
to fix it; nothing else in the plugin needs a device.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nanochat_plugins.wgsl.errors import WgslError

INSTALL_WGPU = "pip install 'nanochat-cli[wgsl]' (or pip install wgpu)"
INSTALL_ADAPTER = ("install a Vulkan driver: apt-get install mesa-vulkan-drivers (lavapipe, a software adapter "
                   "that needs no GPU), or run on a machine with a GPU")


class NoAdapter(WgslError):
    """No WebGPU adapter (or no wgpu): validation and runs are unavailable; everything else works."""


@dataclass(frozen=True)
class AdapterInfo:
    device: str  # e.g. "llvmpipe (LLVM 15.0.6, 256 bits)"
    backend: str  # Vulkan, OpenGL, Metal, D3D12
    adapter_type: str  # CPU, DiscreteGPU, IntegratedGPU ...
    description: str  # the driver, e.g. "Mesa 22.3.6 (LLVM 15.0.6)"
    wgpu_version: str
    wgpu_native_version: str


_state: dict[str, Any] = {}


def _quiet_environment() -> None:
    """Mesa prints 'XDG_RUNTIME_DIR is invalid or not set' on stderr when the variable is unset: give it a
    private folder."""
    if not os.environ.get("XDG_RUNTIME_DIR"):
        runtime = Path(tempfile.gettempdir()) / f"nanochat-xdg-{os.getuid()}"
        try:
            runtime.mkdir(mode=0o700, exist_ok=True)
            if runtime.stat().st_uid == os.getuid():
                os.environ["XDG_RUNTIME_DIR"] = str(runtime)
        except OSError:
            pass  # only a warning on stderr is at stake


def _quiet_logger() -> None:
    """wgpu logs through Python logging; a NullHandler keeps its records off a bare terminal (they still
    reach any handler the application configures on the root logger)."""
    # after `import wgpu`: it installs its own logger class under that name and asserts it did
    logger = logging.getLogger("wgpu")
    if not any(isinstance(h, logging.NullHandler) for h in logger.handlers):
        logger.addHandler(logging.NullHandler())


def wgpu_module() -> Any:
    """The `wgpu` package, or a one-line NoAdapter error saying how to install it."""
    if "wgpu" not in _state:
        _quiet_environment()
        try:
            import wgpu
        except ImportError as e:
            raise NoAdapter(f"wgpu: not installed ({e}): {INSTALL_WGPU}") from None
        _quiet_logger()
        _state["wgpu"] = wgpu
    return _state["wgpu"]


def device() -> Any:
    """The process's GPUDevice (made once); NoAdapter when there is no adapter."""
    if "device" in _state:
        return _state["device"]
    if "error" in _state:
        raise NoAdapter(_state["error"])
    wgpu = wgpu_module()
    try:
        adapter = wgpu.gpu.request_adapter_sync(power_preference="high-performance")
        dev = adapter.request_device_sync()
    except Exception as e:  # wgpu-native reports "no adapter" as RuntimeError; anything else means the same here
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        _state["error"] = f"WebGPU: no adapter ({first}): {INSTALL_ADAPTER}"
        raise NoAdapter(_state["error"]) from None
    _state["adapter"], _state["device"] = adapter, dev
    return dev


def adapter_info() -> AdapterInfo:
    device()
    wgpu = _state["wgpu"]
    info = _state["adapter"].info
    native = ""
    try:
        from wgpu.backends.wgpu_native import __version__ as native  # type: ignore[no-redef]
    except ImportError:
        pass
    return AdapterInfo(device=str(info.get("device", "")), backend=str(info.get("backend_type", "")),
                       adapter_type=str(info.get("adapter_type", "")), description=str(info.get("description", "")),
                       wgpu_version=str(wgpu.__version__), wgpu_native_version=str(native))


def available() -> bool:
    """True when a device can be had (makes it on the first call)."""
    try:
        device()
    except NoAdapter:
        return False
    return True
