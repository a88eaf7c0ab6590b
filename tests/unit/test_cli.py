"""The nanochat-cli command line: prefabs, config validate, auth; one-line errors with exit code 2."""

import io
import subprocess
import sys

import yaml

from engine import __version__
from nanochat_cli.cli import main
from nanochat_cli.services import paths
from nanochat_cli.services.secrets import SecretStore

WANDB_KEY = "fedcba9876543210fedcba9876543210fedcba98"


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def assert_one_line_error(err, *fragments):
    lines = err.strip().splitlines()
    assert lines and all(line.startswith("nanochat-cli: error: ") for line in lines), err
    assert "Traceback" not in err
    for f in fragments:
        assert f in err


def test_version(capsys):
    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.strip() == f"nanochat-cli {__version__}"


def test_prefabs_list_and_show(capsys):
    code, out, _ = run(capsys, "prefabs", "list")
    assert code == 0
    for name in ("cpu-tiny", "cpu-small", "$10", "$100", "$1000"):
        assert name in out
    code, out, _ = run(capsys, "prefabs", "show", "$100")
    assert code == 0
    assert "8× NVIDIA H100 SXM" in out and "VRAM per GPU (est.)" in out and "$10" in out
    assert "error: this config needs 8 CUDA GPUs" in out  # the guardrail on this GPU-less test box
    code, out, _ = run(capsys, "prefabs", "show", "usd100")
    assert code == 0 and "$100" in out


def test_diff_with_bare_and_dotted_keys(capsys):
    code, out, _ = run(capsys, "prefabs", "diff", "cpu-tiny", "--set", "depth=6", "model.vocab_size=8192")
    assert code == 0 and "depth" in out and "vocab_size" in out and "8192" in out
    code, out, _ = run(capsys, "prefabs", "diff", "cpu-tiny")
    assert code == 0 and "no differences from cpu-tiny" in out


def test_bad_overrides_are_one_line_errors(capsys):
    code, _, err = run(capsys, "prefabs", "diff", "cpu-tiny", "--set", "depth=200", "dpeth=3", "nokey")
    assert code == 2
    assert_one_line_error(err, "model.depth: 200 is out of range: use a value between 1 and 128",
                          "dpeth: unknown field: did you mean", "--set nokey: expected key=value")
    code, _, err = run(capsys, "prefabs", "show", "cpu-tiny", "--set", "device_batch_size=7")
    assert code == 2
    assert_one_line_error(err, "training.total_batch_size: 4096 is not a multiple")
    code, _, err = run(capsys, "prefabs", "show", "")
    assert code == 2
    assert_one_line_error(err, "prefab '': not found", "'$10'")


def test_save_as_confirms_overwrite(capsys, monkeypatch):
    code, out, _ = run(capsys, "prefabs", "save-as", "mine", "--from", "cpu-tiny", "--set", "depth=5")
    path = paths.user_prefabs_dir() / "mine.yaml"
    assert code == 0 and str(path) in out
    assert yaml.safe_load(path.read_text())["model"] == {"depth": 5}
    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # not a terminal: no prompt, refuse
    code, _, err = run(capsys, "prefabs", "save-as", "mine", "--from", "cpu-tiny", "--set", "depth=6")
    assert code == 2
    assert_one_line_error(err, "'mine': already exists", "--yes")
    code, _, _ = run(capsys, "prefabs", "save-as", "mine", "--from", "cpu-tiny", "--set", "depth=6", "--yes")
    assert code == 0 and yaml.safe_load(path.read_text())["model"] == {"depth": 6}

    class Tty(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr("sys.stdin", Tty("n\n"))
    code, out, _ = run(capsys, "prefabs", "save-as", "mine", "--from", "cpu-tiny", "--set", "depth=7")
    assert code == 1 and "not saved" in out and yaml.safe_load(path.read_text())["model"] == {"depth": 6}
    monkeypatch.setattr("sys.stdin", Tty("y\n"))
    code, _, _ = run(capsys, "prefabs", "save-as", "mine", "--from", "cpu-tiny", "--set", "depth=7")
    assert code == 0 and yaml.safe_load(path.read_text())["model"] == {"depth": 7}
    code, _, err = run(capsys, "prefabs", "save-as", "$10", "--from", "cpu-tiny")
    assert code == 2
    assert_one_line_error(err, "read-only")
    code, _, _ = run(capsys, "prefabs", "delete", "mine", "--yes")
    assert code == 0 and not path.exists()


def test_config_validate(capsys, tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text("extends: cpu-tiny\nmodel:\n  depth: 3\n")
    code, out, _ = run(capsys, "config", "validate", str(good))
    assert code == 0 and out.startswith(f"{good}: valid:")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  depth: 0\n")
    code, _, err = run(capsys, "config", "validate", str(bad))
    assert code == 2
    assert_one_line_error(err, f"{bad}: model.depth: 0 is out of range")
    code, _, err = run(capsys, "config", "validate", str(tmp_path / "missing.yaml"))
    assert code == 2
    assert_one_line_error(err, "missing.yaml: file not found")


def test_auth_wandb_offline_and_status(capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO(WANDB_KEY + "\n"))
    code, out, _ = run(capsys, "auth", "wandb", "--stdin", "--endpoint", "http://127.0.0.1:9")
    assert code == 0 and "saved, not verified" in out and WANDB_KEY not in out
    assert SecretStore().get("wandb_api_key") == WANDB_KEY
    code, out, _ = run(capsys, "auth", "status")
    assert code == 0 and "wandb_api_key" in out and "yes" in out and WANDB_KEY not in out
    monkeypatch.setattr("sys.stdin", io.StringIO("not-a-key\n"))
    code, _, err = run(capsys, "auth", "wandb", "--stdin", "--no-verify")
    assert code == 2
    assert_one_line_error(err, "W&B key: 9 characters of the wrong form")
    code, out, _ = run(capsys, "auth", "forget", "wandb")
    assert code == 0 and not SecretStore().is_set("wandb_api_key")


def test_auth_uses_a_hidden_prompt(capsys, monkeypatch):
    prompts = []
    monkeypatch.setattr("getpass.getpass", lambda prompt: prompts.append(prompt) or "hf_" + "x1" * 20)
    code, out, _ = run(capsys, "auth", "hf")
    assert code == 0 and "input hidden" in prompts[0] and SecretStore().is_set("hf_token")


def test_usage_errors_exit_2(capsys):
    code, _, err = run(capsys, "prefabs")
    assert code == 2 and "required" in err


def test_module_entry_point_and_cheap_import():
    out = subprocess.run([sys.executable, "-m", "nanochat_cli", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == f"nanochat-cli {__version__}"
    probe = ("import sys, nanochat_cli.cli; "
             "print(sorted(m for m in ('torch', 'textual', 'pydantic', 'keyring') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    probe = ("import sys; from nanochat_cli.services.config.prefabs import PrefabStore; "
             "PrefabStore().resolve('cpu-tiny'); print('torch' in sys.modules, 'textual' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False False"
