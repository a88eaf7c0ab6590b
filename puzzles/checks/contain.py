"""Run bad-actor scripts through a learner's `execute_code` and report what escaped (a child process).

    python -m puzzles.checks.contain IMPL_FILE

This process makes itself a child subreaper (Linux prctl), so any process the sandboxed code leaves
behind is re-parented here and can be found, reported and killed. That is why it is a process of its
own: the caller (a test run, say) must not become the parent of strangers. Prints one JSON list:
[{"name", "status", "seconds", "escaped": one line or ""}].
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

PR_SET_CHILD_SUBREAPER = 36
SECRET = "puzzle-canary-3f9a1c"
TIMEOUT = 2.0


def _children() -> list[int]:
    pids: list[int] = []
    for task in Path("/proc/self/task").iterdir():
        try:
            pids += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            pass
    return pids


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def _reap_all(grace_s: float = 2.0) -> int:
    """How many processes re-parented here are still alive after `grace_s` (a killed process takes a while
    to die on a busy CPU; an escaped one sleeps on); reaps the dead, then kills and reaps the survivors."""
    deadline = time.monotonic() + grace_s
    while True:
        alive = [pid for pid in _children() if _alive(pid)]
        for pid in _children():
            if pid not in alive:
                try:
                    os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    pass
        if not alive or time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    for pid in alive:
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
    return len(alive)


def attacks(canary: Path) -> list[tuple[str, str, object]]:
    """(name, code, what must hold of the result given (result, seconds) -> problem or "")."""
    def status_in(*ok):
        return lambda r, s: "" if r.status in ok else f"status {r.status!r}, expected one of {list(ok)}"

    return [
        ("infinite loop", "while True:\n    pass\n",
         lambda r, s: "" if r.status == "timeout" and s < TIMEOUT + 3 else
         f"status {r.status!r} after {s:.1f} s, expected 'timeout' within {TIMEOUT + 3:g} s"),
        ("memory hog (1 GiB)", "x = bytearray(1 << 30)\nprint(len(x))\n", status_in("memory", "error", "blocked")),
        ("output flood", "while True:\n    print('x' * 1000)\n",
         lambda r, s: "" if len(r.stdout) <= 64 * 1024 + 200 and s < TIMEOUT + 3 else
         f"{len(r.stdout)} characters of stdout kept after {s:.1f} s (cap 65536)"),
        ("delete a file outside its folder", f"import os\nos.remove({str(canary)!r})\n", status_in("blocked", "error")),
        ("delete a folder outside its own", f"import shutil\nshutil.rmtree({str(canary.parent)!r})\n",
         status_in("blocked", "error")),
        ("overwrite a file outside its folder", f"open({str(canary)!r}, 'w').write('pwned')\n",
         status_in("blocked", "error")),
        ("fork flood (40 sleeping children)",
         "import os, time\nfor _ in range(40):\n    if os.fork() == 0:\n        time.sleep(60)\n        os._exit(0)\n"
         "time.sleep(60)\n", lambda r, s: ""),
        ("read the host's environment", "import os\nprint(dict(os.environ))\n",
         lambda r, s: f"the host's secret {SECRET!r} is in its output" if SECRET in r.stdout + r.stderr else ""),
    ]


def main(impl_file: str) -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from puzzles.catalog import load_solution

    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    impl = load_solution(impl_file)
    os.environ["PUZZLE_HOST_SECRET"] = SECRET
    out = []
    with tempfile.TemporaryDirectory(prefix="puzzle-canary-") as tmp:
        canary = Path(tmp) / "keep" / "canary.txt"
        for name, code, judge in attacks(canary):
            canary.parent.mkdir(exist_ok=True)
            canary.write_text("intact")
            t0 = time.monotonic()
            try:
                result = impl.execute_code(code, timeout=TIMEOUT)
                problem = judge(result, time.monotonic() - t0)
                status = result.status
            except NotImplementedError as e:
                problem, status = str(e), "not implemented"
            except Exception as e:  # execute_code must never raise for what the code does
                problem, status = f"execute_code raised {type(e).__name__}: {e}", "raised"
            seconds = time.monotonic() - t0
            survivors = _reap_all()
            if survivors:
                problem = f"{survivors} processes it started were still running after execute_code returned"
            if not canary.exists() or canary.read_text() != "intact":
                problem = f"{canary} was deleted or modified"
            out.append({"name": name, "status": status, "seconds": round(seconds, 2), "escaped": problem})
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
