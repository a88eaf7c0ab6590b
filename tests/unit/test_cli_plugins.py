"""Plugins add CLI commands through the registry, and `nanochat-cli plugins list|enable|disable` shows and
switches them: where each came from, what it registered, loaded / failed and why / disabled."""

import json
import re
import sys
import textwrap
from pathlib import Path

import pytest
from plugin_helpers import forget_plugin

from engine.telemetry import TELEMETRY_FILE, TelemetryWriter
from nanochat_cli.cli import main
from nanochat_cli.services import paths
from nanochat_cli.services.registry import REGISTRY

DOCS = Path(__file__).resolve().parents[2] / "docs" / "plugins.md"


def docs_example(name: str) -> str:
    m = re.search(rf"<!-- example: {name}/__init__.py.*?-->\n```python\n(.*?)```", DOCS.read_text(), re.S)
    assert m, f"docs/plugins.md lost its {name} example"
    return m.group(1)


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def user_plugins():
    """Write plugins into this test's user plugin folder; every one is unloaded again afterwards."""
    written = []

    def write(name: str, code: str) -> Path:
        pkg = paths.user_plugins_dir() / name
        pkg.mkdir(parents=True)
        (pkg / "__init__.py").write_text(textwrap.dedent(code))
        written.append(name)
        return pkg

    yield write
    for name in written:
        forget_plugin(name)


def write_run(run_dir: Path, losses: list[float]) -> None:
    with TelemetryWriter(run_dir / TELEMETRY_FILE, run="demo") as w:
        for step, loss in enumerate(losses, start=1):
            w.emit("step", step=step, total=len(losses), loss=loss, smooth_loss=loss, lr_mult=1.0,
                   muon_momentum=0.95, tokens_per_sec=1000.0 * step, mfu=0.1, dt=0.5, t_data=0.01, t_fwd_bwd=0.4,
                   t_optim=0.09, mem_bytes=1 << 20, tokens_seen=512 * step, elapsed=0.5 * step, eta=1.0)


def test_the_docs_command_example_runs_from_the_user_folder(capsys, tmp_path, user_plugins):
    user_plugins("stepstats", docs_example("stepstats"))
    run_dir = tmp_path / "runs" / "demo"
    write_run(run_dir, [4.0, 3.0, 2.0, 1.0])

    code, out, err = run(capsys, "stepstats", str(run_dir))
    assert (code, err) == (0, "")
    assert out == "loss over steps 1..4 (4 values): min 1, mean 2.5, max 4, last 1\n"
    code, out, _ = run(capsys, "stepstats", str(run_dir), "--metric", "tokens_per_sec")
    assert code == 0 and "max 4000, last 4000" in out

    code, _, err = run(capsys, "stepstats", str(run_dir), "--metric", "nope")
    assert code == 2 and err.count("\n") == 1
    assert err.startswith(f"nanochat-cli: error: {run_dir}: no nope values in its telemetry: check the run folder")

    code, out, _ = run(capsys, "--help")
    assert code == 0 and re.search(r"stepstats\s+min, mean, max and last value of one metric of a run", out)
    code, out, _ = run(capsys, "stepstats", "--help")
    assert code == 0 and "--metric METRIC" in out


def test_plugins_list_shows_source_registrations_and_status(capsys, user_plugins):
    user_plugins("stepstats", docs_example("stepstats"))
    user_plugins("clash", """
        def register(registry):
            registry.register_cli_command("train", lambda parser: None, help="mine")
    """)
    user_plugins("boom", "raise RuntimeError('no luck today')\n")

    code, out, err = run(capsys, "plugins", "list", "--json")
    assert code == 0 and err == ""  # `plugins` itself does not repeat the failures as warnings
    rows = {p["name"]: p for p in json.loads(out)}
    assert rows["throughput"]["source"] == "in-repo" and rows["throughput"]["status"] == "loaded"
    assert rows["throughput"]["registered"] == [["category", "throughput"], ["panel", "throughput"],
                                                ["panel", "efficiency"], ["layout", "throughput"]]
    assert rows["stepstats"]["source"] == "user folder" and rows["stepstats"]["status"] == "loaded"
    assert rows["stepstats"]["origin"] == str(paths.user_plugins_dir() / "stepstats")
    assert rows["stepstats"]["registered"] == [["cli command", "stepstats"]]
    assert rows["clash"]["status"] == "failed" and rows["clash"]["registered"] == []
    assert rows["clash"]["error"] == "CLI command 'train': already registered (built in): pick another name"
    assert (rows["boom"]["status"], rows["boom"]["error"]) == ("failed", "RuntimeError: no luck today")

    code, out, _ = run(capsys, "plugins", "list")  # the same as a table (long cells wrap onto more lines)
    assert code == 0
    for cell in ("throughput", "in-repo", "stepstats", "user folder", "loaded", "CLI commands: stepstats",
                 "failed: RuntimeError: no luck today", "config categories: throughput;"):
        assert cell in out

    code, _, err = run(capsys, "prefabs", "diff", "cpu-tiny")  # other commands warn, once per failed plugin
    assert code == 0
    assert err.splitlines() == [  # folder plugins load in name order
        "nanochat-cli: warning: plugin boom failed to load: RuntimeError: no luck today (nanochat-cli plugins list)",
        "nanochat-cli: warning: plugin clash failed to load: CLI command 'train': already registered (built in): "
        "pick another name (nanochat-cli plugins list)"]


def test_disable_and_enable_take_effect_at_the_next_start(capsys, tmp_path, user_plugins):
    user_plugins("stepstats", docs_example("stepstats"))
    run_dir = tmp_path / "run"
    write_run(run_dir, [1.0])
    code, out, _ = run(capsys, "plugins", "disable", "stepstats")
    assert code == 0 and "plugin stepstats disabled" in out
    assert "stepstats" in (paths.plugin_settings_path()).read_text()
    forget_plugin("stepstats")  # a new nanochat-cli process starts from nothing

    code, out, _ = run(capsys, "plugins", "list", "--json")
    (row,) = [p for p in json.loads(out) if p["name"] == "stepstats"]
    assert row["status"] == "disabled" and row["registered"] == []
    assert "nanochat_user_plugins.stepstats" not in sys.modules  # not even imported
    code, _, err = run(capsys, "stepstats", str(run_dir))
    assert code == 2 and "invalid choice: 'stepstats'" in err
    code, out, _ = run(capsys, "plugins", "disable", "stepstats")
    assert code == 0 and out == "plugin stepstats is already disabled\n"

    code, out, _ = run(capsys, "plugins", "enable", "stepstats")
    assert code == 0 and "plugin stepstats enabled" in out
    forget_plugin("stepstats")
    code, out, _ = run(capsys, "stepstats", str(run_dir))
    assert code == 0 and out.startswith("loss over steps 1..1")

    code, _, err = run(capsys, "plugins", "disable", "nope")
    assert code == 2 and err == ("nanochat-cli: error: plugin 'nope': not found: `nanochat-cli plugins list` shows "
                                 "the plugins there are\n")


def test_a_broken_settings_file_is_a_one_line_error(capsys):
    paths.plugin_settings_path().parent.mkdir(parents=True, exist_ok=True)
    paths.plugin_settings_path().write_text("disabled: {oops")
    code, _, err = run(capsys, "prefabs", "list")
    assert code == 2 and err.count("\n") == 1 and "plugins.yaml: unreadable (" in err and "delete it" in err


def test_plugin_commands_that_misbehave_get_one_line_errors(capsys, user_plugins):
    user_plugins("nohandler", """
        def register(registry):
            registry.register_cli_command("nohandler", lambda parser: parser.add_argument("x"))
    """)
    user_plugins("badsetup", """
        def setup(parser):
            parser.add_argument("--x")
            parser.add_argument("--x")  # argparse refuses a second --x

        def register(registry):
            registry.register_cli_command("badsetup", setup)
    """)
    user_plugins("crashes", """
        def crash(args):
            raise KeyError("who")

        def register(registry):
            registry.register_cli_command("crashes", lambda parser: parser.set_defaults(func=crash))
    """)
    code, _, err = run(capsys, "nohandler", "1")
    assert code == 2 and err == ("nanochat-cli: error: plugin nohandler: command 'nohandler' has no handler: call "
                                 "parser.set_defaults(func=...) in its setup(parser)\n")
    code, _, err = run(capsys, "badsetup")
    assert code == 2 and err.startswith("nanochat-cli: error: plugin badsetup: command 'badsetup' could not be set "
                                        "up (ArgumentError: ")
    code, _, err = run(capsys, "crashes")
    assert code == 2 and err == ("nanochat-cli: error: internal error (KeyError: 'who'): rerun with "
                                 "NANOCHAT_CLI_DEBUG=1 and report it\n")
    code, _, _ = run(capsys, "prefabs", "list")  # the rest of the CLI is unaffected
    assert code == 0


def test_plugin_command_names_are_checked(user_plugins):
    from nanochat_cli.errors import AppError

    with pytest.raises(AppError, match="CLI command 'Bad Name': invalid name"):
        REGISTRY.register_cli_command("Bad Name", lambda parser: None)
    with pytest.raises(AppError, match="CLI command 'x': setup is not callable"):
        REGISTRY.register_cli_command("x", "not a function")
    with pytest.raises(AppError, match="CLI command 'runs': built-in commands cannot be removed"):
        REGISTRY.unregister_cli_command("runs")
