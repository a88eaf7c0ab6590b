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


def test_main_command_trains_the_default_prefab():
    main_command = code_blocks()[0].strip()
    assert "nanochat-cli train --prefab cpu-tiny" in main_command
    assert (ROOT / "prefabs" / "cpu-tiny.yaml").exists()
