"""The README's promises hold: CI runs exactly its test command, and its main command names real things."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def code_blocks() -> list[str]:
    return re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)


def test_ci_runs_the_readme_test_command_verbatim():
    test_command = code_blocks()[1].strip()
    assert test_command.endswith("pytest")
    ci_lines = [ln.strip() for ln in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert test_command in ci_lines


def test_the_readme_test_command_stands_alone():
    """It makes and enters its own virtual environment: it works pasted into a fresh shell, and CI (a fresh clone)
    activates nothing before it."""
    test_command = code_blocks()[1].strip()
    assert test_command.startswith("python3 -m venv .venv && . .venv/bin/activate && ")
    ci_lines = [ln.strip() for ln in (ROOT / ".ci" / "run").read_text().splitlines()]
    before = ci_lines[:ci_lines.index(test_command)]
    assert not any("activate" in ln or "venv" in ln for ln in before if not ln.startswith("#"))


def test_main_command_trains_the_default_prefab():
    main_command = code_blocks()[0].strip()
    assert "nanochat-cli train --prefab cpu-tiny" in main_command
    assert (ROOT / "prefabs" / "cpu-tiny.yaml").exists()


def test_plain_pytest_imports_the_repos_engine_not_the_tests_folder_of_that_name():
    """The README runs `pytest` (not `python -m pytest`): with an editable install the repo root is not on the path
    by itself, and tests/engine/ (no __init__.py) would pass for the `engine` package."""
    import engine

    assert engine.__file__ is not None and Path(engine.__file__).parent == ROOT / "engine"
