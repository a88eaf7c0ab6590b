"""Security suite for the sandbox (engine.execution, issue 12): every attack must leave its host unharmed.

Each attack runs in a fresh throwaway host process (tests/security/sandbox_host.py, in its own session)
that plants bait first: secrets in its environment and in a file under HOME, a canary dir, TCP/UDP/unix
listeners. After the run the host reports what changed about itself: its rlimits, nice value, CPU
affinity, scheduler policy, oom score, tracer, signals received, listeners reached, canaries, whether it
can still write files and open fds, whether a second execute_code still works and whether the sandbox's
temp dirs are gone. Every attack is checked against all of that, plus how its run must end. An attack
that reaches the host kills or damages that process only, never the test runner.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the sandbox is Linux only")

REPO = Path(__file__).resolve().parents[2]
HOST = Path(__file__).with_name("sandbox_host.py")
LIMITS = dict(timeout=5.0, cpu_seconds=2, memory_bytes=128 * 2**20, max_output_bytes=4096,
              max_file_bytes=64 * 1024, max_disk_bytes=1 * 2**20)
REFUSED = ("error", "blocked")  # how a contained attempt ends: the action raised, or the audit hook named it


def stdout_lacks(*needles: str) -> Callable[[dict], list[str]]:
    def check(result: dict) -> list[str]:
        return [f"stdout holds {n!r}" for n in needles if n in result["stdout"]]
    return check


def not_forged(result: dict) -> list[str]:
    text = result["reason"] + "".join(result["layers"])
    return ["the child's bytes reached the status or reason"] if "trust this output" in text else []


@dataclass(frozen=True)
class Attack:
    name: str
    code: str
    statuses: tuple[str, ...] = REFUSED  # how the run may end when the attack is contained
    check: Callable[[dict], list[str]] | None = None  # extra conditions on the result
    kwargs: dict = field(default_factory=dict)  # overrides of LIMITS


PRLIMIT = "import os, resource\nresource.prlimit(os.getppid(), resource.{limit}, ({value}, {value}))"
FORGE = "import os\nfor fd in range(3, 256):\n    try:\n        os.write(fd, {line!r})\n    except OSError:\n" \
        "        pass\nprint('wrote')\n"

ATTACKS = [
    # another process's limits and scheduling (issue 12: these reached the host)
    Attack("prlimit_host_cpu", PRLIMIT.format(limit="RLIMIT_CPU", value=1)),
    Attack("prlimit_host_fsize", PRLIMIT.format(limit="RLIMIT_FSIZE", value=0)),
    Attack("prlimit_host_nofile", PRLIMIT.format(limit="RLIMIT_NOFILE", value=3)),
    Attack("renice_host", "import os\nos.setpriority(os.PRIO_PROCESS, os.getppid(), 19)"),
    Attack("renice_host_group", "import os\nos.setpriority(os.PRIO_PGRP, os.getpgid(os.getppid()), 19)"),
    Attack("pin_host_to_one_cpu", "import os\nos.sched_setaffinity(os.getppid(), {max(os.sched_getaffinity(0))})"),
    Attack("host_to_sched_idle", "import os\nos.sched_setscheduler(os.getppid(), os.SCHED_IDLE, os.sched_param(0))"),
    Attack("host_oom_score", "import os\nopen(f'/proc/{os.getppid()}/oom_score_adj', 'w').write('1000')"),
    Attack("host_memory_via_proc", "import os\nopen(f'/proc/{os.getppid()}/mem', 'r+b', buffering=0)\n"
                                   "print('opened host memory')", check=stdout_lacks("opened host memory")),
    # the result channel (issue 12: a forged "blocked" status with the attacker's reason)
    Attack("forge_blocked_status", FORGE.format(line=b"blocked nothing was wrong, trust this output\n"),
           statuses=("ok",), check=not_forged),
    Attack("forge_memory_status", FORGE.format(line=b"memory trust this output\n") + "raise SystemExit(3)",
           statuses=("error",), check=not_forged),
    Attack("forge_via_stderr", "import sys\nsys.stderr.write('blocked: nothing was wrong, trust this output\\n')",
           statuses=("ok",), check=not_forged),
    # signals
    Attack("kill_parent", "import os, signal\nos.kill(os.getppid(), signal.SIGUSR1)"),
    Attack("killpg_parent_group", "import os, signal\nos.killpg(os.getpgid(os.getppid()), signal.SIGUSR1)"),
    Attack("signal_every_process", "import os\nos.kill(-1, 0)\nprint('could signal every process')",
           check=stdout_lacks("could signal")),
    Attack("pidfd_signal_parent", "import os, signal\nfd = os.pidfd_open(os.getppid())\n"
                                  "signal.pidfd_send_signal(fd, signal.SIGUSR1)"),
    Attack("sigio_to_parent", "import fcntl, os\nr, w = os.pipe()\nfcntl.fcntl(r, fcntl.F_SETOWN, os.getppid())\n"
                              "fcntl.fcntl(r, fcntl.F_SETFL, os.O_ASYNC)\nos.write(w, b'x')",
           statuses=("ok", "error", "blocked")),  # contained when no signal arrives, whatever the calls return
    # files outside the sandbox
    Attack("write_outside", "open('@OUTSIDE_FILE@', 'w').write('pwned')"),
    Attack("delete_outside", "import shutil\nshutil.rmtree('@CANARY@')"),
    Attack("read_home_secret", "print(open('@SECRET_FILE@').read())"),
    Attack("symlink_out", "import os\nos.symlink('@SECRET_FILE@', 'link')\nprint(open('link').read())"),
    Attack("hardlink_out", "import os\nos.link('@SECRET_FILE@', 'hard')\nprint(open('hard').read())"),
    Attack("chdir_escape", "import os\nos.chdir('@HOME@')\nprint(open('@SECRET_NAME@').read())"),
    Attack("host_environ_via_proc", "import os\nprint(open(f'/proc/{os.getppid()}/environ').read())"),
    Attack("write_dev_shm", "open('@SHM_FILE@', 'w').write('x')"),
    Attack("setuid_root_read_shadow", "import os\nos.setresuid(0, 0, 0)\nprint(open('/etc/shadow').read())",
           check=stdout_lacks("root:")),
    # secrets in the environment: the run itself may succeed, the planted values must not appear
    Attack("env_secrets", "import os\nprint(dict(os.environ))", statuses=("ok",)),
    # network
    Attack("tcp_to_host", "import socket\ns = socket.create_connection(('127.0.0.1', @TCP_PORT@), timeout=1)\n"
                          "s.sendall(b'exfiltrated')"),
    Attack("udp_to_host", "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
                          "s.sendto(b'exfiltrated', ('127.0.0.1', @UDP_PORT@))"),
    Attack("unix_socket_to_host", "import socket\ns = socket.socket(socket.AF_UNIX)\ns.connect('@UNIX_PATH@')"),
    Attack("abstract_socket_to_host", "import socket\ns = socket.socket(socket.AF_UNIX)\ns.connect('\\0@ABSTRACT@')"),
    # processes
    Attack("fork_bomb", "import os\nwhile True:\n    os.fork()"),
    Attack("subprocess_spawn", "import subprocess\nsubprocess.run(['echo', 'escaped'], check=True)",
           check=stdout_lacks("escaped")),
    Attack("os_system", "import os\nassert os.system('echo escaped') == 0", check=stdout_lacks("escaped")),
    Attack("posix_spawn", "import os\nos.posix_spawn('/bin/echo', ['echo', 'escaped'], {})",
           check=stdout_lacks("escaped")),
    # resources
    Attack("memory_blowup", "chunks = []\nwhile True:\n    chunks.append(bytearray(2**20))", statuses=("memory",)),
    Attack("infinite_loop", "while True:\n    pass", statuses=("timeout",), kwargs=dict(timeout=1.0, cpu_seconds=30)),
    Attack("cpu_burn", "while True:\n    pass", statuses=("timeout",), kwargs=dict(timeout=30.0, cpu_seconds=1)),
    Attack("outlive_closed_pipes", "import os, time\nos.close(1)\nos.close(2)\ntime.sleep(60)",
           statuses=("timeout",), kwargs=dict(timeout=1.0)),
    Attack("output_flood", "import sys\nwhile True:\n    sys.stdout.write('x' * 65536)",
           check=lambda r: [] if len(r["stdout"]) < 8192 else ["output not capped"]),
    Attack("disk_fill", "for i in range(1000):\n    open(f'f{i}', 'wb').write(b'x' * 60000)"),
    # interpreter internals
    Attack("ctypes_ptrace_parent", "import ctypes, os\nlibc = ctypes.CDLL(None)\n"
                                   "assert libc.ptrace(16, os.getppid(), 0, 0) == 0"),  # PTRACE_ATTACH
    Attack("ctypes_unshare_userns", "import ctypes\nlibc = ctypes.CDLL(None)\n"
                                      "assert libc.unshare(0x10000000) == 0\nprint('new user namespace')",
           check=stdout_lacks("new user namespace")),
    Attack("audit_hook_tamper", "import builtins, sys\nbuiltins.isinstance = lambda *a: True\n"
                                "sys._getframe().f_back.f_globals['_PROCESS_EVENTS'] = frozenset()\n"
                                "import os\nif os.fork() == 0:\n    print('forked')", check=stdout_lacks("forked")),
]


def run_host(tmp_path: Path, code: str, as_user: tuple[str, int] | None = None, **kwargs) -> dict:
    """Run `code` through a fresh host; as_user=(python, uid) runs that host as an unprivileged user."""
    work, tmp = tmp_path / "work", tmp_path / "tmp"
    work.mkdir()
    tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(tmp), "HOME": str(tmp_path / "home")}
    python, user = as_user or (sys.executable, None)
    if user is not None:
        for path in (tmp_path, work, tmp):
            os.chown(path, user, user)
    request = json.dumps({"code": code, "kwargs": {**LIMITS, **kwargs}})
    proc = subprocess.run([python, str(HOST), str(REPO), str(work)], input=request, capture_output=True, text=True,
                          env=env, timeout=180, start_new_session=True, user=user, group=user,
                          extra_groups=[] if user is not None else None)
    if proc.returncode != 0:
        return {"host_died": proc.returncode, "host_stderr": proc.stderr[-3000:]}
    return json.loads(proc.stdout)


def breaches(report: dict) -> list[str]:
    """Everything about the host that an attack changed or broke."""
    if "host_died" in report:
        return [f"the host process died (exit {report['host_died']}): {report['host_stderr']}"]
    problems = [f"execute_code raised {report['raised']}"] if "raised" in report else []
    before, after = report["before"], report["after"]
    problems += [f"host {key} changed: {before[key]} -> {after[key]}" for key in before if before[key] != after[key]]
    checks = {"signals": [], "reached": [], "canary_intact": True, "outside_created": False, "shm_created": False,
              "host_write": 65536, "host_open_files": 32, "second_run": ["ok", "1\n"], "leftovers": []}
    problems += [f"{key}: {report[key]!r}, expected {want!r}" for key, want in checks.items() if report[key] != want]
    result = report.get("result")
    if result is not None:
        text = result["stdout"] + result["stderr"] + result["reason"]
        problems += [f"secret leaked: {s}" for s in report["secrets"] if s in text]
    return problems


@pytest.mark.parametrize("attack", ATTACKS, ids=lambda a: a.name)
def test_attack_is_contained(attack: Attack, tmp_path):
    report = run_host(tmp_path, attack.code, **attack.kwargs)
    problems = breaches(report)
    result = report.get("result")
    if result is not None:
        if result["status"] not in attack.statuses:
            problems.append(f"ended {result['status']!r} ({result['reason']}), expected one of {attack.statuses}")
        problems += attack.check(result) if attack.check else []
    assert not problems, (problems, result)


HOST_OUT_OF_FDS = textwrap.dedent("""
    import json, os, resource, sys
    sys.path.insert(0, sys.argv[1])
    from engine.errors import EngineError
    from engine.execution import execute_code
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    outcomes = []
    for spare in range(0, 16):
        in_use = len(os.listdir('/proc/self/fd')) - 1  # minus the fd listdir used
        resource.setrlimit(resource.RLIMIT_NOFILE, (in_use + spare, hard))
        try:
            r = execute_code("open('junk', 'w').write('x' * 100); print(1)", timeout=5.0)
            outcomes.append(["result", r.status, r.stdout])
        except EngineError as e:
            outcomes.append(["engine_error", str(e)])
        except Exception as e:
            outcomes.append(["raised", f"{type(e).__name__}: {e}"])
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    print(json.dumps(outcomes))
""")


def test_host_out_of_fds_gets_one_line_and_no_temp_dir_left(tmp_path):
    """The host's own calls failing (EMFILE at each step of a run in turn) never leaves /tmp/nanochat-exec-*."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    proc = subprocess.run([sys.executable, "-c", HOST_OUT_OF_FDS, str(REPO)], capture_output=True, text=True,
                          env={**os.environ, "TMPDIR": str(tmp)}, timeout=120, start_new_session=True)
    assert proc.returncode == 0, proc.stderr
    outcomes = json.loads(proc.stdout)
    assert sorted(os.listdir(tmp)) == [], outcomes
    assert [o for o in outcomes if o[0] == "raised"] == []
    assert any(o[0] == "engine_error" for o in outcomes) and outcomes[-1] == ["result", "ok", "1\n"]
    assert all("\n" not in o[1] for o in outcomes if o[0] == "engine_error")


# Each of these kernel layers must hold on its own against the attacks on other processes, the others
# (and the audit hook) off: the uid for a root host, seccomp for a normal user, who has no uid to drop to.
ON_OTHER_PROCESSES = ["prlimit_host_cpu", "prlimit_host_fsize", "prlimit_host_nofile", "renice_host",
                      "renice_host_group", "pin_host_to_one_cpu", "host_to_sched_idle", "kill_parent",
                      "killpg_parent_group", "signal_every_process", "pidfd_signal_parent", "sigio_to_parent"]
# kill(-1, 0) reports success when every target refused (EPERM): only a filter that refuses the call says more.
LAYER_ALONE = {
    "own-uid": (("audit", "seccomp", "landlock", "capabilities"),
                [*(set(ON_OTHER_PROCESSES) - {"signal_every_process"}), "host_oom_score", "host_memory_via_proc"]),
    "seccomp": (("audit", "uid", "landlock", "capabilities"), ON_OTHER_PROCESSES),  # a root child with every cap
}


@pytest.fixture(scope="module")
def active_layers() -> tuple[str, ...]:
    from engine.execution import execute_code

    return execute_code("pass").layers


@pytest.mark.parametrize("layer, attack", [(layer, a) for layer, (_, names) in LAYER_ALONE.items()
                                           for a in ATTACKS if a.name in names],
                         ids=lambda x: x if isinstance(x, str) else x.name)
def test_layer_alone_contains(layer: str, attack: Attack, active_layers, tmp_path):
    if layer not in active_layers:
        pytest.skip(f"isolation layer {layer} is not available here (own-uid needs root)")
    disable, _ = LAYER_ALONE[layer]
    report = run_host(tmp_path, attack.code, **{**attack.kwargs, "disable": disable})
    problems = breaches(report)
    result = report.get("result")
    if result is not None:
        if layer not in result["layers"] or result["status"] not in attack.statuses:
            problems.append(f"ended {result['status']!r} ({result['reason']}) with layers {result['layers']}")
        problems += attack.check(result) if attack.check else []
    assert not problems, (problems, result)


def test_seccomp_alone_still_lets_the_code_act_on_itself(active_layers):
    """The filter refuses naming another process, not this one: pid 0 and its own pid pass, F_GETFL too."""
    from engine.execution import execute_code

    if "seccomp" not in active_layers:
        pytest.skip("seccomp is not available here")
    code = textwrap.dedent("""
        import fcntl, os, resource, signal
        me = os.getpid()
        resource.setrlimit(resource.RLIMIT_NOFILE, (32, 32))
        print(resource.prlimit(me, resource.RLIMIT_NOFILE), resource.prlimit(0, resource.RLIMIT_NOFILE))
        nice = os.getpriority(os.PRIO_PROCESS, 0)  # only upwards: lowering it needs CAP_SYS_NICE
        os.setpriority(os.PRIO_PROCESS, 0, min(nice + 1, 19))
        os.setpriority(os.PRIO_PROCESS, me, min(nice + 2, 19))
        os.sched_setaffinity(me, os.sched_getaffinity(0))
        os.kill(me, 0)
        r, w = os.pipe()
        print(fcntl.fcntl(r, fcntl.F_GETFL) & os.O_ACCMODE == os.O_RDONLY,
              os.getpriority(os.PRIO_PROCESS, 0) == min(nice + 2, 19))
        fcntl.fcntl(r, fcntl.F_SETOWN, me)
    """)
    result = execute_code(code, **{**LIMITS, "disable": ("audit", "uid", "landlock")})
    assert result.stdout == "(32, 32) (32, 32)\nTrue True\n", result
    assert (result.status, result.reason) == ("error", "PermissionError: [Errno 1] Operation not permitted")


# The host as a normal user: no uid to drop to, and no capabilities that the child lacks (root's
# capabilities alone shield a root host from renice and sched_* calls by a capability-free child).
AS_NORMAL_USER = [*ON_OTHER_PROCESSES, "host_oom_score", "host_memory_via_proc", "forge_blocked_status",
                  "read_home_secret", "write_outside"]


@pytest.fixture(scope="module")
def normal_user() -> tuple[str, int]:
    """(a Python an unprivileged user can run, that user's uid): a uid no account or process has."""
    if os.geteuid() != 0:
        pytest.skip("this suite already runs as a normal user here: every test above is that case")
    uid = 0x6E000000 + os.getpid()
    probe = f"import sys; sys.path.insert(0, {str(REPO)!r}); import engine.execution"
    for python in dict.fromkeys([os.path.realpath(sys.executable), "/usr/bin/python3"]):
        try:
            if subprocess.run([python, "-c", probe], user=uid, group=uid, extra_groups=[], capture_output=True,
                              cwd="/").returncode == 0:
                return python, uid
        except OSError:  # that user may not even run it
            continue
    pytest.skip("no Python here that an unprivileged user can run (its stdlib is not readable by others)")


@pytest.fixture
def shared_tmp():
    """A scratch dir an unprivileged host can reach (pytest's tmp_path sits under a 0700 dir)."""
    path = Path(tempfile.mkdtemp(prefix="nanochat-sandbox-test-"))
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path)


@pytest.mark.parametrize("attack", [a for a in ATTACKS if a.name in AS_NORMAL_USER], ids=lambda a: a.name)
def test_attack_on_a_normal_user_host_is_contained(attack: Attack, normal_user, shared_tmp):
    report = run_host(shared_tmp, attack.code, as_user=normal_user, **attack.kwargs)
    problems = breaches(report)
    result = report.get("result")
    if result is not None:
        if result["status"] not in attack.statuses:
            problems.append(f"ended {result['status']!r} ({result['reason']}), expected one of {attack.statuses}")
        problems += attack.check(result) if attack.check else []
    assert not problems, (problems, result)
