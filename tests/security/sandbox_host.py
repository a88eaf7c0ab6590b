"""A throwaway host for one sandbox attack: plant bait, run execute_code, report what changed on the host.

Usage: python sandbox_host.py REPO_ROOT WORK_DIR < request.json > report.json

The request holds the attack `code` (with @NAME@ placeholders for the bait below) and `kwargs` for
execute_code. The test runs each attack in a fresh host process in its own session, so an attack that
does reach its parent harms this process, never the test runner; a dead host is itself the finding.
Every observation is taken defensively: an attack that broke the host (no fds left, no file writes)
must show up as a finding in the report, not as a crash of the reporter.
"""

import errno
import json
import os
import resource
import signal
import socket
import sys
import uuid
from pathlib import Path

LIMITS = [name for name in dir(resource) if name.startswith("RLIMIT_")]
WATCHED_SIGNALS = ("SIGUSR1", "SIGUSR2", "SIGIO", "SIGHUP", "SIGTERM", "SIGINT", "SIGURG", "SIGWINCH", "SIGALRM")
received: list[str] = []


def observe(fn):
    try:
        return fn()
    except Exception as e:  # the finding is that it failed; keep reporting the rest
        return f"failed: {type(e).__name__}: {e}"


def host_state() -> dict:
    return {
        "rlimits": {name: observe(lambda n=name: list(resource.getrlimit(getattr(resource, n)))) for name in LIMITS},
        "nice": observe(lambda: os.getpriority(os.PRIO_PROCESS, 0)),
        "affinity": observe(lambda: sorted(os.sched_getaffinity(0))),
        "policy": observe(lambda: os.sched_getscheduler(0)),
        "oom_score_adj": observe(lambda: Path("/proc/self/oom_score_adj").read_text().strip()),
        "tracer": observe(lambda: Path("/proc/self/status").read_text().split("TracerPid:")[1].split()[0]),
    }


def plant(work: Path) -> dict:
    """Secrets, canaries and listeners the attack code may aim at; returns the placeholder values."""
    tag = uuid.uuid4().hex
    home = Path(os.environ["HOME"])
    home.mkdir(parents=True, exist_ok=True)
    secret_file = home / ".netrc"
    secret_file.write_text(f"machine api.wandb.ai password file-secret-{tag}\n")
    os.environ["WANDB_API_KEY"] = f"wandb-secret-{tag}"
    os.environ["HF_TOKEN"] = f"hf_secret{tag}"
    canary = work / "canary"
    canary.mkdir()
    (canary / "keep.txt").write_text("still here")
    tcp = socket.create_server(("127.0.0.1", 0))
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    unix = socket.socket(socket.AF_UNIX)
    unix.bind(str(work / "host.sock"))
    unix.listen()
    abstract = socket.socket(socket.AF_UNIX)
    abstract.bind(f"\0nanochat-host-{tag}")
    abstract.listen()
    for s in (tcp, udp, unix, abstract):
        s.setblocking(False)
    return {
        "secrets": [f"file-secret-{tag}", f"wandb-secret-{tag}", f"hf_secret{tag}"],
        "sockets": {"tcp": tcp, "udp": udp, "unix": unix, "abstract": abstract},
        "values": {"SECRET_FILE": str(secret_file), "HOME": str(home), "SECRET_NAME": secret_file.name,
                   "CANARY": str(canary), "OUTSIDE_FILE": str(work / "created-outside"),
                   "SHM_FILE": f"/dev/shm/nanochat-canary-{tag}", "TCP_PORT": str(tcp.getsockname()[1]),
                   "UDP_PORT": str(udp.getsockname()[1]), "UNIX_PATH": str(work / "host.sock"),
                   "ABSTRACT": f"nanochat-host-{tag}"},
    }


def reached(sockets: dict) -> list[str]:
    """Which listeners got a connection or a datagram."""
    hits = []
    for name, s in sockets.items():
        try:
            s.recvfrom(64) if s.type == socket.SOCK_DGRAM else s.accept()
            hits.append(name)
        except BlockingIOError:
            pass
        except OSError as e:
            if e.errno != errno.EAGAIN:
                hits.append(f"{name}: {e}")
    return hits


def result_dict(result) -> dict:
    return {k: getattr(result, k) for k in ("status", "stdout", "stderr", "exit_code", "reason", "layers",
                                            "duration")}


def main() -> None:
    repo, work = sys.argv[1], Path(sys.argv[2])
    sys.path.insert(0, repo)
    from engine.execution import execute_code

    for name in WATCHED_SIGNALS:
        signal.signal(getattr(signal, name), lambda signum, _frame: received.append(signal.Signals(signum).name))
    request = json.loads(sys.stdin.read())
    bait = plant(work)
    code = request["code"]
    for key, value in bait["values"].items():
        code = code.replace(f"@{key}@", value)
    before = host_state()
    report: dict = {"before": before}
    try:
        report["result"] = result_dict(execute_code(code, **request["kwargs"]))
    except Exception as e:
        report["raised"] = f"{type(e).__name__}: {e}"
    report["after"] = host_state()
    report["signals"] = received
    report["reached"] = reached(bait["sockets"])
    report["secrets"] = bait["secrets"]
    values = bait["values"]
    report["canary_intact"] = observe(lambda: (Path(values["CANARY"]) / "keep.txt").read_text() == "still here")
    report["outside_created"] = os.path.exists(values["OUTSIDE_FILE"])
    report["shm_created"] = os.path.exists(values["SHM_FILE"])
    if report["shm_created"]:
        os.unlink(values["SHM_FILE"])
    report["host_write"] = observe(lambda: (work / "probe.bin").write_bytes(b"x" * 65536))
    report["host_open_files"] = observe(lambda: len([open(os.devnull) for _ in range(32)]))
    second = observe(lambda: result_dict(execute_code("print(1)")))
    report["second_run"] = second if isinstance(second, str) else [second["status"], second["stdout"]]
    tmp = Path(os.environ["TMPDIR"])
    report["leftovers"] = observe(lambda: sorted(p.name for p in tmp.iterdir() if p.name.startswith("nanochat-exec-")))
    sys.stdout.write(json.dumps(report) + "\n")


if __name__ == "__main__":
    main()
