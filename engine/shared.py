"""What the engine and the app both need, torch-free so the app imports it at start-up for nothing.

One home each for: the base dir, one-line error text, atomic writes (temp + fsync + rename) and the
clean-up of the temp files a killed writer leaves, file checksums, checkpoint phase folder names, the
model-dimension rule, the GPU peak FLOP/s table, and the error handling of a `python -m engine.X` main.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from engine.errors import EngineError

# ---------------------------------------------------------------------------------------------- places


def base_dir() -> Path:
    """Where data, tokenizers, runs and checkpoints live ($NANOCHAT_BASE_DIR, nanochat's default)."""
    return Path(os.environ.get("NANOCHAT_BASE_DIR") or Path.home() / ".cache" / "nanochat").expanduser()


# nanochat's checkpoint folders under the base dir, by training phase
PHASE_DIRS = {"base": "base_checkpoints", "sft": "chatsft_checkpoints", "rl": "chatrl_checkpoints"}
PHASE_OF_DIR = {v: k for k, v in PHASE_DIRS.items()}
# the files of one checkpoint step in such a folder
CHECKPOINT_FILE_RE = re.compile(r"^(?:model_\d{6}\.pt|optim_\d{6}_rank\d+\.pt|meta_\d{6}\.json)$")


# ---------------------------------------------------------------------------------------------- errors


def first_line(text: str) -> str:
    """The first non-blank line of `text` ("" when there is none)."""
    return (str(text).strip().splitlines() or [""])[0].strip()


def one_line(exc: BaseException | str, *, type_name: bool = True) -> str:
    """An error as one line: `Type: first line of the message` (the type alone when the message is empty).

    type_name=False gives the message alone (the type when empty); an EngineError is always its message
    alone, since it is written for the user already."""
    if isinstance(exc, str):
        return first_line(exc)
    first = first_line(str(exc))
    if not first:
        return type(exc).__name__
    return f"{type(exc).__name__}: {first}" if type_name and not isinstance(exc, EngineError) else first


def run_main(prog: str, body: Callable[[], int | None], code: int = 1) -> int:
    """Run a command's body; an EngineError becomes `prog: error: <one line>` on stderr and exit `code`."""
    try:
        return body() or 0
    except EngineError as e:
        print(f"{prog}: error: {one_line(e)}", file=sys.stderr)
        return code


def positive_int(text: str) -> int:
    """argparse type for a count flag: an integer of at least 1."""
    import argparse

    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: must be a positive integer")
    return value


# ---------------------------------------------------------------------------------------------- files

_TEMP_RE = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)-(?P<host>[0-9a-f]{8})\.[^.]+\.tmp$")
_FOREIGN_TEMP_AGE_S = 24 * 3600  # a temp file from another machine: its writer cannot be asked, so wait a day


def _host_id() -> str:
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


def _temp_prefix(path: Path) -> str:
    # writer pid and machine in the name: a later clean-up tells a dead writer's leftover from a live write
    return f".{path.name}.{os.getpid()}-{_host_id()}."


def atomic_write(path: str | Path, data: bytes | str | Callable[[IO[bytes]], Any], mode: int = 0o644) -> int:
    """Write `path` through a temp file beside it, fsync, rename, fsync the folder; returns the bytes written.

    `data` is bytes, text (UTF-8) or a function that writes into the open binary file. A crash leaves the
    old file or the new one, never half of either; the temp file is removed on any failure."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_temp_prefix(path), suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            if callable(data):
                data(f)
            else:
                f.write(data.encode("utf-8") if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
            size = f.tell()
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return size


def fsync_dir(directory: Path) -> None:
    """Make a rename in `directory` durable (best effort: some filesystems cannot open a folder)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this machine (it may belong to another user)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OverflowError:
        return False
    return True


def stale_temps(directory: Path, name_re: re.Pattern[str]) -> list[Path]:
    """Temp files in `directory` left by a killed atomic_write of a file whose name matches `name_re`.

    A temp file is stale when its writer (the pid and machine in its name) is gone; one written on another
    machine (a shared folder) is stale after a day untouched; a name without a pid comes from an older
    writer and is stale too. Temp files of a live writer are never listed."""
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    out = []
    for name in names:
        if not (name.startswith(".") and name.endswith(".tmp")):
            continue
        path = Path(directory) / name
        m = _TEMP_RE.match(name)
        if m is None:  # `.<name>.<random>.tmp` from an older writer (no pid in the name)
            if name_re.match(name[1:-4].rsplit(".", 1)[0]):
                out.append(path)
            continue
        if not name_re.match(m.group("name")):
            continue
        if m.group("host") == _host_id():
            if pid_alive(int(m.group("pid"))):
                continue
        else:
            try:
                if time.time() - path.stat().st_mtime < _FOREIGN_TEMP_AGE_S:
                    continue
            except FileNotFoundError:
                continue
        out.append(path)
    return sorted(out)


def remove_stale_temps(directory: Path, name_re: re.Pattern[str]) -> list[Path]:
    """Delete what stale_temps finds; returns what was removed."""
    removed = []
    for p in stale_temps(directory, name_re):
        try:
            p.unlink()
            removed.append(p)
        except OSError:  # gone already, or a read-only folder: nothing to do here
            pass
    return removed


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    """Hex sha256 of a file's content."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def file_record_problem(path: Path, record: Any) -> str | None:
    """What differs between a file and its recorded {"bytes", "sha256"}, in a few words; None when it matches."""
    if not isinstance(record, dict) or not isinstance(record.get("sha256"), str):
        return "its checksum record in the meta is malformed"
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return "missing"
    if isinstance(record.get("bytes"), int) and size != record["bytes"]:
        return f"{size} bytes where {record['bytes']} were saved (truncated or damaged)"
    if sha256_file(path) != record["sha256"]:
        return "content differs from the sha256 saved in the meta (damaged)"
    return None


# ---------------------------------------------------------------------------------------------- model shape


def model_dim(depth: int, aspect_ratio: int, head_dim: int) -> int:
    """nanochat's dimension rule: depth * aspect_ratio rounded up to a multiple of head_dim."""
    return -(-depth * aspect_ratio // head_dim) * head_dim


# ---------------------------------------------------------------------------------------------- hardware

# Dense BF16 tensor-core peak FLOP/s by GPU name fragment (NVIDIA datasheets), first match wins; used for
# MFU and for the app's time estimates. A GPU not listed (and any CPU) has no known peak.
PEAK_FLOPS = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "4090": 165e12, "A10G": 70e12}


def peak_flops(device_name: str) -> float | None:
    """The peak for a device name such as torch.cuda.get_device_name() gives; None when unknown."""
    return next((v for k, v in PEAK_FLOPS.items() if k in device_name), None)
