"""Sandboxed execution of model-written Python (the <|python_start|> ... <|python_end|> tool).

Linux only. Untrusted code runs in a fresh `python -I -S` child (never a fork of the host), in its
own session, with an empty temporary working dir and a scrubbed environment. The child confines
itself in layers before the user code starts (engine.sandbox_child: rlimits, namespaces, no
capabilities, a uid of its own when the host is root, landlock, seccomp, an audit hook), so that it
cannot act on the host or any other process. Layers the kernel refuses are skipped and listed as
missing in `ExecutionResult.layers`, which names the ones that were active.

This module is the host side: it starts the child, enforces a wall-clock timeout (kills the whole
process group), reads stdout/stderr incrementally with a cap (killing the child when it floods), and
classifies the run only from what it observes itself: the exit status, signals, its own timers and
output sizes. The child's only other channel, one line naming its layers, is closed before the user
code runs. The temporary working dir is removed on every path, also when the host's own calls fail.
Only the stdlib is importable inside (no site-packages).
"""

from __future__ import annotations

import errno
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from engine.errors import EngineError
from engine.sandbox_child import BLOCKED_EXITS, MEMORY_EXIT, config_argv

__all__ = ["ExecutionResult", "execute_code", "LAYERS"]

LAYERS = ("namespaces", "capabilities", "uid", "landlock", "seccomp", "audit")  # switchable in tests/diagnosis
_STATUSES = ("ok", "timeout", "memory", "error", "blocked")
_FLOOD_FACTOR = 4  # kill the child once a stream has sent this many times the output cap


@dataclass(frozen=True)
class ExecutionResult:
    status: str  # one of ok, timeout, memory, error, blocked
    stdout: str
    stderr: str
    exit_code: int | None  # negative: killed by that signal
    duration: float  # seconds, wall clock
    reason: str = ""  # why it did not end "ok", one line
    layers: tuple[str, ...] = ()  # isolation layers that were active in the child

    def as_tool_output(self) -> str:
        """What is fed back to the model: stdout on success, else one short error line."""
        if self.status == "ok":
            return self.stdout
        return f"Error: {self.reason}" if self.reason else f"Error: {self.status}"


def execute_code(code: str, timeout: float = 5.0, cpu_seconds: int = 5, memory_bytes: int = 256 * 2**20,
                 max_output_bytes: int = 64 * 1024, max_file_bytes: int = 1 * 2**20, *,
                 max_disk_bytes: int = 16 * 2**20, disable: tuple[str, ...] = ()) -> ExecutionResult:
    """Run `code` in the sandbox and return what happened. Never raises for anything the code does.

    max_disk_bytes caps the tmpfs working dir (only where the mount namespace is available).
    disable switches off named LAYERS, to check that the others contain an attack on their own.
    """
    if not sys.platform.startswith("linux"):
        raise EngineError(f"execute_code: the sandbox needs Linux, this is {sys.platform}: run tool code on Linux")
    _check_limits(timeout, cpu_seconds, memory_bytes, max_output_bytes, max_file_bytes, max_disk_bytes, disable)
    try:
        workdir = tempfile.mkdtemp(prefix="nanochat-exec-")
    except OSError as e:
        fix = "close files or raise `ulimit -n`" if e.errno in (errno.EMFILE, errno.ENFILE) else "check TMPDIR"
        raise EngineError(f"execute_code: cannot create its working dir: {e}: {fix}") from e
    config = dict(workdir=workdir, cpu_seconds=cpu_seconds, memory_bytes=memory_bytes,
                  max_file_bytes=max_file_bytes, max_disk_bytes=max_disk_bytes, disable=list(disable))
    try:
        result = _run_child(code, config, timeout, max_output_bytes)
    except BaseException as e:
        problem = _remove_tree(workdir)
        if problem:
            e.add_note(problem)
        raise
    problem = _remove_tree(workdir)
    if problem:
        raise EngineError(problem)
    return result


def _check_limits(timeout, cpu_seconds, memory_bytes, max_output_bytes, max_file_bytes, max_disk_bytes, disable):
    checks = [("timeout", timeout > 0, "a positive number of seconds"),
              ("cpu_seconds", isinstance(cpu_seconds, int) and cpu_seconds >= 1, "an int >= 1"),
              ("memory_bytes", memory_bytes >= 64 * 2**20, "at least 64 MiB (the interpreter needs ~20 MiB)"),
              ("max_output_bytes", max_output_bytes >= 1, "a positive int"),
              ("max_file_bytes", max_file_bytes >= 0, "an int >= 0"),
              ("max_disk_bytes", max_disk_bytes >= 4096, "at least 4096")]
    for name, ok, fix in checks:
        if not ok:
            raise EngineError(f"execute_code: {name} is out of range: use {fix}")
    unknown = sorted(set(disable) - set(LAYERS))
    if unknown:
        raise EngineError(f"execute_code: unknown layer(s) in disable: {unknown}: choose from {list(LAYERS)}")


# -------------------------------------------------------------------------------------------------
# Host side: spawn, feed, watch, cap, classify.

def _run_child(code: str, config: dict, timeout: float, cap: int) -> ExecutionResult:
    """Start the child, feed it the code, watch it to the end; every fd opened here is closed on return."""
    try:
        report_r, report_w = os.pipe()
    except OSError as e:
        raise _host_failure("create a pipe", e) from e
    config["report_fd"] = report_w
    root = str(Path(__file__).resolve().parents[1])
    stub = (f"import sys; sys.path.insert(0, {root!r}); import engine.sandbox_child as m; "
            "sys.path.remove(sys.path[0]); m.child_main()")
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": config["workdir"], "TMPDIR": config["workdir"]}
    start = time.monotonic()
    try:
        proc = subprocess.Popen([sys.executable, "-I", "-S", "-c", stub, *config_argv(config)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                cwd=config["workdir"], env=env, pass_fds=(report_w,), start_new_session=True)
    except OSError as e:
        os.close(report_r)
        raise _host_failure(f"start {sys.executable}", e) from e
    finally:
        os.close(report_w)
    report = os.fdopen(report_r, "rb")
    try:
        try:
            proc.stdin.write(code.encode("utf-8", "replace"))
        except BrokenPipeError:  # the child died before reading its code; its stderr says why
            pass
        proc.stdin.close()
        killed, out, err, report_bytes = _watch(proc, report, start + timeout, cap)
        killed, cpu_used = _reap(proc, start + timeout, killed)
    except BaseException as e:  # e.g. Ctrl-C or no fd left in the host: never leave the child running
        _kill(proc)
        proc.wait()
        if isinstance(e, OSError):
            raise _host_failure("watch the sandbox", e) from e
        raise
    finally:
        for f in (proc.stdin, proc.stdout, proc.stderr, report):
            f.close()
    duration = time.monotonic() - start
    # The one line the child wrote before the user code ran; the pipe was closed before it started.
    first, newline, _ = report_bytes.partition(b"\n")
    started = bool(newline) and first.startswith(b"layers ")
    layers = tuple(name for name in first[len(b"layers "):].decode("ascii", "replace").split(",") if name)
    stdout, stderr = _cap_text(out, cap), _cap_text(err, cap)
    status, reason = _classify(proc.returncode, killed, started, stderr, cpu_used, config, timeout, cap)
    return ExecutionResult(status, stdout, stderr, proc.returncode, duration, reason, layers if started else ())


def _host_failure(what: str, e: OSError) -> EngineError:
    fix = "close files or raise `ulimit -n`" if e.errno in (errno.EMFILE, errno.ENFILE) else "check the host"
    return EngineError(f"execute_code: the host could not {what}: {e}: {fix}")


def _watch(proc: subprocess.Popen, report, deadline: float, cap: int):
    """Read stdout, stderr and the report pipe until EOF, the deadline, or an output flood."""
    buffers = {proc.stdout.fileno(): bytearray(), proc.stderr.fileno(): bytearray(), report.fileno(): bytearray()}
    received = dict.fromkeys(buffers, 0)
    sel = selectors.DefaultSelector()
    for fd in buffers:
        sel.register(fd, selectors.EVENT_READ)
    killed = ""
    while sel.get_map() and not killed:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            killed = "timeout"
            break
        for key, _ in sel.select(remaining):
            chunk = os.read(key.fd, 1 << 16)
            if not chunk:
                sel.unregister(key.fd)
                continue
            received[key.fd] += len(chunk)
            keep = cap + 1 - len(buffers[key.fd])  # one byte past the cap marks truncation
            if keep > 0:
                buffers[key.fd] += chunk[:keep]
            if received[key.fd] > _FLOOD_FACTOR * cap:
                killed = "output"
    sel.close()
    if killed:
        _kill(proc)
    return (killed, *(bytes(buffers[f.fileno()]) for f in (proc.stdout, proc.stderr, report)))


def _reap(proc: subprocess.Popen, deadline: float, killed: str) -> tuple[str, float]:
    """Wait for the child (it may have closed its pipes and kept running) and return its CPU time."""
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() >= deadline and not killed:
            killed = "timeout"
            _kill(proc)
        time.sleep(0.002)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return killed, usage.ru_utime + usage.ru_stime


def _kill(proc: subprocess.Popen) -> None:
    for kill in (lambda: os.killpg(proc.pid, signal.SIGKILL), lambda: os.kill(proc.pid, signal.SIGKILL)):
        try:
            kill()
        except ProcessLookupError:
            pass


def _classify(rc, killed, started, stderr, cpu_used, config, timeout, cap) -> tuple[str, str]:
    """Status and reason from what the host saw: its timers, output sizes, the exit status or signal."""
    if killed == "timeout":
        return "timeout", f"timed out after {timeout:g} s (wall clock)"
    if killed == "output":
        return "error", f"output flood: more than {_FLOOD_FACTOR * cap} bytes on one stream, process killed"
    lines = [line for line in stderr.splitlines() if line.strip() and not line.startswith("[output truncated")]
    if not started:  # the child failed before the user code ran: the sandbox failed closed
        return "error", f"sandbox setup failed: {lines[-1].strip() if lines else f'exit code {rc}'}"
    if rc in BLOCKED_EXITS:
        return "blocked", f"blocked: {BLOCKED_EXITS[rc]} is not allowed"
    if rc == MEMORY_EXIT:
        return "memory", f"memory limit of {config['memory_bytes'] // 2**20} MiB exceeded"
    # SIGXCPU: the soft CPU limit; a SIGKILL we did not send after that much CPU: the hard one
    if rc == -signal.SIGXCPU or (rc == -signal.SIGKILL and cpu_used >= config["cpu_seconds"]):
        return "timeout", f"CPU time limit of {config['cpu_seconds']} s exceeded"
    if rc == 0:
        return "ok", ""
    if rc is not None and rc < 0:
        return "error", f"killed by {signal.Signals(-rc).name}"
    return "error", lines[-1].strip() if lines else f"exit code {rc}"


def _cap_text(data: bytes, cap: int) -> str:
    if len(data) <= cap:
        return data.decode("utf-8", "replace")
    return data[:cap].decode("utf-8", "replace") + f"\n[output truncated at {cap} bytes]"


def _remove_tree(path: str) -> str | None:
    """Delete the working dir; None once it is gone, else a one-line error. Never raises.

    Usually the dir is empty (the child wrote into its own tmpfs): rmdir needs no fd, so this works
    even when the host has none left. Otherwise a top-down walk makes every dir removable first
    (the code may have made parts of it unreadable) and the tree goes with one fd per level.
    """
    try:
        os.rmdir(path)
        return None
    except FileNotFoundError:
        return None
    except OSError as e:
        if e.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.EACCES, errno.EPERM):
            return f"execute_code: could not remove its working dir {path}: {e}"
    try:
        os.chmod(path, 0o700)
        for dirpath, dirnames, _ in os.walk(path):
            for d in dirnames:
                full = os.path.join(dirpath, d)
                if not os.path.islink(full):
                    os.chmod(full, 0o700)
        shutil.rmtree(path)
    except OSError as e:
        return f"execute_code: could not remove its working dir {path}: {e}"
    return None
