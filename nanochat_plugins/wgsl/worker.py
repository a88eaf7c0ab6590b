"""Shader runs in a child process, with a time limit.

A dispatched shader runs to its end on the device: one with an endless loop (or a huge grid) blocks the
thread that submitted it, and wgpu cannot cancel it. So `wgsl run`, generation and the training samples run
shaders through a `ShaderWorker`: a spawned process that keeps its WebGPU device between calls (the adapter
takes 1-2 s to start) and is killed and replaced when a call takes longer than its timeout. The caller then
gets a one-line `ShaderTimeout` instead of a hung process.
"""

from __future__ import annotations

import atexit
import multiprocessing as mp
import time
from typing import Any

from nanochat_plugins.wgsl import gpu
from nanochat_plugins.wgsl.errors import WgslError

DEFAULT_TIMEOUT_S = 10.0
START_TIMEOUT_S = 60.0  # a cold start imports numpy and wgpu and opens the adapter


_shared: dict[str, ShaderWorker | None] = {}


class ShaderTimeout(WgslError):
    """A shader run took longer than the worker's timeout (its process was killed)."""


def _serve(conn: Any) -> None:
    """The child's loop: (name, args) in, ("ok", result) | (error class name, message) out."""
    from nanochat_plugins.wgsl import runner, templates

    def run_case(source: str, family: str, params: dict, seed: int, entry: str | None) -> Any:
        return runner.run_case(source, templates.case_for(family, params, seed), entry)

    def start() -> str:
        gpu.device()  # the adapter's start-up is not the shader's time
        return "ready"

    calls = {"run_case": run_case, "dispatch": runner.dispatch, "start": start}
    while True:
        try:
            name, args = conn.recv()
        except (EOFError, OSError):
            return
        try:
            conn.send(("ok", calls[name](*args)))
        except gpu.NoAdapter as e:
            conn.send(("NoAdapter", str(e)))
        except WgslError as e:
            conn.send(("WgslError", str(e)))
        except Exception as e:  # anything else is still one line for the caller
            conn.send(("WgslError", f"{type(e).__name__}: {e}"))


class ShaderWorker:
    """Runs shaders in a child process; a call over `timeout` seconds kills it (the next call starts another)."""

    def __init__(self, timeout: float = DEFAULT_TIMEOUT_S):
        if not timeout > 0:
            raise WgslError(f"timeout={timeout}: must be a positive number of seconds")
        self.timeout = timeout
        self._proc: Any = None
        self._conn: Any = None

    def _start(self) -> None:
        ctx = mp.get_context("spawn")  # never fork a process that holds torch threads or a GPU device
        parent, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, args=(child,), daemon=True, name="wgsl-shader-worker")
        self._proc.start()
        child.close()
        self._conn = parent

    def _call(self, name: str, args: tuple, timeout: float) -> Any:
        if name != "start":
            self.warm()
        t0 = time.monotonic()
        try:
            self._conn.send((name, args))
            ready = self._conn.poll(timeout)
        except (OSError, EOFError, BrokenPipeError):
            ready = False
        if not ready:
            alive = self._proc.is_alive()
            self.close()
            if alive:
                raise ShaderTimeout(f"shader run: no result after {time.monotonic() - t0:.1f} s (an endless loop or "
                                    f"a very large grid?): killed it; raise --timeout if it needs longer")
            raise WgslError("shader run: the worker process died (a driver crash?): try again, or run "
                            "`nanochat-cli wgsl check`")
        try:
            kind, value = self._conn.recv()
        except (EOFError, OSError):
            self.close()
            raise WgslError("shader run: the worker process died (a driver crash?): try again, or run "
                            "`nanochat-cli wgsl check`") from None
        if kind == "ok":
            return value
        raise (gpu.NoAdapter if kind == "NoAdapter" else WgslError)(value)

    def warm(self) -> None:
        """Start the process and its adapter now, so the first run's time is the run's own."""
        if self._proc is None or not self._proc.is_alive():
            self._start()
            self._call("start", (), START_TIMEOUT_S)

    def run_case(self, source: str, family: str, params: dict, seed: int, entry: str | None = None) -> Any:
        """runner.run_case on the test of a dataset pair (family, params, seed), in the child."""
        return self._call("run_case", (source, family, params, seed, entry), self.timeout)

    def dispatch(self, source: str, data: dict, read: list, grid: tuple[int, int, int],
                 entry: str | None = None) -> tuple[dict, float]:
        """runner.dispatch in the child: (the `read` bindings' bytes, seconds)."""
        return self._call("dispatch", (source, data, read, grid, entry), self.timeout)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._proc is not None:
            if self._proc.is_alive():
                self._proc.kill()
            self._proc.join(5)
            self._proc = None

    @classmethod
    def shared(cls, timeout: float = DEFAULT_TIMEOUT_S) -> ShaderWorker:
        """This process's long-lived worker (its adapter starts once); closed at exit."""
        if _shared.get("worker") is None:
            _shared["worker"] = cls(timeout)
            atexit.register(_shared["worker"].close)
        worker = _shared["worker"]
        if not timeout > 0:
            raise WgslError(f"timeout={timeout}: must be a positive number of seconds")
        worker.timeout = timeout
        return worker

    def __enter__(self) -> ShaderWorker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
