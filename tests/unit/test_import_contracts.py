"""The layer rules hold: import-linter's contracts in .importlinter (engine standalone, UI-free services,
widgets below screens, plugins on the public API, no loops), and no module imports another's private names."""

import ast
import configparser
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / ".importlinter"


def contracts() -> dict[str, dict[str, list[str]]]:
    parser = configparser.ConfigParser()
    parser.read(CONFIG)
    out = {}
    for section in parser.sections():
        if section.startswith("importlinter:contract:"):
            out[section.split(":")[-1]] = {k: [v.strip() for v in text.splitlines() if v.strip()]
                                           for k, text in parser[section].items()}
    return out


def test_the_contracts_name_every_layer_rule():
    c = contracts()
    assert c["engine-standalone"]["source_modules"] == ["engine"]
    assert set(c["engine-standalone"]["forbidden_modules"]) == {"nanochat_cli", "nanochat_plugins", "puzzles"}
    assert c["puzzles-app-free"]["source_modules"] == ["puzzles"]
    assert set(c["puzzles-app-free"]["forbidden_modules"]) == {"nanochat_cli", "nanochat_plugins"}
    assert c["services-ui-free"]["source_modules"] == ["nanochat_cli.services"]
    assert {"textual", "rich", "nanochat_cli.screens", "nanochat_cli.widgets"} <= set(
        c["services-ui-free"]["forbidden_modules"])
    assert c["widgets-below-screens"]["forbidden_modules"] == ["nanochat_cli.screens"]
    assert c["plugins-public-api"]["forbidden_modules"] == ["nanochat_cli"]
    assert c["plugins-public-api"]["ignore_imports"] == ["nanochat_plugins.** -> nanochat_cli.plugin_api"]
    assert c["no-loops"]["type"] == ["acyclic_siblings"]


def test_lint_imports_keeps_every_contract():
    # in a child process: import-linter configures itself globally, and its report goes to stdout
    code = ("import sys; from importlinter.cli import lint_imports; "
            "sys.exit(lint_imports(config_filename='.importlinter', no_cache=True, no_logo=True))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 broken" in out.stdout


def test_no_module_imports_another_modules_private_names():
    found = []
    for package in ("nanochat_cli", "nanochat_plugins", "puzzles"):
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    found += [f"{path.relative_to(ROOT)}:{node.lineno}: {node.module}.{a.name}" for a in node.names
                              if a.name.startswith("_") and not a.name.startswith("__")]
    assert found == [], "make what is shared public (e.g. cli/common.py) instead:\n" + "\n".join(found)
