"""engine.shared: the torch-free idioms the engine and the app share (one copy each)."""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine import shared
from engine.errors import EngineError
from engine.shapes import config_from_depth

ROOT = Path(__file__).resolve().parents[2]
NAMES = re.compile(r"^(?:model|optim|meta)_")


def test_one_line_forms():
    assert shared.one_line(RuntimeError("CUDA out of memory.\nTried 2 GiB")) == "RuntimeError: CUDA out of memory."
    assert shared.one_line(ValueError()) == "ValueError"
    assert shared.one_line(OSError("disk\nfull"), type_name=False) == "disk"
    assert shared.one_line(EngineError("x.yaml: bad: fix it\nmore")) == "x.yaml: bad: fix it"
    assert shared.one_line("  \n first \n second") == "first"


def test_run_main_turns_engine_errors_into_one_line(capsys):
    def fails() -> int:
        raise EngineError("thing: broken\ndetail: fix it")

    assert shared.run_main("engine.tool", fails) == 1
    assert capsys.readouterr().err == "engine.tool: error: thing: broken\n"
    assert shared.run_main("engine.tool", lambda: None) == 0
    with pytest.raises(ZeroDivisionError):  # a bug is not a user error: it keeps its traceback
        shared.run_main("engine.tool", lambda: 1 // 0)


def test_positive_int():
    assert shared.positive_int("3") == 3
    for bad in ("0", "-2", "x"):
        with pytest.raises(argparse.ArgumentTypeError, match="must be a positive integer"):
            shared.positive_int(bad)


def test_atomic_write_forms_modes_and_failure(tmp_path):
    target = tmp_path / "sub" / "f.bin"
    assert shared.atomic_write(target, b"abc") == 3 and target.read_bytes() == b"abc"
    assert target.stat().st_mode & 0o777 == 0o644
    assert shared.atomic_write(target, "é", mode=0o600) == 2 and target.read_text() == "é"
    assert target.stat().st_mode & 0o777 == 0o600
    assert shared.atomic_write(target, lambda f: f.write(b"xyz")) == 3

    def half_then_fail(f) -> None:
        f.write(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError):
        shared.atomic_write(target, half_then_fail)
    assert target.read_bytes() == b"xyz" and [p.name for p in target.parent.iterdir()] == ["f.bin"]


def test_stale_temps_only_lists_dead_writers_leftovers(tmp_path):
    host = shared._host_id()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    files = {
        "dead": f".model_000001.pt.{dead_pid}-{host}.abcd1234.tmp",
        "live": f".model_000002.pt.{os.getpid()}-{host}.abcd1234.tmp",
        "old_style": ".meta_000001.json.k3j4h5g6.tmp",
        "foreign_new": f".optim_000001_rank0.pt.{dead_pid}-00000000.abcd1234.tmp",
        "foreign_old": f".optim_000001_rank1.pt.{dead_pid}-00000000.abcd1234.tmp",
        "other_file": f".state.json.{dead_pid}-{host}.abcd1234.tmp",
    }
    for name in files.values():
        (tmp_path / name).write_text("x")
    day_ago = time.time() - 25 * 3600
    os.utime(tmp_path / files["foreign_old"], (day_ago, day_ago))
    stale = {p.name for p in shared.stale_temps(tmp_path, NAMES)}
    assert stale == {files["dead"], files["old_style"], files["foreign_old"]}
    assert {p.name for p in shared.remove_stale_temps(tmp_path, NAMES)} == stale
    assert not shared.stale_temps(tmp_path, NAMES)


def test_file_record_problem(tmp_path):
    path = tmp_path / "model_000001.pt"
    path.write_bytes(b"weights")
    record = {"bytes": 7, "sha256": shared.sha256_file(path)}
    assert shared.file_record_problem(path, record) is None
    path.write_bytes(b"weightz")
    assert "sha256" in shared.file_record_problem(path, record)
    path.write_bytes(b"wei")
    assert "3 bytes where 7 were saved" in shared.file_record_problem(path, record)
    assert "malformed" in shared.file_record_problem(path, "nonsense")
    path.unlink()
    assert shared.file_record_problem(path, record) == "missing"


def test_the_dimension_rule_is_the_models():
    for depth, ar, hd in [(20, 64, 128), (3, 21, 32), (1, 1, 8), (12, 64, 96)]:
        dim = shared.model_dim(depth, ar, hd)
        assert dim % hd == 0 and dim >= depth * ar > dim - hd
        assert config_from_depth(depth, ar, hd, 64, 300).n_embd == dim


def test_peak_flops_table():
    assert shared.peak_flops("NVIDIA H100 80GB HBM3") == shared.PEAK_FLOPS["H100"] == 989e12
    assert shared.peak_flops("NVIDIA GeForce GTX 1080") is None


def test_shared_and_the_app_start_without_torch():
    code = "import sys, engine.shared, nanochat_cli.app; print('torch' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "False", r.stderr
