"""The sandbox's child side: runs inside `python -I -S`, confines itself in layers, then runs the user code.

engine.execution starts this (see there for the host side). Each layer is enough on its own for the
attacks it covers; layers the kernel refuses are skipped and left out of the reported list:

- rlimits: CPU seconds, address space, file size, no core dumps, few fds, few or no new processes;
- namespaces (root or user namespaces): a private network namespace with no interfaces, a private
  IPC namespace, and a private mount namespace with a size-capped tmpfs as the working dir;
- no capabilities: every capability set (and the bounding set) is cleared;
- its own uid (root only): the child drops to a uid and gid that no other process has. The kernel
  lets a process act on another one (prlimit, kill, setpriority, sched_setaffinity, ptrace,
  /proc/<pid>/mem, F_SETOWN signals...) when their uids match, and a capability-free root still
  matches every root process: the host is root too. A different uid without capabilities cannot
  name the host in any of these calls. A normal user has no other uid to drop to; there the seccomp
  filter below refuses every call that names another process;
- landlock (kernel LSM, binds root too): reads only the stdlib, /usr, /lib and a few devices, writes
  only the working dir, no TCP bind/connect, no signals or abstract sockets outside the sandbox;
- seccomp (x86_64, aarch64): no fork/exec, no socket(), no ptrace, mount, module loading, io_uring,
  SysV IPC and similar; calls that take a pid or process group (kill, prlimit, setpriority,
  sched_set*, ioprio_set, migrate/move_pages...) only on this process; no F_SETOWN;
- an audit hook (sys.addaudithook): names the blocked action on stderr and ends the run with one of
  the BLOCKED_EXITS codes. It explains; the kernel layers above are what contain code that gets
  past it.

What the child tells the host: one line on the report pipe, written and closed before the user code
runs (so the user code can neither write nor reopen it), naming the active layers; everything else
the host learns from what it observes itself (exit status, signals, its timers, output sizes).
"""

from __future__ import annotations

import builtins
import ctypes
import errno
import linecache
import os
import pathlib
import resource
import signal
import stat
import sys
import traceback
from pathlib import Path

CODE_NAME = "<code>"
# Exit statuses the child uses to end a run; the host maps them to a status and its own reason text.
# User code can exit with these numbers too, but that only claims what it could do for real (touch
# something forbidden, run out of memory); the reason the host reports is never the child's bytes.
BLOCKED_EXITS = {
    200: "creating or controlling processes",
    201: "acting on another process (signals, limits, scheduling)",
    202: "network access",
    203: "low-level interpreter access (ctypes, introspection, code objects)",
    204: "file access outside the sandbox",
}
MEMORY_EXIT = 210
_PROCESS, _OTHER_PROCESS, _NETWORK, _INTERNALS, _FILES = BLOCKED_EXITS

# uid/gid of the sandbox when the host is root: this base plus the child's pid (pids are unique among
# live processes, so concurrent sandboxes never share one). 0x70000000 is above login, system, systemd
# dynamic and the usual container (subuid) ranges and below the foreign-uid range at 0x7FFE0000.
_SANDBOX_ID_BASE = 0x70000000
_NOBODY = 65534  # fallback where a user namespace maps only a small id range
_THREADS = 64  # RLIMIT_NPROC under a uid of its own: counts only this process's threads

_READ_ONLY_PATHS = ("/usr", "/lib", "/lib64", "/etc/ld.so.cache", "/dev/urandom", "/dev/zero")
_LIBC = None
_INT_SETTINGS = ("report_fd", "cpu_seconds", "memory_bytes", "max_file_bytes", "max_disk_bytes")


def config_argv(config: dict) -> list[str]:
    """The child's command-line arguments for `config` (plain strings: no json import in the child)."""
    return [config["workdir"], ",".join(config["disable"]), *(str(int(config[k])) for k in _INT_SETTINGS)]


def _parse_config(argv: list[str]) -> dict:
    workdir, disable, *numbers = argv
    return {"workdir": workdir, "disable": [name for name in disable.split(",") if name],
            **dict(zip(_INT_SETTINGS, map(int, numbers), strict=True))}


def child_main() -> None:
    config = _parse_config(sys.argv[1:])
    code = sys.stdin.buffer.read().decode("utf-8")
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.close(null)
    report_fd = config["report_fd"]
    layers = _confine(config)
    sys.argv = [CODE_NAME]
    for name in [n for n in sys.modules if n.startswith(("engine", "subprocess", "_posixsubprocess", "ctypes",
                                                          "_ctypes"))]:
        del sys.modules[name]  # a fresh import of these then passes through the audit hook
    os.write(report_fd, f"layers {','.join(layers)}\n".encode())
    os.close(report_fd)  # the only channel the host reads besides stdout/stderr: gone before the user code
    _run_user_code(code)


def _confine(config: dict) -> list[str]:
    """Apply every available layer, strongest-privilege steps first; return the active layers."""
    off, workdir = set(config["disable"]), config["workdir"]
    limits = [(resource.RLIMIT_CORE, 0), (resource.RLIMIT_NOFILE, 64),
              (resource.RLIMIT_FSIZE, config["max_file_bytes"]), (resource.RLIMIT_AS, config["memory_bytes"])]
    for which, value in limits:
        resource.setrlimit(which, (value, value))
    resource.setrlimit(resource.RLIMIT_CPU, (config["cpu_seconds"], config["cpu_seconds"] + 1))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # an oversized write raises OSError(EFBIG) instead
    layers = ["rlimits"]
    read_roots = [p for p in sys.path if os.path.isdir(p) and not p.startswith(str(Path(__file__).parents[1]))]
    read_roots += list(_READ_ONLY_PATHS)
    sandbox_id = _sandbox_id() if os.geteuid() == 0 and "uid" not in off else None
    private_mounts = "namespaces" not in off and _enter_mount_namespace()
    if private_mounts and sandbox_id is not None:
        _expose(_hidden_ancestors([*read_roots, workdir]))
    if "namespaces" not in off:
        layers += _enter_namespaces()
    if sandbox_id is not None and _hidden_ancestors([*read_roots, workdir]):
        sandbox_id = None  # that uid could not reach the stdlib or the working dir (no mount namespace): keep root
    if private_mounts and _mount_tmpfs(workdir, config["max_disk_bytes"], sandbox_id):
        layers.append("tmpfs")
    if sandbox_id is not None and "tmpfs" not in layers:
        os.chown(workdir, sandbox_id, sandbox_id)
    os.chdir(workdir)  # after the tmpfs mount, so the cwd is the tmpfs
    had_capabilities = _capabilities() != 0
    if "capabilities" not in off:
        _drop_bounding_set()  # needs CAP_SETPCAP: before the uid change clears it
    layers += _switch_uid(sandbox_id)
    if "capabilities" not in off:
        _clear_capabilities()
        if had_capabilities:
            layers.append("no-capabilities")
    _libc().prctl(38, 1, 0, 0, 0)  # PR_SET_NO_NEW_PRIVS: needed by landlock and seccomp without CAP_SYS_ADMIN
    if "landlock" not in off:
        layers += _landlock(workdir, read_roots)
    if "seccomp" not in off and _seccomp():
        layers.append("seccomp")
    if "audit" not in off:
        _install_audit_hook(workdir, read_roots)
        layers.append("audit-hook")
    return layers


def _libc():
    global _LIBC
    if _LIBC is None:
        _LIBC = ctypes.CDLL(None, use_errno=True)
    return _LIBC


def _sandbox_id() -> int | None:
    """The uid (= gid) to drop to: one of its own where the user namespace maps it, else nobody, else None."""
    for candidate in (_SANDBOX_ID_BASE + os.getpid(), _NOBODY):
        if all(_mapped(candidate, f"/proc/self/{kind}_map") for kind in ("uid", "gid")):
            return candidate
    return None


def _switch_uid(sandbox_id: int | None) -> list[str]:
    """Become `sandbox_id` (uid, gid, no groups); the process limit then counts only this uid's tasks."""
    if sandbox_id is None:
        resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))  # binds non-root only: the other layers cover root
        return []
    threads = _THREADS if sandbox_id != _NOBODY else 0  # nobody's count includes other processes
    resource.setrlimit(resource.RLIMIT_NPROC, (threads, threads))
    os.setgroups([])
    os.setresgid(sandbox_id, sandbox_id, sandbox_id)
    os.setresuid(sandbox_id, sandbox_id, sandbox_id)  # the kernel clears every capability here
    return ["own-uid" if sandbox_id != _NOBODY else "nobody-uid"]


def _mapped(uid: int, map_file: str) -> bool:
    for line in Path(map_file).read_text().splitlines():
        inside, _, count = (int(x) for x in line.split())
        if inside <= uid < inside + count:
            return True
    return False


def _hidden_ancestors(roots: list[str]) -> dict[str, list[str]]:
    """Dirs that others may not search (no o+x) and that hide a root, e.g. a stdlib under /root (0700).

    Maps the topmost such dir to the roots below it; the sandbox uid could not reach those roots.
    """
    hidden: dict[str, list[str]] = {}
    for root in roots:
        path = Path(os.path.realpath(root))
        for ancestor in list(reversed(path.parents))[1:]:  # below "/", above the root itself
            try:
                searchable = os.stat(ancestor).st_mode & 0o001
            except OSError:
                break
            if not searchable:
                hidden.setdefault(str(ancestor), []).append(str(path))
                break
    return hidden


_NEWNS, _NEWNET, _NEWIPC, _NEWUSER = 0x00020000, 0x40000000, 0x08000000, 0x10000000


def _enter_mount_namespace() -> bool:
    """A private mount namespace (root only): nothing mounted below ever shows up on the host."""
    libc = _libc()
    # MS_REC | MS_PRIVATE on "/" so that mounts made here do not propagate back
    return libc.unshare(_NEWNS) == 0 and libc.mount(None, b"/", None, 0x4000 | 0x40000, None) == 0


def _enter_namespaces() -> list[str]:
    """Private net and IPC namespaces: no network interfaces at all, no SysV objects shared with the host."""
    libc = _libc()
    if libc.unshare(_NEWNET | _NEWIPC) == 0:
        return ["netns"]
    if libc.unshare(_NEWUSER | _NEWNET | _NEWIPC) == 0:  # unprivileged: a user namespace makes them possible
        return ["netns"]
    return []


def _mount_tmpfs(workdir: str, disk_bytes: int, sandbox_id: int | None) -> bool:
    """A size-capped tmpfs over the working dir, owned by the sandbox uid (in our private mount namespace)."""
    owner = f",uid={sandbox_id},gid={sandbox_id}" if sandbox_id is not None else ""
    return _libc().mount(b"tmpfs", workdir.encode(), b"tmpfs", 0x2 | 0x4,  # MS_NOSUID | MS_NODEV
                      f"size={disk_bytes},mode=0700{owner}".encode()) == 0


def _expose(hidden: dict[str, list[str]]) -> None:
    """In our mount namespace, make each hidden root reachable at its own path by another uid.

    A root-only tmpfs (0755) covers the hiding dir, and each root is bind-mounted back at its place
    inside it; the rest of that dir (e.g. the rest of /root) is then simply not there.
    """
    libc = _libc()
    umask = os.umask(0o022)  # the dirs made below must be searchable by the sandbox uid
    try:
        for ancestor, roots in hidden.items():
            _expose_one(libc, ancestor, roots)
    finally:
        os.umask(umask)


def _expose_one(libc, ancestor: str, roots: list[str]) -> None:
    fds = {root: os.open(root, os.O_PATH | os.O_CLOEXEC) for root in roots}  # before the tmpfs hides them
    try:
        if libc.mount(b"tmpfs", ancestor.encode(), b"tmpfs", 0x2 | 0x4 | 0x8, b"mode=0755,size=65536") != 0:
            return  # MS_NOSUID | MS_NODEV | MS_NOEXEC; the roots stay hidden and the uid layer is skipped
        for root, fd in fds.items():
            if stat.S_ISDIR(os.fstat(fd).st_mode):
                os.makedirs(root, mode=0o755, exist_ok=True)
            else:  # a file is bind-mounted onto an empty file
                os.makedirs(os.path.dirname(root), mode=0o755, exist_ok=True)
                os.close(os.open(root, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o644))
            if libc.mount(f"/proc/self/fd/{fd}".encode(), root.encode(), None, 0x1000 | 0x4000, None) != 0:
                raise OSError(ctypes.get_errno(), f"bind mount of {root} failed")  # MS_BIND | MS_REC
    finally:
        for fd in fds.values():
            os.close(fd)


def _capabilities() -> int:
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return int(status["CapEff"], 16)


def _drop_bounding_set() -> None:
    last = int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    for cap in range(last + 1):
        # fails without CAP_SETPCAP; the bounding set then only matters across exec, which is blocked
        _libc().prctl(24, cap, 0, 0, 0)  # PR_CAPBSET_DROP


def _clear_capabilities() -> None:
    """Clear the ambient, effective, permitted and inheritable sets (a root child stays powerless)."""
    libc = _libc()
    libc.prctl(47, 4, 0, 0, 0)  # PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this process
    data = (ctypes.c_uint32 * 6)()  # two all-zero {effective, permitted, inheritable} words
    if libc.capset(header, data) != 0:
        raise OSError(ctypes.get_errno(), "capset failed")


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
    "process_madvise": (440, 440), "process_mrelease": (448, 448), "kcmp": (312, 272),
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
    # SysV IPC: objects shared with other processes of the same uid
    "shmget": (29, 194), "shmat": (30, 196), "shmctl": (31, 195), "shmdt": (67, 197), "semget": (64, 190),
    "semop": (65, 193), "semctl": (66, 191), "semtimedop": (220, 192), "msgget": (68, 186),
    "msgsnd": (69, 189), "msgrcv": (70, 188), "msgctl": (71, 187),
}
_SELF = object()  # stands for this process's pid in the rules below
# syscall -> conditions that must all hold: (argument index, values it may take); anything else: EPERM.
# These calls take a pid (0 = the caller) or a (which, who) pair; only this process may be named.
_ONLY_SELF = {
    "kill": ((62, 129), ((0, (_SELF,)),)), "tgkill": ((234, 131), ((0, (_SELF,)),)),
    "prlimit64": ((302, 261), ((0, (0, _SELF)),)),
    "sched_setaffinity": ((203, 122), ((0, (0, _SELF)),)), "sched_setscheduler": ((144, 119), ((0, (0, _SELF)),)),
    "sched_setparam": ((142, 118), ((0, (0, _SELF)),)), "sched_setattr": ((314, 274), ((0, (0, _SELF)),)),
    "migrate_pages": ((256, 238), ((0, (0, _SELF)),)), "move_pages": ((279, 239), ((0, (0, _SELF)),)),
    "get_robust_list": ((274, 100), ((0, (0, _SELF)),)),
    "setpriority": ((141, 140), ((0, (0,)), (1, (0, _SELF)))),  # PRIO_PROCESS only
    "ioprio_set": ((251, 30), ((0, (1,)), (1, (0, _SELF)))),  # IOPRIO_WHO_PROCESS only
}
# syscall -> (argument index, values refused): signal delivery to a chosen owner (F_SETOWN, FIOSETOWN...)
_REFUSED_ARGS = {
    "fcntl": ((72, 25), 1, (8, 15)),  # F_SETOWN, F_SETOWN_EX
    "ioctl": ((16, 29), 1, (0x8901, 0x8902, 0x5412)),  # FIOSETOWN, SIOCSPGRP, TIOCSTI
}
_CLONE, _CLONE3 = (56, 220), (435, 435)


def _seccomp() -> bool:
    """Install a seccomp-BPF filter; False on CPUs it has no syscall table for."""
    arch = {"x86_64": (0, 0xC000003E), "aarch64": (1, 0xC00000B7)}.get(os.uname().machine)
    if arch is None:
        return False
    col, audit_arch = arch
    ld, jeq, jset, jge, ret = 0x20, 0x15, 0x45, 0x35, 0x06
    allow, kill, eperm, enosys = 0x7FFF0000, 0x80000000, 0x50000 | errno.EPERM, 0x50000 | errno.ENOSYS
    pid = os.getpid()

    def arg(index: int) -> tuple:  # offsetof(struct seccomp_data, args[i]): the low 32 bits on little-endian
        return (ld, 0, 0, 16 + 8 * index)

    prog = [(ld, 0, 0, 4), (jeq, 1, 0, audit_arch), (ret, 0, 0, kill), (ld, 0, 0, 0)]
    if col == 0:
        prog += [(jge, 0, 1, 0x40000000), (ret, 0, 0, eperm)]  # the x32 ABI would bypass every rule
    for nrs in _DENY.values():
        if nrs[col] is not None:
            prog += [(jeq, 0, 1, nrs[col]), (ret, 0, 0, eperm)]
    prog += [(jeq, 0, 1, _CLONE3[col]), (ret, 0, 0, enosys)]  # flags sit behind a pointer: make libc use clone
    # clone: threads (CLONE_THREAD) only
    prog += [(jeq, 0, 4, _CLONE[col]), arg(0), (jset, 0, 1, 0x10000), (ret, 0, 0, allow), (ret, 0, 0, eperm)]
    for nrs, conditions in _ONLY_SELF.values():
        block = []
        for index, values in conditions:  # each value jumps past the rest and the EPERM, to the next condition
            values = [pid if v is _SELF else v for v in values]
            block += [arg(index)] + [(jeq, len(values) - k, 0, v) for k, v in enumerate(values)]
            block.append((ret, 0, 0, eperm))
        block.append((ret, 0, 0, allow))
        prog += [(jeq, 0, len(block), nrs[col]), *block]
    for nrs, index, values in _REFUSED_ARGS.values():  # each value jumps past the rest and the ALLOW, to EPERM
        block = [arg(index)] + [(jeq, len(values) - k, 0, v) for k, v in enumerate(values)]
        block += [(ret, 0, 0, allow), (ret, 0, 0, eperm)]
        prog += [(jeq, 0, len(block), nrs[col]), *block]
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
                             "subprocess.Popen", "cpython.PyInterpreterState_New"})
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


def _install_audit_hook(workdir: str, read_roots: list[str]) -> None:
    """Audit hook that ends the run on the first forbidden action: the why on stderr, the kind as exit status.

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

    def block(kind: int, why: str) -> None:
        for stream in (stdout, stderr):
            try:
                stream.flush()
            except Exception:  # a broken stream must not stop the block
                pass
        try:
            write(2, f"blocked: {why}\n".encode("utf-8", "replace"))
        except OSError:  # stderr closed: the exit status alone still says it
            pass
        exit_now(kind)

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
            block(_PROCESS, f"process creation or control ({event}) is not allowed")
        if event in ("os.kill", "os.killpg") and args[0] != getpid():
            block(_OTHER_PROCESS, f"sending signals to other processes ({event} pid={args[0]}) is not allowed")
        if event == "resource.prlimit" and args[0] not in (0, getpid()):
            block(_OTHER_PROCESS, f"another process's limits (resource.prlimit pid={args[0]}) are off limits")
        if event.startswith("socket.") or event in network:
            block(_NETWORK, f"network access ({event}) is not allowed")
        if event.startswith("ctypes.") or event in introspection:
            block(_INTERNALS, f"{event} is not allowed")
        if event == "import" and args[0] in blocked_imports:
            block(_INTERNALS, f"importing {args[0]} is not allowed")
        if event in ("object.__setattr__", "object.__delattr__") and args[1] in ("__code__", "__defaults__",
                                                                                 "__kwdefaults__"):
            block(_INTERNALS, f"changing a function's {args[1]} is not allowed")
        if event == "open" and args[0] is not None and not isinstance_(args[0], int):
            writing = args[2] & write_flags  # both io.open and os.open report the os-level flags
            path = resolve(args[0])
            if not inside(path, write_roots if writing else read_roots):
                block(_FILES, f"{'writing' if writing else 'reading'} {path} (outside the sandbox) is not allowed")
        if event in ("os.listdir", "os.scandir") and not isinstance_(args[0], int):
            path = resolve("." if args[0] is None else args[0])
            if not inside(path, read_roots):
                block(_FILES, f"listing {path} (outside the sandbox) is not allowed")
        for index, fd_index in mutations.get(event, ()):
            path = args[index]
            if path is not None and not isinstance_(path, int):
                resolved = resolve(path, None if fd_index is None else args[fd_index])
                if not inside(resolved, write_roots):
                    block(_FILES, f"{event} on {resolved} (outside the sandbox) is not allowed")

    def hook(event: str, args: tuple) -> None:
        try:
            check(event, args)
        except Exception as e:  # an argument it cannot read is itself suspicious
            block(_INTERNALS, f"{event}: could not check its arguments ({type_(e).__name__}: {e})")

    sys.addaudithook(hook)


def _run_user_code(code: str) -> None:
    sys.stdout.reconfigure(line_buffering=True)  # partial output survives a timeout kill
    linecache.cache[CODE_NAME] = (len(code), None, code.splitlines(True), CODE_NAME)  # source in tracebacks
    namespace = {"__name__": "__main__", "__builtins__": builtins}
    try:
        compiled = compile(code, CODE_NAME, "exec")
    except (SyntaxError, ValueError) as e:
        traceback.print_exception(e.with_traceback(None))
        sys.exit(1)
    try:
        exec(compiled, namespace)
    except SystemExit:
        raise
    except MemoryError as e:
        traceback.print_exception(e.with_traceback(e.__traceback__.tb_next))
        sys.exit(MEMORY_EXIT)
    except BaseException as e:
        traceback.print_exception(e.with_traceback(e.__traceback__.tb_next))
        sys.exit(1)
