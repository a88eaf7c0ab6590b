"""`nanochat-cli wgsl …` through the console entry (`nanochat_cli.cli.main`) and the installed scripts
(`nanochat-cli`, `tiny-agent-trainer`): exit codes, linter-style lines, one-line errors and no tracebacks."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from nanochat_cli.cli import main
from nanochat_plugins.wgsl import dataset, templates

GOOD = templates.sample("elementwise.scale", 2).shader
BAD = GOOD.replace("* x", "* nope")


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def files(tmp_path):
    (tmp_path / "good.wgsl").write_text(GOOD)
    (tmp_path / "bad.wgsl").write_text(BAD)
    return tmp_path


def test_validate_speaks_like_a_linter(capsys, files):
    code, out, err = run(capsys, "wgsl", "validate", str(files / "good.wgsl"))
    assert (code, out, err) == (0, f"{files / 'good.wgsl'}: ok\n", "")
    bad_line = next(n for n, ln in enumerate(BAD.splitlines(), 1) if "nope" in ln)
    code, out, err = run(capsys, "wgsl", "validate", str(files / "good.wgsl"), str(files / "bad.wgsl"), "-q")
    assert code == 1 and err == ""
    assert out.splitlines() == [
        f"{files / 'bad.wgsl'}:{bad_line}:{BAD.splitlines()[bad_line - 1].index('nope') + 1}: error: no definition "
        "in scope for identifier: `nope` [unknown identifier]",
        "2 files: 1 valid, 1 invalid"]


@pytest.mark.parametrize("name,content,words", [
    ("latin1.wgsl", "// caf\xe9\nfn f() {}\n".encode("latin-1"), "not UTF-8 text (byte 0xe9 at line 1)"),
    ("empty.wgsl", b"", "empty: a shader needs at least one declaration"),
    ("blank.wgsl", b"  \n\t\n", "empty: a shader needs at least one declaration"),
    ("huge.wgsl", None, "10.5 MB is over the 1 MiB limit for a shader"),
], ids=["non-utf8", "empty", "blank", "10MB"])
def test_bad_input_files_are_one_line_errors(capsys, tmp_path, name, content, words):
    (tmp_path / name).write_bytes(b"// padding line\n" * 655_360 if content is None else content)
    for cmd in ("validate", "run"):
        code, out, err = run(capsys, "wgsl", cmd, str(tmp_path / name))
        assert code == 2 and out == ""
        assert err.count("\n") == 1 and "Traceback" not in err
        assert err.startswith(f"nanochat-cli: error: {tmp_path / name}: {words}")


def test_missing_files_and_folders(capsys, tmp_path):
    code, _, err = run(capsys, "wgsl", "validate", str(tmp_path / "nope.wgsl"), str(tmp_path))
    assert code == 2
    assert err.splitlines() == [f"nanochat-cli: error: {tmp_path / 'nope.wgsl'}: no such file: check the path",
                                f"nanochat-cli: error: {tmp_path}: is a folder: pass .wgsl files (e.g. "
                                f"{tmp_path}/*.wgsl)"]


def test_run_dispatches_with_test_buffers(capsys, files):
    code, out, err = run(capsys, "wgsl", "run", str(files / "good.wgsl"), "--n", "100")
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert "ran scale @workgroup_size(" in lines[0] and "over a 100x1x1 grid" in lines[0]
    assert lines[1].startswith("  in  binding 0 `input` (array<f32>, 100 elements): [")
    assert lines[2].startswith("  out binding 1 `output` (array<f32>, 100 elements): [")
    code, out, _ = run(capsys, "wgsl", "run", str(files / "bad.wgsl"))
    assert code == 1 and "error: no definition in scope for identifier: `nope`" in out


def test_run_with_uniform_values_and_grid(capsys, tmp_path):
    s = next(templates.sample("chromatic.saturate", k) for k in range(50)
             if templates.sample("chromatic.saturate", k).params["uniform"])
    (tmp_path / "sat.wgsl").write_text(s.shader)
    code, out, _ = run(capsys, "wgsl", "run", str(tmp_path / "sat.wgsl"), "--n", "8", "--set", "k=0", "--grid", "8")
    assert code == 0 and "binding 2 `params` (Params): [0]" in out
    code, _, err = run(capsys, "wgsl", "run", str(tmp_path / "sat.wgsl"), "--set", "alpha=2")
    assert code == 2 and err == "nanochat-cli: error: --set alpha: no uniform field of that name: use one of " \
                                "['params.k']\n"
    code, _, err = run(capsys, "wgsl", "run", str(tmp_path / "sat.wgsl"), "--grid", "0,x")
    assert code == 2 and "--grid 0,x: expected X[,Y[,Z]] positive integers" in err


def test_run_against_a_dataset_pair_compares_with_numpy(capsys, tmp_path):
    rec = dataset.load(splits=["test"])[0]
    (tmp_path / "k.wgsl").write_text(rec.shader)
    code, out, _ = run(capsys, "wgsl", "run", str(tmp_path / "k.wgsl"), "--case", rec.id)
    assert code == 0 and f"on the buffers of {rec.id}" in out and "matches the numpy reference" in out
    (tmp_path / "k.wgsl").write_text(templates.sample("chromatic.invert", 0).shader)
    code, out, _ = run(capsys, "wgsl", "run", str(tmp_path / "k.wgsl"), "--case", rec.id)
    assert code == 1 and "values differ" in out
    code, _, err = run(capsys, "wgsl", "run", str(tmp_path / "k.wgsl"), "--case", "nope-001")
    assert code == 2 and "no record 'nope-001'" in err


def test_init_list_show_and_a_config_with_wrong_types(capsys, tmp_path):
    d = tmp_path / "config"
    code, out, _ = run(capsys, "wgsl", "init", "--config-dir", str(d))
    assert code == 0 and out.splitlines() == [f"wrote {d / 'engine.toml'}", f"wrote {d / 'wgsl_generation.toml'}"]
    code, _, err = run(capsys, "wgsl", "init", "--config-dir", str(d))
    assert code == 2 and "exists: keep it, or pass --force" in err
    code, out, _ = run(capsys, "wgsl", "list", "--config-dir", str(d))
    assert code == 0 and [ln.split() for ln in out.splitlines()] == [["engine", "engine", "ok"],
                                                                     ["wgsl_generation", "generation", "ok"]]
    code, out, _ = run(capsys, "wgsl", "show", "wgsl_generation", "--config-dir", str(d), "--bare")
    assert code == 0 and "[training]\nnum_epochs = 30\n" in out
    (d / "wrong.toml").write_text('[training]\nbatch_size = "eight"\nnum_epochs = 1.5\n[model]\nheads = 4\n')
    code, out, err = run(capsys, "wgsl", "show", "wrong", "--config-dir", str(d))
    assert code == 2 and out == "" and "Traceback" not in err
    assert err.splitlines() == [
        f"nanochat-cli: error: {d / 'wrong.toml'}: model.heads: unknown key: remove it or use one of: architecture, "
        "num_layers, d_model, nhead, max_seq_len",
        f"nanochat-cli: error: {d / 'wrong.toml'}: training.num_epochs: Input should be a valid integer (got 1.5)",
        f"nanochat-cli: error: {d / 'wrong.toml'}: training.batch_size: Input should be a valid integer "
        "(got 'eight')"]
    code, out, _ = run(capsys, "wgsl", "list", "--config-dir", str(d))
    assert code == 1 and "wrong            generation  " in out and "(+2 more)" in out


def test_engine_toml_turns_on_the_log_file(capsys, tmp_path, monkeypatch, files):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "engine.toml").write_text('log_level = "DEBUG"\n[paths]\nlog_path = "mylogs"\n')
    code, _, _ = run(capsys, "wgsl", "validate", str(files / "bad.wgsl"))
    assert code == 1
    import logging

    for h in [h for h in logging.getLogger("nanochat_plugins.wgsl").handlers if getattr(h, "_wgsl", False)]:
        h.close()
        logging.getLogger("nanochat_plugins.wgsl").removeHandler(h)
    assert "no definition in scope for identifier" in (tmp_path / "mylogs" / "wgsl.log").read_text()


def test_check_reports_adapter_naga_torch_and_the_dataset(capsys, tmp_path):
    code, out, _ = run(capsys, "wgsl", "check", "--config-dir", str(tmp_path))
    assert code == 0
    for head in ("wgpu ", "adapter ", "naga     ok", "torch ", "dataset  760 pairs shipped", "config "):
        assert any(ln.startswith(head) for ln in out.splitlines()), (head, out)


def test_dataset_generates_checked_pairs(capsys, tmp_path):
    code, out, err = run(capsys, "wgsl", "dataset", "--out", str(tmp_path / "ds"), "--per-family", "2",
                         "--family", "chromatic.mix", "--family", "matrix.matvec", "--seed", "3")
    assert code == 0 and "wrote 4 pairs" in out and "(train 2, val 0, test 2)" in out
    assert "every shader validated and matched its numpy reference" in out and "chromatic.mix: 2 pairs" in err
    rows = [json.loads(ln) for ln in (tmp_path / "ds" / "train.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == ["chromatic.mix-000", "chromatic.mix-001"]
    assert "--per-family 2 --seed 3 --family chromatic.mix --family matrix.matvec" in (
        tmp_path / "ds" / "README.md").read_text()


def test_templates_lists_families_and_shows_one(capsys):
    code, out, _ = run(capsys, "wgsl", "templates")
    assert code == 0 and len(out.splitlines()) == len(templates.FAMILIES)
    assert any(ln.split()[:2] == ["chromatic.gamma", "test"] for ln in out.splitlines())
    code, out, _ = run(capsys, "wgsl", "templates", "chromatic.complement")
    assert code == 0 and out.startswith("# chromatic.complement (seed 0, train split): ")
    code, _, err = run(capsys, "wgsl", "templates", "nope")
    assert code == 2 and "template family 'nope': unknown" in err


def script(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def test_the_installed_scripts(files):
    r = subprocess.run([script("tiny-agent-trainer"), "validate", str(files / "bad.wgsl")], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 1 and ": error: no definition in scope for identifier: `nope`" in r.stdout
    r = subprocess.run([script("tiny-agent-trainer"), "show", "nope", "--config-dir", str(files)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr == (f"tiny-agent-trainer: error: {files / 'nope.toml'}: no such file: "
                                              "`nanochat-cli wgsl init` writes the defaults\n")
    r = subprocess.run([script("nanochat-cli"), "wgsl", "--help"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0
    for cmd in ("check", "list", "show", "init", "validate", "run", "dataset", "templates"):
        assert f"    {cmd}" in r.stdout
    r = subprocess.run([script("tiny-agent-trainer")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "usage: tiny-agent-trainer" in r.stderr
