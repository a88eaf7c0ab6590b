"""Hostile config input (issue 12, "Config input"): each attack is reproduced through the command a user runs,
and must end in one line naming the file and the fix, fast and small, without breaking the other prefabs.

Bombs are refused before they expand: the 9-level file runs in a child with a 2 GiB address-space cap and a
timeout, so a regression fails the test instead of eating the machine (the unbounded loader took 67-135 s
and 4.5-12 GB on it).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from nanochat_cli.cli import main
from nanochat_cli.services import paths

REPO = Path(__file__).resolve().parents[2]
# bombs parsed inside the test process stay small enough (9^6 strings, ~40 MB if expanded) that a regression
# fails instead of exhausting memory; the full 9-level bomb only runs in a capped child
IN_PROCESS_LEVELS = 6


def bomb(levels: int, width: int = 9) -> str:
    """A 'billion laughs' prefab body: width^levels strings from a few hundred bytes, under a real field."""
    anchors = ["&a [" + ", ".join(['"lol"'] * width) + "]"]
    for i in range(1, levels):
        prev, name = chr(ord("a") + i - 1), chr(ord("a") + i)
        anchors.append(f"&{name} [" + ", ".join([f"*{prev}"] * width) + "]")
    return "model:\n  depth: [" + ", ".join(anchors) + "]\n"


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out = capsys.readouterr()
    return rc, out.out, out.err


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err[:2000]
    assert lines[0].startswith("nanochat-cli: error: ") and len(lines[0]) < 400, lines[0][:2000]
    assert "internal error" not in lines[0] and "Traceback" not in err
    return lines[0]


def cli_in_child(*argv: str, timeout: float = 60) -> tuple[int, str, float, int]:
    """Run the CLI in a child capped at 2 GiB of address space; (rc, stderr, seconds, peak RSS in MB)."""
    code = textwrap.dedent(f"""
        import json, resource, sys
        resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
        from nanochat_cli.cli import main
        rc = main({list(argv)!r})
        print(json.dumps({{"rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024}}))
        sys.exit(rc)
    """)
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, cwd=REPO, env=os.environ.copy()
    )
    elapsed = time.monotonic() - t0
    rss = json.loads(proc.stdout.strip().splitlines()[-1])["rss_mb"] if proc.stdout.strip() else -1
    return proc.returncode, proc.stderr, elapsed, rss


def test_billion_laughs_is_refused_before_it_expands(tmp_path):
    f = tmp_path / "laughs.yaml"
    f.write_text(bomb(9))
    assert f.stat().st_size < 600  # the 523-byte, 9-level file (9^9 strings once expanded)
    rc, err, seconds, rss_mb = cli_in_child("config", "validate", str(f))
    line = one_error_line(err)
    assert rc == 2 and str(f) in line and "alias" in line, line
    # the same command on a harmless file is the baseline (imports alone weigh hundreds of MB); the expansion
    # would need minutes and gigabytes, so generous bounds still tell the two apart on a busy machine
    plain = tmp_path / "plain.yaml"
    plain.write_text("a: 1\n")
    _, _, _, base_mb = cli_in_child("config", "validate", str(plain))
    assert seconds < 30 and 0 < rss_mb < base_mb + 200, (seconds, rss_mb, base_mb)


def test_a_small_bomb_does_not_make_a_giant_error_message(tmp_path, capsys):
    f = tmp_path / "laughs6.yaml"
    f.write_text(bomb(IN_PROCESS_LEVELS))  # the unbounded loader printed a multi-megabyte error line
    rc, _, err = run_cli(capsys, "config", "validate", str(f))
    line = one_error_line(err)
    assert rc == 2 and "alias" in line and str(f) in line


def test_a_self_referencing_alias_is_refused(tmp_path, capsys):
    f = tmp_path / "loop.yaml"
    f.write_text("model:\n  depth: &x [1, *x]\n")
    rc, _, err = run_cli(capsys, "config", "validate", str(f))
    assert rc == 2 and "used inside the node it names" in one_error_line(err)


@pytest.mark.parametrize(
    "text",
    [
        "model:\n  depth: " + "[" * 100_000 + "]" * 100_000 + "\n",
        "model:\n  depth: " + "{a: " * 5000 + "1" + "}" * 5000 + "\n",
        "model:\n" + "".join(" " * (i + 1) + f"k{i}:\n" for i in range(600)),  # 1-space indents
    ],
    ids=["flow-sequences", "flow-mappings", "block-mappings"],
)
def test_deep_nesting_is_one_line_not_recursion_error(tmp_path, capsys, text):
    f = tmp_path / "deep.yaml"
    f.write_text(text)
    t0 = time.monotonic()
    rc, _, err = run_cli(capsys, "config", "validate", str(f))
    line = one_error_line(err)
    assert rc == 2 and "nested more than" in line and str(f) in line
    assert time.monotonic() - t0 < 10


def test_random_bytes_are_one_line(tmp_path, capsys):
    f = tmp_path / "noise.yaml"
    f.write_bytes(bytes((i * 97 + 13) % 256 for i in range(4096)))  # fixed "random" bytes, invalid UTF-8
    rc, _, err = run_cli(capsys, "config", "validate", str(f))
    line = one_error_line(err)
    assert rc == 2 and "not UTF-8" in line and str(f) in line


def test_control_characters_and_huge_numbers_are_one_line(tmp_path, capsys):
    f = tmp_path / "odd.yaml"
    for body in ("model:\n  depth: \x00\n", "model:\n  depth: " + "7" * 5000 + "\n", "model:\n  depth: !!int x\n"):
        f.write_text(body)
        rc, _, err = run_cli(capsys, "config", "validate", str(f))
        assert rc == 2 and str(f) in one_error_line(err)


def squeeze(table: str) -> str:
    """A printed table without spaces and rules, so a wrapped cell reads as one string."""
    return re.sub(r"[\s│┃]", "", table)


def write_user_prefab(name: str, content: bytes) -> Path:
    d = paths.user_prefabs_dir()
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"{name}.yaml"
    path.write_bytes(content)
    return path


def prove_the_others_work(capsys, monkeypatch, broken: Path, why: str) -> None:
    """`prefabs list` lists the broken file with why; show, train and config validate of others still work."""
    rc, out, err = run_cli(capsys, "prefabs", "list")
    assert rc == 0 and err == "", err
    cells = squeeze(out)
    assert "cpu-tinyshipped" in cells and "cpu-smallshipped" in cells
    assert f"{broken.stem}userbroken:" in cells and why in cells, out

    rc, out, err = run_cli(capsys, "prefabs", "show", "cpu-tiny")
    assert rc == 0 and "cpu-tiny" in out and err == ""

    rc, out, err = run_cli(capsys, "config", "validate", str(REPO / "prefabs" / "cpu-tiny.yaml"))
    assert rc == 0 and "valid" in out and err == ""

    launched = []

    def fake_headless(orchestrator, spec, env=None):  # stands in for torchrun: only the resolved launch matters
        launched.append(spec)
        return 0

    monkeypatch.setattr("nanochat_cli.headless.run_headless", fake_headless)
    rc, _, err = run_cli(capsys, "train", "--prefab", "cpu-tiny", "--headless")
    assert rc == 0 and err == "" and len(launched) == 1

    rc, _, err = run_cli(capsys, "prefabs", "show", broken.stem)
    assert rc == 2 and "cannot be used" in one_error_line(err)


def test_a_non_utf8_user_prefab_breaks_only_itself(capsys, monkeypatch):
    bad = write_user_prefab("latin1", "name: latin1\ndescription: café\n".encode("latin-1"))
    prove_the_others_work(capsys, monkeypatch, bad, "notUTF-8")


def test_an_alias_bomb_user_prefab_breaks_only_itself(capsys, monkeypatch):
    bad = write_user_prefab("laughs", ("name: laughs\n" + bomb(IN_PROCESS_LEVELS)).encode())
    prove_the_others_work(capsys, monkeypatch, bad, "alias")


def test_a_50_mb_user_prefab_is_refused_fast(capsys, monkeypatch):
    big = paths.user_prefabs_dir()
    big.mkdir(parents=True)
    path = big / "huge.yaml"
    with path.open("w") as f:  # valid YAML: the unbounded loader parsed all of it (72 s for `prefabs list`)
        f.write("name: huge\ndescription: ")
        f.write("x" * (50 << 20))
        f.write("\n")
    t0 = time.monotonic()
    rc, out, err = run_cli(capsys, "prefabs", "list")
    assert time.monotonic() - t0 < 20, "reading a capped prefab must not take long"  # busy machine: generous
    assert rc == 0 and "toolarge" in squeeze(out), out
    prove_the_others_work(capsys, monkeypatch, path, "toolarge")


def test_the_tui_session_starts_and_says_which_prefab_it_skipped():
    from nanochat_cli.services.config.session import ConfigSession
    from nanochat_cli.services.state import UIState

    write_user_prefab("latin1", "name: latin1\ndescription: café\n".encode("latin-1"))
    session = ConfigSession(UIState())  # what the app builds before its first paint
    assert session.prefab == "cpu-tiny" and "cpu-tiny" in [p.name for p in session.prefabs()]
    assert any(n.startswith("prefab skipped: ") and "latin1.yaml: not UTF-8" in n for n in session.notices)


def test_a_user_prefab_extending_a_broken_one_says_so(capsys):
    write_user_prefab("bad", b"name: bad\nmodel: [1, 2\n")
    write_user_prefab("child", b"name: child\nextends: bad\n")
    rc, _, err = run_cli(capsys, "prefabs", "show", "child")
    line = one_error_line(err)
    assert rc == 2 and "child.yaml: extends: prefab 'bad': cannot be used" in line and "not valid YAML" in line


def test_prefab_text_is_never_markup(capsys):
    write_user_prefab("marked", b'name: marked\ndescription: "[/x] closes nothing [bold]"\nextends: cpu-tiny\n')
    rc, out, err = run_cli(capsys, "prefabs", "list")
    assert rc == 0 and err == "" and "[/x]" in out
    rc, out, err = run_cli(capsys, "prefabs", "show", "marked")
    assert rc == 0 and err == "" and "[/x] closes nothing [bold]" in out


def test_engine_config_flag_refuses_the_same_attacks(tmp_path):
    """`engine.train --config` reads YAML too (torch-free): a bomb there is one EngineError line."""
    from engine.config import parse_config
    from engine.errors import EngineError

    f = tmp_path / "train.yaml"
    f.write_text("depth: [" + bomb(IN_PROCESS_LEVELS).split("depth: [", 1)[1])
    with pytest.raises(EngineError, match="alias bomb"):
        parse_config(["--config", str(f)])
    f.write_bytes(b"\xff\xfe depth: 4")
    with pytest.raises(EngineError, match="not UTF-8"):
        parse_config(["--config", str(f)])


def test_layouts_and_eval_prompts_use_the_bounded_loader(tmp_path):
    from nanochat_cli.errors import AppError
    from nanochat_cli.services.checkpoints.prompts import load_prompt_set
    from nanochat_cli.services.panels import load_layout

    layout = tmp_path / "laughs.yaml"
    layout.write_text("screens: [" + bomb(IN_PROCESS_LEVELS).split("depth: [", 1)[1])
    with pytest.raises(AppError, match="alias bomb"):
        load_layout(layout)
    prompts = tmp_path / "eval_prompts.yaml"
    prompts.write_text("prompts: " + "[" * 100_000)
    with pytest.raises(AppError, match="nested more than"):
        load_prompt_set(prompts)


def test_every_user_yaml_read_goes_through_the_bounded_loader():
    """No module reads YAML with yaml.safe_load / yaml.load directly (dumping is fine)."""
    offenders = []
    packages = [d for d in REPO.iterdir() if (d / "__init__.py").exists()]
    assert {"engine", "nanochat_cli"} <= {d.name for d in packages}
    for package in packages:
        for py in package.rglob("*.py"):
            text = py.read_text(encoding="utf-8")
            for needle in ("yaml.safe_load(", "yaml.load(", "yaml.full_load(", "yaml.unsafe_load("):
                if needle in text and py.name != "safe_yaml.py":
                    offenders.append(f"{py.relative_to(REPO)}: {needle}")
    assert offenders == []


def test_engine_config_stays_torch_free():
    code = "import sys, engine.config, engine.safe_yaml; sys.exit(1 if 'torch' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO).returncode == 0


def test_the_child_cap_is_real():
    """The 2 GiB cap cli_in_child relies on holds on this platform (else the bomb test would not protect)."""
    code = "import resource; resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30)); b = bytearray(3 << 30)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode != 0 and "MemoryError" in proc.stderr
