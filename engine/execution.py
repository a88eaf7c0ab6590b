"""Sandboxed execution of model-written Python (the <|python_start|> ... <|python_end|> tool).

Linux only. Untrusted code runs in a fresh `python -I -S` child (never a fork of the host), in its
own session, with an empty temporary working dir and a scrubbed environment. Before the user code
starts, the child confines itself in layers, each one enough on its own for the attacks it covers:

- rlimits: CPU seconds, address space, file size, no core dumps, few fds, no new processes (the last
  does not bind root, which is why the layers below exist);
- namespaces (root or user namespaces): a private network namespace with no interfaces, and a
  private mount namespace with a size-capped tmpfs as the working dir;
- no capabilities: a root child drops every capability (and the bounding set) while still root;
- landlock (kernel LSM, binds root too): reads only the stdlib, /usr, /lib and a few devices, writes
  only the working dir, no TCP bind/connect, no signals or abstract sockets outside the sandbox;
- seccomp (x86_64, aarch64): no fork/exec, no socket(), no signals to other processes, no ptrace,
  mount, module loading, io_uring and similar;
- an audit hook (sys.addaudithook): names the blocked action and ends the run with status "blocked".
  It explains; the kernel layers above are what contain code that gets past it.

Layers the kernel refuses (no root, no landlock, another CPU) are skipped and listed as missing in
`ExecutionResult.layers`, which names the ones that were active. The host enforces a wall-clock
timeout (kills the whole process group) and reads stdout/stderr incrementally with a cap, killing
the child when it floods. Only the stdlib is importable inside (no site-packages).
"""

from __future__ import annotations

import builtins
import ctypes
import errno
import json
import linecache
import os
import pathlib
import platform
import resource
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from engine.errors import EngineError

__all__ = ["ExecutionResult", "execute_code", "LAYERS"]

LAYERS = ("namespaces", "capabilities", "landlock", "seccomp", "audit")  # switchable in tests/diagnosis
_STATUSES = ("ok", "timeout", "memory", "error", "blocked")
_FLOOD_FACTOR = 4  # kill the child once a stream has sent this many times the output cap
_CODE_NAME = "<code>"


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
    workdir = tempfile.mkdtemp(prefix="nanochat-exec-")
    try:
        config = dict(workdir=workdir, cpu_seconds=cpu_seconds, memory_bytes=memory_bytes,
                      max_file_bytes=max_file_bytes, max_disk_bytes=max_disk_bytes, disable=list(disable))
        return _run_child(code, config, timeout, max_output_bytes)
    finally:
        _remove_tree(workdir)


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
    report_r, report_w = os.pipe()
    config["report_fd"] = report_w
    root = str(Path(__file__).resolve().parents[1])
    stub = (f"import sys; sys.path.insert(0, {root!r}); import engine.execution as m; "
            "sys.path.remove(sys.path[0]); m._child_main()")
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": config["workdir"], "TMPDIR": config["workdir"]}
    start = time.monotonic()
    try:
        proc = subprocess.Popen([sys.executable, "-I", "-S", "-c", stub, json.dumps(config)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                cwd=config["workdir"], env=env, pass_fds=(report_w,), start_new_session=True)
    except OSError as e:
        os.close(report_r)
        raise EngineError(f"execute_code: cannot start {sys.executable}: {e}: check the Python install") from e
    finally:
        os.close(report_w)
    try:
        proc.stdin.write(code.encode("utf-8", "replace"))
    except BrokenPipeError:  # the child died before reading its code; its stderr says why
        pass
    proc.stdin.close()
    report = os.fdopen(report_r, "rb")
    try:
        killed, out, err, report_bytes = _watch(proc, report, start + timeout, cap)
        killed, cpu_used = _reap(proc, start + timeout, killed)
    except BaseException:  # e.g. Ctrl-C in the host: never leave the child running
        _kill(proc)
        proc.wait()
        raise
    finally:
        for f in (proc.stdout, proc.stderr, report):
            f.close()
    duration = time.monotonic() - start
    notes = {}  # first word of each line -> the rest; the first wins, so user code cannot overwrite
    for line in report_bytes.decode("utf-8", "replace").splitlines():
        key, _, value = line.partition(" ")
        notes.setdefault(key, value)
    stdout, stderr = _cap_text(out, cap), _cap_text(err, cap)
    status, reason = _classify(proc.returncode, killed, notes, stderr, cpu_used, config, timeout, cap)
    layers = tuple(notes.get("layers", "").split(",")) if notes.get("layers") else ()
    return ExecutionResult(status, stdout, stderr, proc.returncode, duration, reason, layers)


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


def _classify(rc, killed, notes, stderr, cpu_used, config, timeout, cap) -> tuple[str, str]:
    if "blocked" in notes:
        return "blocked", f"blocked: {notes['blocked']}"
    if killed == "timeout":
        return "timeout", f"timed out after {timeout:g} s (wall clock)"
    if killed == "output":
        return "error", f"output flood: more than {_FLOOD_FACTOR * cap} bytes on one stream, process killed"
    if "memory" in notes:
        return "memory", f"memory limit of {config['memory_bytes'] // 2**20} MiB exceeded ({notes['memory']})"
    # SIGXCPU: the soft CPU limit; a SIGKILL we did not send after that much CPU: the hard one
    if rc == -signal.SIGXCPU or (rc == -signal.SIGKILL and cpu_used >= config["cpu_seconds"]):
        return "timeout", f"CPU time limit of {config['cpu_seconds']} s exceeded"
    lines = [line for line in stderr.splitlines() if line.strip() and not line.startswith("[output truncated")]
    if "layers" not in notes:  # the child failed before the user code ran: the sandbox failed closed
        return "error", f"sandbox setup failed: {lines[-1].strip() if lines else f'exit code {rc}'}"
    if rc == 0:
        return "ok", ""
    if rc is not None and rc < 0:
        return "error", f"killed by {signal.Signals(-rc).name}"
    return "error", lines[-1].strip() if lines else f"exit code {rc}"


def _cap_text(data: bytes, cap: int) -> str:
    if len(data) <= cap:
        return data.decode("utf-8", "replace")
    return data[:cap].decode("utf-8", "replace") + f"\n[output truncated at {cap} bytes]"


def _remove_tree(path: str) -> None:
    """Delete the working dir, even where the code made parts of it unreadable (top-down walk)."""
    os.chmod(path, 0o700)
    for dirpath, dirnames, _ in os.walk(path):
        for d in dirnames:
            full = os.path.join(dirpath, d)
            if not os.path.islink(full):
                os.chmod(full, 0o700)
    shutil.rmtree(path)


# -------------------------------------------------------------------------------------------------
# Child side: runs inside `python -I -S`, confines itself, then runs the user code.

_READ_ONLY_PATHS = ("/usr", "/lib", "/lib64", "/etc/ld.so.cache", "/dev/urandom", "/dev/zero")
_LIBC = None


def _child_main() -> None:
    config = json.loads(sys.argv[1])
    code = sys.stdin.buffer.read().decode("utf-8")
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.close(null)
    report_fd, workdir = config["report_fd"], config["workdir"]
    layers = _confine(config)
    sys.argv = [_CODE_NAME]
    for name in [n for n in sys.modules if n.startswith(("engine", "subprocess", "_posixsubprocess", "ctypes",
                                                          "_ctypes"))]:
        del sys.modules[name]  # a fresh import of these then passes through the audit hook
    os.write(report_fd, f"layers {','.join(layers)}\n".encode())
    _run_user_code(code, report_fd, workdir)


def _confine(config: dict) -> list[str]:
    """Apply every available layer, strongest-privilege steps first; return the active layers."""
    off, workdir = set(config["disable"]), config["workdir"]
    limits = [(resource.RLIMIT_CORE, 0), (resource.RLIMIT_NOFILE, 64), (resource.RLIMIT_NPROC, 0),
              (resource.RLIMIT_FSIZE, config["max_file_bytes"]), (resource.RLIMIT_AS, config["memory_bytes"])]
    for which, value in limits:
        resource.setrlimit(which, (value, value))
    resource.setrlimit(resource.RLIMIT_CPU, (config["cpu_seconds"], config["cpu_seconds"] + 1))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # an oversized write raises OSError(EFBIG) instead
    layers = ["rlimits"]
    if "namespaces" not in off:
        layers += _enter_namespaces(workdir, config["max_disk_bytes"])
    os.chdir(workdir)  # after the tmpfs mount, so the cwd is the tmpfs
    if "capabilities" not in off and _drop_capabilities():
        layers.append("no-capabilities")
    _libc().prctl(38, 1, 0, 0, 0)  # PR_SET_NO_NEW_PRIVS: needed by landlock and seccomp without CAP_SYS_ADMIN
    read_roots = [p for p in sys.path if os.path.isdir(p) and not p.startswith(str(Path(__file__).parents[1]))]
    read_roots += list(_READ_ONLY_PATHS)
    if "landlock" not in off:
        layers += _landlock(workdir, read_roots)
    if "seccomp" not in off and _seccomp():
        layers.append("seccomp")
    if "audit" not in off:
        _install_audit_hook(config["report_fd"], workdir, read_roots)
        layers.append("audit-hook")
    return layers


def _libc():
    global _LIBC
    if _LIBC is None:
        _LIBC = ctypes.CDLL(None, use_errno=True)
    return _LIBC


def _enter_namespaces(workdir: str, disk_bytes: int) -> list[str]:
    """Private net namespace (no interfaces: no network at all) and a tmpfs working dir when allowed."""
    libc = _libc()
    newns, newnet, newuser = 0x00020000, 0x40000000, 0x10000000
    if libc.unshare(newnet | newns) == 0:
        # MS_REC | MS_PRIVATE on "/" so the tmpfs below never shows up on the host
        if libc.mount(None, b"/", None, 0x4000 | 0x40000, None) == 0 and libc.mount(
                b"tmpfs", workdir.encode(), b"tmpfs", 0x2 | 0x4,  # MS_NOSUID | MS_NODEV
                f"size={disk_bytes},mode=0700".encode()) == 0:
            return ["netns", "tmpfs"]
        return ["netns"]
    if libc.unshare(newuser | newnet) == 0:  # unprivileged: a user namespace makes the net namespace possible
        return ["netns"]
    return []


def _drop_capabilities() -> bool:
    """Clear every capability set (root stays uid 0 but powerless); True if there were any to drop."""
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    had_any = int(status["CapEff"], 16) != 0
    libc = _libc()
    last = int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    for cap in range(last + 1):
        # fails without CAP_SETPCAP; the bounding set then only matters across exec, which is blocked
        libc.prctl(24, cap, 0, 0, 0)  # PR_CAPBSET_DROP
    libc.prctl(47, 4, 0, 0, 0)  # PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this process
    data = (ctypes.c_uint32 * 6)()  # two all-zero {effective, permitted, inheritable} words
    if libc.capset(header, data) != 0:
        raise OSError(ctypes.get_errno(), "capset failed")
    return had_any


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def _landlock(workdir: str, read_roots: list[str]) -> list[str]:
    """Landlock: filesystem allow-list, no TCP, signals and abstract sockets scoped to the sandbox."""
    libc = _libc()
    abi = libc.syscall(444, None, 0, 1)  # landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION)
    if abi < 1:
        return []
    fs_rights = (1 << 13) - 1 | (1 << 13 if abi >= 2 else 0) | (1 << 14 if abi >= 3 else 0) | \
        (1 << 15 if abi >= 5 else 0)
    file_rights = fs_rights & (1 | 2 | 4 | 1 << 14 | 1 << 15)  # execute, write, read, truncate, ioctl
    read_rights = 4 | 8  # READ_FILE | READ_DIR
    attr = (ctypes.c_uint64 * 3)(fs_rights, 3 if abi >= 4 else 0, 3 if abi >= 6 else 0)
    size = 24 if abi >= 6 else 16 if abi >= 4 else 8
    ruleset = libc.syscall(444, attr, size, 0)
    if ruleset < 0:
        raise OSError(ctypes.get_errno(), "landlock_create_ruleset failed")
    rules = [(p, read_rights) for p in read_roots] + [(workdir, fs_rights), ("/dev/null", 2 | 4)]
    for path, rights in rules:
        try:
            fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
        except FileNotFoundError:
            continue
        is_dir = os.path.isdir(f"/proc/self/fd/{fd}")
        rule = _PathBeneath(rights & (fs_rights if is_dir else file_rights), fd)
        ok = libc.syscall(445, ruleset, 1, ctypes.byref(rule), 0)  # LANDLOCK_RULE_PATH_BENEATH
        os.close(fd)
        if ok != 0:
            raise OSError(ctypes.get_errno(), f"landlock_add_rule failed for {path}")
    if libc.syscall(446, ruleset, 0) != 0:
        raise OSError(ctypes.get_errno(), "landlock_restrict_self failed")
    os.close(ruleset)
    return ["landlock-fs"] + (["landlock-net"] if abi >= 4 else []) + (["landlock-scope"] if abi >= 6 else [])


# syscall numbers (x86_64, aarch64) that the seccomp filter answers with EPERM
_DENY = {
    "fork": (57, None), "vfork": (58, None), "execve": (59, 221), "execveat": (322, 281),
    "tkill": (200, 130), "rt_sigqueueinfo": (129, 138), "rt_tgsigqueueinfo": (297, 240),
    "ptrace": (101, 117), "process_vm_readv": (310, 270), "process_vm_writev": (311, 271),
    "socket": (41, 198), "mount": (165, 40), "umount2": (166, 39), "pivot_root": (155, 41),
    "chroot": (161, 51), "unshare": (272, 97), "setns": (308, 268), "init_module": (175, 105),
    "finit_module": (313, 273), "delete_module": (176, 106), "kexec_load": (246, 104),
    "kexec_file_load": (320, 294), "reboot": (169, 142), "bpf": (321, 280), "perf_event_open": (298, 241),
    "userfaultfd": (323, 282), "name_to_handle_at": (303, 264), "open_by_handle_at": (304, 265),
    "add_key": (248, 217), "request_key": (249, 218), "keyctl": (250, 219),
    "pidfd_send_signal": (424, 424), "io_uring_setup": (425, 425), "io_uring_enter": (426, 426),
    "io_uring_register": (427, 427), "open_tree": (428, 428), "move_mount": (429, 429), "fsopen": (430, 430),
    "fsconfig": (431, 431), "fsmount": (432, 432), "fspick": (433, 433), "pidfd_open": (434, 434),
    "pidfd_getfd": (438, 438), "mount_setattr": (442, 442),
}
_SELF_ONLY = {"kill": (62, 129), "tgkill": (234, 131)}  # allowed only with our own pid as first argument
_CLONE, _CLONE3 = (56, 220), (435, 435)


def _seccomp() -> bool:
    """Install a seccomp-BPF filter; False on CPUs it has no syscall table for."""
    arch = {"x86_64": (0, 0xC000003E), "aarch64": (1, 0xC00000B7)}.get(platform.machine())
    if arch is None:
        return False
    col, audit_arch = arch
    ld, jeq, jset, jge, ret = 0x20, 0x15, 0x45, 0x35, 0x06
    allow, kill, eperm, enosys = 0x7FFF0000, 0x80000000, 0x50000 | errno.EPERM, 0x50000 | errno.ENOSYS
    arg0 = 16  # offsetof(struct seccomp_data, args[0]); the low 32 bits on little-endian
    prog = [(ld, 0, 0, 4), (jeq, 1, 0, audit_arch), (ret, 0, 0, kill), (ld, 0, 0, 0)]
    if col == 0:
        prog += [(jge, 0, 1, 0x40000000), (ret, 0, 0, eperm)]  # the x32 ABI would bypass every rule
    for nrs in _DENY.values():
        if nrs[col] is not None:
            prog += [(jeq, 0, 1, nrs[col]), (ret, 0, 0, eperm)]
    prog += [(jeq, 0, 1, _CLONE3[col]), (ret, 0, 0, enosys)]  # flags sit behind a pointer: make libc use clone
    # clone: threads (CLONE_THREAD) only
    prog += [(jeq, 0, 4, _CLONE[col]), (ld, 0, 0, arg0), (jset, 0, 1, 0x10000), (ret, 0, 0, allow),
             (ret, 0, 0, eperm)]
    for nrs in _SELF_ONLY.values():
        prog += [(jeq, 0, 4, nrs[col]), (ld, 0, 0, arg0), (jeq, 0, 1, os.getpid()), (ret, 0, 0, allow),
                 (ret, 0, 0, eperm)]
    prog.append((ret, 0, 0, allow))

    class Filter(ctypes.Structure):
        _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8),
                    ("k", ctypes.c_uint32)]

    class Program(ctypes.Structure):
        _fields_ = [("len", ctypes.c_uint16), ("filter", ctypes.POINTER(Filter))]

    filters = (Filter * len(prog))(*[Filter(*insn) for insn in prog])
    fprog = Program(len(prog), filters)
    if _libc().prctl(22, 2, ctypes.byref(fprog), 0, 0) != 0:  # PR_SET_SECCOMP, SECCOMP_MODE_FILTER
        raise OSError(ctypes.get_errno(), "installing the seccomp filter failed")
    return True


_PROCESS_EVENTS = frozenset({"os.fork", "os.forkpty", "os.exec", "os.posix_spawn", "os.spawn", "os.system",
                             "subprocess.Popen", "os.killpg", "cpython.PyInterpreterState_New"})
_NETWORK_EVENTS = frozenset({"urllib.Request", "http.client.connect", "ftplib.connect", "smtplib.connect",
                             "imaplib.open", "poplib.connect", "nntplib.connect", "telnetlib.Telnet.open",
                             "webbrowser.open"})
_INTROSPECTION_EVENTS = frozenset({"gc.get_objects", "gc.get_referrers", "gc.get_referents", "sys._current_frames",
                                   "sys._current_exceptions", "sys.settrace", "sys.setprofile", "code.__new__"})
# event -> ((index of a path argument, index of its dir_fd argument or None), ...)
_MUTATION_EVENTS = {
    "os.remove": ((0, 1),), "os.rmdir": ((0, 1),), "os.mkdir": ((0, 2),), "os.chmod": ((0, 2),),
    "os.chown": ((0, 3),), "os.truncate": ((0, None),), "os.utime": ((0, 3),), "os.chflags": ((0, None),),
    "os.lchflags": ((0, None),), "os.setxattr": ((0, None),), "os.removexattr": ((0, None),),
    "os.mkfifo": ((0, 2),), "os.mknod": ((0, 3),), "os.symlink": ((1, 2),), "os.rename": ((0, 2), (1, 3)),
    "os.link": ((1, 3),), "shutil.rmtree": ((0, 1),), "shutil.copyfile": ((1, None),),
    "shutil.copytree": ((1, None),), "shutil.move": ((0, None), (1, None)), "shutil.chown": ((0, None),),
}
_BLOCKED_IMPORTS = frozenset({"ctypes", "_ctypes", "_posixsubprocess", "_xxsubinterpreters", "_xxinterpchannels",
                              "_testcapi", "_testinternalcapi", "_testbuffer", "_testmultiphase",
                              "_testimportmultiple", "_testsinglephase", "_xxtestfuzz"})
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC


def _install_audit_hook(report_fd: int, workdir: str, read_roots: list[str]) -> None:
    """Audit hook that ends the run with a reason on the first forbidden action.

    Everything it consults (tables, os functions, builtins) is bound to locals here, so user code
    that rebinds module globals, os attributes or builtins cannot change its decisions.
    """
    realpath, join, getcwd, readlink, fsdecode = os.path.realpath, os.path.join, os.getcwd, os.readlink, os.fsdecode
    write, exit_now, getpid = os.write, os._exit, os.getpid
    isinstance_, type_, str_, path_types = isinstance, type, str, (pathlib.PurePosixPath, pathlib.PosixPath)
    process, network, introspection = _PROCESS_EVENTS, _NETWORK_EVENTS, _INTROSPECTION_EVENTS
    mutations, blocked_imports, write_flags = dict(_MUTATION_EVENTS), _BLOCKED_IMPORTS, _WRITE_FLAGS
    stdout, stderr = sys.stdout, sys.stderr
    write_roots = (realpath(workdir), "/dev/null")
    read_roots = tuple(realpath(p) for p in read_roots) + write_roots

    def block(why: str) -> None:
        for stream in (stdout, stderr):
            try:
                stream.flush()
            except Exception:  # a broken stream must not stop the block
                pass
        write(report_fd, f"blocked {why}\n".encode("utf-8", "replace"))
        exit_now(120)

    def resolve(path, dir_fd=None) -> str:
        if type_(path) in path_types:
            path = str_(path)
        if type_(path) not in (str_, bytes):
            raise TypeError(f"unsupported path object {type_(path).__name__}")
        base = readlink(f"/proc/self/fd/{dir_fd}") if isinstance_(dir_fd, int) and dir_fd >= 0 else getcwd()
        return realpath(join(base, fsdecode(path)))

    def inside(path: str, roots: tuple[str, ...]) -> bool:
        for root in roots:
            if path == root or path.startswith(root.rstrip("/") + "/"):
                return True
        return False

    def check(event: str, args: tuple) -> None:
        if event in process:
            block(f"process creation or control ({event}) is not allowed")
        if event == "os.kill" and args[0] != getpid():
            block(f"sending signals to other processes (os.kill pid={args[0]}) is not allowed")
        if event.startswith("socket.") or event in network:
            block(f"network access ({event}) is not allowed")
        if event.startswith("ctypes.") or event in introspection:
            block(f"{event} is not allowed")
        if event == "import" and args[0] in blocked_imports:
            block(f"importing {args[0]} is not allowed")
        if event in ("object.__setattr__", "object.__delattr__") and args[1] in ("__code__", "__defaults__",
                                                                                 "__kwdefaults__"):
            block(f"changing a function's {args[1]} is not allowed")
        if event == "open" and args[0] is not None and not isinstance_(args[0], int):
            writing = args[2] & write_flags  # both io.open and os.open report the os-level flags
            path = resolve(args[0])
            if not inside(path, write_roots if writing else read_roots):
                block(f"{'writing' if writing else 'reading'} {path} (outside the sandbox) is not allowed")
        if event in ("os.listdir", "os.scandir") and not isinstance_(args[0], int):
            path = resolve("." if args[0] is None else args[0])
            if not inside(path, read_roots):
                block(f"listing {path} (outside the sandbox) is not allowed")
        for index, fd_index in mutations.get(event, ()):
            path = args[index]
            if path is not None and not isinstance_(path, int):
                resolved = resolve(path, None if fd_index is None else args[fd_index])
                if not inside(resolved, write_roots):
                    block(f"{event} on {resolved} (outside the sandbox) is not allowed")

    def hook(event: str, args: tuple) -> None:
        try:
            check(event, args)
        except Exception as e:  # an argument it cannot read is itself suspicious
            block(f"{event}: could not check its arguments ({type_(e).__name__}: {e})")

    sys.addaudithook(hook)


def _run_user_code(code: str, report_fd: int, workdir: str) -> None:
    sys.stdout.reconfigure(line_buffering=True)  # partial output survives a timeout kill
    linecache.cache[_CODE_NAME] = (len(code), None, code.splitlines(True), _CODE_NAME)  # source in tracebacks
    namespace = {"__name__": "__main__", "__builtins__": builtins}
    try:
        compiled = compile(code, _CODE_NAME, "exec")
    except (SyntaxError, ValueError) as e:
        traceback.print_exception(e.with_traceback(None))
        sys.exit(1)
    try:
        exec(compiled, namespace)
    except SystemExit:
        raise
    except MemoryError as e:
        os.write(report_fd, f"memory {type(e).__name__}\n".encode())
        traceback.print_exception(e.with_traceback(e.__traceback__.tb_next))
        sys.exit(1)
    except BaseException as e:
        traceback.print_exception(e.with_traceback(e.__traceback__.tb_next))
        sys.exit(1)
