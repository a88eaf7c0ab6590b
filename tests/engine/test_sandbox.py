"""Security suite for engine.execution: every attack must be contained and the host left unharmed.

Each attack runs twice where it makes sense: with every layer (the audit hook ends it "blocked", the kind of
action in the host's reason, the details on stderr)
and with the audit hook off (the kernel layers alone must still refuse it). Limits are kept small so
the whole file runs in seconds.
"""

import ast
import json
import os
import socket
import sys
import time
import uuid
from pathlib import Path

import psutil
import pytest

from engine.errors import EngineError
from engine.execution import LAYERS, execute_code

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the sandbox is Linux only")

LIMITS = dict(timeout=3.0, cpu_seconds=2, memory_bytes=128 * 2**20, max_output_bytes=4096,
              max_file_bytes=64 * 1024, max_disk_bytes=1 * 2**20)
KERNEL_ONLY = ("audit",)
LOW_LEVEL = "low-level interpreter access (ctypes, introspection, code objects)"


def run(code: str, **overrides):
    return execute_code(code, **{**LIMITS, **overrides})


@pytest.fixture(scope="module")
def active() -> tuple[str, ...]:
    result = run("pass")
    assert result.status == "ok", result
    return result.layers


def blocked(result, kind: str, detail: str) -> bool:
    """Ended by the audit hook: the host names the kind of action, the hook's details are on stderr."""
    return (result.status, result.reason) == ("blocked", f"blocked: {kind} is not allowed") and \
        detail in result.stderr.splitlines()[-1]


def need(active, *layers):
    missing = [layer for layer in layers if layer not in active]
    if missing:
        pytest.skip(f"isolation layer(s) {missing} not available on this machine")


@pytest.fixture(autouse=True)
def host_unharmed():
    """After every test: no new child processes left behind, and the host's memory did not balloon."""
    me = psutil.Process()
    rss, before = me.memory_info().rss, set(me.children(recursive=True))
    yield
    assert set(me.children(recursive=True)) - before == set()
    assert me.memory_info().rss - rss < 64 * 2**20


@pytest.fixture
def home_secret():
    secret = f"canary-secret-{uuid.uuid4().hex}"
    path = Path.home() / f".nanochat-sandbox-canary-{uuid.uuid4().hex}"  # HOME: the test's own (conftest)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(secret)
    yield path, secret
    path.unlink()


@pytest.fixture
def canary_dir(tmp_path):
    canary = tmp_path / "canary"
    canary.mkdir()
    (canary / "keep.txt").write_text("still here")
    return canary


# --- normal behaviour ---------------------------------------------------------------------------

def test_normal_code_works(active):
    result = run("print(2 + 3)")
    assert (result.status, result.stdout, result.exit_code, result.reason) == ("ok", "5\n", 0, "")
    assert result.as_tool_output() == "5\n"
    assert {"rlimits", "audit-hook"} <= set(result.layers)


def test_stdlib_imports_and_files_in_workdir():
    code = ("import json, math, fractions, statistics, datetime, zoneinfo\n"
            "open('f.txt', 'w').write(json.dumps({'pi': round(math.pi, 3)}))\n"
            "print(open('f.txt').read(), statistics.mean([1, 2, 3]), fractions.Fraction(1, 3) * 3)")
    result = run(code)
    assert (result.status, result.stdout) == ("ok", '{"pi": 3.142} 2 1\n')


def test_exception_reports_last_traceback_line():
    result = run("x = 1\nprint('before')\n1 / 0")
    assert (result.status, result.exit_code, result.stdout) == ("error", 1, "before\n")
    assert result.reason == "ZeroDivisionError: division by zero"
    assert result.stderr.splitlines()[-1] == "ZeroDivisionError: division by zero"
    assert 'File "<code>", line 3' in result.stderr and "1 / 0" in result.stderr
    assert result.as_tool_output() == "Error: ZeroDivisionError: division by zero"


def test_syntax_error_and_sys_exit():
    result = run("def f(:\n  pass")
    assert result.status == "error" and result.reason.startswith("SyntaxError")
    result = run("import sys; print('x'); sys.exit(3)")
    assert (result.status, result.exit_code, result.stdout) == ("error", 3, "x\n")


def test_env_is_scrubbed(monkeypatch):
    secret = f"hf_{uuid.uuid4().hex}"
    monkeypatch.setenv("HF_TOKEN", secret)
    monkeypatch.setenv("WANDB_API_KEY", secret)
    result = run("import os; print(sorted(os.environ.items())); print(os.getcwd() == os.environ['HOME'])")
    assert result.status == "ok"
    assert secret not in result.stdout
    listing, same_dir = result.stdout.splitlines()
    env = dict(ast.literal_eval(listing))
    assert same_dir == "True"
    # only the four the host hands over, plus what importing the engine package itself sets in the child
    # (OpenMP's wait policy, engine/__init__.py): nothing of the host's environment gets through
    assert env.pop("OMP_WAIT_POLICY", "PASSIVE") == "PASSIVE"
    assert sorted(env) == ["HOME", "LANG", "PATH", "TMPDIR"]


def test_workdir_starts_empty_and_is_deleted():
    result = run("import os; open('junk', 'w').write('x'); print(os.listdir('.'), os.getcwd())")
    listing, workdir = result.stdout.split()
    assert listing == "['junk']"
    assert not os.path.exists(workdir)


def test_bad_arguments_raise_engine_error():
    with pytest.raises(EngineError, match="timeout"):
        execute_code("pass", timeout=0)
    with pytest.raises(EngineError, match="memory_bytes"):
        execute_code("pass", memory_bytes=1024)
    with pytest.raises(EngineError, match="unknown layer"):
        execute_code("pass", disable=("firewall",))


# --- attacks ------------------------------------------------------------------------------------

@pytest.mark.parametrize("code", ["import os\nwhile True:\n    os.fork()",
                                  "import os\nwhile True:\n    os.posix_spawn('/bin/true', ['true'], {})"])
def test_fork_bomb_os(active, code):
    result = run(code)
    assert blocked(result, "creating or controlling processes", "process creation or control")
    need(active, "seccomp")
    result = run(code, disable=("audit", "landlock", "namespaces", "capabilities"))  # seccomp alone
    assert result.status == "error" and result.reason.startswith("PermissionError: [Errno 1]")


def test_fork_bomb_subprocess(active):
    code = "import subprocess\nwhile True:\n    subprocess.Popen(['sleep', '100'])"
    result = run(code)
    assert blocked(result, LOW_LEVEL, "blocked: importing _posixsubprocess is not allowed")
    result = run("import os\nwhile True:\n    os.system('sleep 100 &')")
    assert blocked(result, "creating or controlling processes",
                   "blocked: process creation or control (os.system) is not allowed")
    need(active, "seccomp")
    result = run(code, disable=KERNEL_ONLY)
    assert (result.status, result.reason) == ("error", "PermissionError: [Errno 1] Operation not permitted")


def test_rm_rf_canary_outside_sandbox(active, canary_dir):
    for code in [f"import shutil; shutil.rmtree({str(canary_dir)!r})",
                 f"import os; os.system('rm -rf {canary_dir}')",
                 f"import os; os.remove({str(canary_dir / 'keep.txt')!r})",
                 f"import os; os.rename({str(canary_dir / 'keep.txt')!r}, 'stolen')"]:
        result = run(code)
        assert result.status == "blocked", (code, result)
    need(active, "landlock-fs")
    result = run(f"import shutil; shutil.rmtree({str(canary_dir)!r})", disable=("audit", "seccomp"))
    assert result.status == "error" and result.reason.startswith("PermissionError: [Errno 13]")
    assert (canary_dir / "keep.txt").read_text() == "still here"


def test_read_secret_in_home(active, home_secret):
    path, secret = home_secret
    attempts = [f"print(open({str(path)!r}).read())",
                f"import os; os.symlink({str(path)!r}, 'link'); print(open('link').read())",
                f"import os; print(os.listdir({str(path.parent)!r}))"]
    for code in attempts:
        result = run(code)
        assert result.status == "blocked", (code, result)
        assert secret not in result.stdout + result.stderr + result.reason
    need(active, "landlock-fs")
    for code in attempts[:2]:
        result = run(code, disable=("audit", "seccomp"))
        assert result.status == "error" and result.reason.startswith("PermissionError: [Errno 13]")
        assert secret not in result.stdout + result.stderr


def test_host_environ_via_proc_is_unreadable(active):
    code = "import os; print(open(f'/proc/{os.getppid()}/environ').read())"
    result = run(code)
    assert blocked(result, "file access outside the sandbox", "/environ")
    need(active, "landlock-fs")
    result = run(code, disable=KERNEL_ONLY)
    assert result.status == "error" and result.reason.startswith("PermissionError: [Errno 13]")
    assert "PATH=" not in result.stdout


@pytest.mark.parametrize("disable, layer", [((), "audit-hook"), (KERNEL_ONLY, "seccomp"),
                                            (("audit", "seccomp"), "landlock-net"),
                                            (("audit", "seccomp", "landlock"), "netns")])
def test_connect_to_local_listener(active, disable, layer):
    need(active, layer)
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        code = (f"import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=1)\n"
                "s.sendall(b'exfiltrated')")
        result = run(code, disable=disable)
        expected = {"audit-hook": ("blocked", "blocked: network access is not allowed"),
                    "seccomp": ("error", "PermissionError: [Errno 1] Operation not permitted"),
                    "landlock-net": ("error", "PermissionError: [Errno 13] Permission denied"),
                    "netns": ("error", "OSError: [Errno 101] Network is unreachable")}[layer]
        assert (result.status, result.reason) == expected
        server.settimeout(0.3)
        with pytest.raises(TimeoutError):
            server.accept()


def test_infinite_loop_times_out():
    start = time.monotonic()
    result = run("print('started')\nwhile True:\n    pass", timeout=1.0, cpu_seconds=10)
    assert (result.status, result.reason) == ("timeout", "timed out after 1 s (wall clock)")
    assert result.stdout == "started\n"  # output before the kill is kept
    assert result.exit_code == -9 and time.monotonic() - start < 2.5
    result = run("while True:\n    pass", timeout=10.0, cpu_seconds=1)
    assert (result.status, result.reason) == ("timeout", "CPU time limit of 1 s exceeded")
    result = run("import os, time\nos.close(1); os.close(2)\ntime.sleep(30)", timeout=1.0)
    assert result.status == "timeout"


@pytest.mark.parametrize("code", ["x = bytearray(2**30)",
                                  "chunks = []\nwhile True:\n    chunks.append(bytearray(2**20))"])
def test_memory_bomb(code):
    result = run(code)
    assert result.status == "memory" and result.reason.startswith("memory limit of 128 MiB exceeded")
    assert result.stderr.splitlines()[-1] == "MemoryError"


@pytest.mark.parametrize("stream", ["stdout", "stderr"])
def test_gigabytes_of_output(stream):
    start = time.monotonic()
    result = run(f"import sys\nwhile True:\n    sys.{stream}.write('x' * 65536)")
    assert time.monotonic() - start < 2.0
    assert result.status == "error" and result.reason.startswith("output flood")
    captured = getattr(result, stream)
    assert captured == "x" * 4096 + "\n[output truncated at 4096 bytes]"


def test_output_just_over_cap_is_truncated_not_killed():
    result = run("print('y' * 5000)\nprint('done', file=__import__('sys').stderr)")
    assert (result.status, result.stderr) == ("ok", "done\n")
    assert result.stdout == "y" * 4096 + "\n[output truncated at 4096 bytes]"


def test_huge_file_write(active):
    result = run("open('big', 'wb').write(b'x' * 10**8)")
    assert (result.status, result.reason) == ("error", "OSError: [Errno 27] File too large")
    result = run("open('/tmp/nanochat-sandbox-escape', 'w').write('x')")
    assert result.status == "blocked" and not os.path.exists("/tmp/nanochat-sandbox-escape")
    need(active, "tmpfs")
    result = run("for i in range(100):\n    open(f'f{i}', 'wb').write(b'x' * 60000)")
    assert (result.status, result.reason) == ("error", "OSError: [Errno 28] No space left on device")


def test_kill_parent(active):
    code = "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)"
    result = run(code)
    assert blocked(result, "acting on another process (signals, limits, scheduling)", f"pid={os.getpid()}")
    need(active, "seccomp", "landlock-scope")
    for disable in [KERNEL_ONLY, ("audit", "seccomp"), ("audit", "landlock")]:
        result = run(code, disable=disable)
        assert (result.status, result.reason) == ("error", "PermissionError: [Errno 1] Operation not permitted")
    assert psutil.pid_exists(os.getpid())  # still here to say so


def test_ctypes_and_hook_tampering(active):
    result = run("import ctypes")
    assert blocked(result, LOW_LEVEL, "blocked: importing ctypes is not allowed")
    tamper = ("import builtins, sys\n"
              "builtins.isinstance = lambda *a: True\n"
              "sys._getframe().f_back.f_globals['_PROCESS_EVENTS'] = frozenset()\n"
              "import os\nos.fork()")
    result = run(tamper)
    assert blocked(result, "creating or controlling processes", "os.fork")
    need(active, "seccomp")
    result = run("import ctypes, os\nlibc = ctypes.CDLL(None)\n"
                 "print(libc.fork(), libc.kill(os.getppid(), 9))", disable=KERNEL_ONLY)
    assert (result.status, result.stdout) == ("ok", "-1 -1\n")


def test_layers_on_this_machine(active):
    """Root with landlock on x86_64/aarch64 (this dev box) gets every layer; elsewhere fewer, by name."""
    assert active[0] == "rlimits" and active[-1] == "audit-hook"
    if os.geteuid() == 0:
        assert {"netns", "tmpfs", "own-uid", "no-capabilities"} <= set(active)
    assert set(LAYERS) == {"namespaces", "capabilities", "uid", "landlock", "seccomp", "audit"}


def test_root_host_runs_the_code_under_a_uid_of_its_own(active):
    """The child's uid and gid are no other process's; its files, threads and stdlib imports still work."""
    need(active, "own-uid")
    code = ("import json, os, threading, zoneinfo\nopen('f', 'w').write('x')\n"
            "t = threading.Thread(target=print, args=(1,))\nt.start(); t.join()\n"
            "print(json.dumps([os.getresuid(), os.getresgid(), os.getgroups(), os.stat('f').st_uid]))")
    first, second = run(code), run(code)
    assert first.status == second.status == "ok", (first, second)
    uids, gids, groups, owner = json.loads(first.stdout.splitlines()[1])
    assert len(set(uids)) == 1 and uids == gids and groups == [] and owner == uids[0] != 0
    assert first.stdout != second.stdout  # a new uid per run: concurrent sandboxes never share one
