"""End to end, the way a person uses it: the real `nanochat-cli` in a real terminal (tmux), driven by keys.

Open the app, look at the Train tab, go back to Config and press t to launch a tiny 2-process CPU run,
watch step numbers arrive, stop it (x, then y), quit (Ctrl+Q). Then `nanochat-cli train --prefab …` on
the same terminal, which opens the app on the Train tab with the run started. The config dir holds a tiny
user prefab and the UI state; the tmux server has its own socket in the test's tmp dir.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from engine_assets import build_assets, tiny_overrides

TMUX = shutil.which("tmux")
pytestmark = [pytest.mark.skipif(TMUX is None, reason="tmux is not installed (apt-get install tmux; .ci/run does)"),
              pytest.mark.slow]  # real 2-process training behind a real terminal: 10-60 s depending on load
# Bounds are for a busy 2-core machine (first start compiles bytecode, torch imports in two ranks); every wait
# ends as soon as the screen shows what it waits for, so a quiet machine never waits them out.
WAIT = 180.0
CLI = Path(sys.executable).with_name("nanochat-cli")
STEP_RE = re.compile(r"step (\d+) / 100,000")


@pytest.fixture(scope="module")
def assets(tmp_path_factory) -> dict[str, str]:
    return build_assets(tmp_path_factory.mktemp("assets"))


class Terminal:
    """One tmux session on a private server: send keys, read the screen."""

    def __init__(self, tmp: Path, env: dict[str, str], command: list[str]):
        self.socket = str(tmp / "tmux.sock")
        self.env = env
        exports = " ".join(f"{k}={_quote(v)}" for k, v in env.items())
        self._tmux("new-session", "-d", "-s", "e2e", "-x", "120", "-y", "40",
                   f"env {exports} {' '.join(_quote(c) for c in command)}")
        # keep the pane (and whatever the app printed last) when the app exits, so a failure shows its screen
        self._tmux("set-option", "-t", "e2e", "remain-on-exit", "on")

    def _tmux(self, *args: str) -> str:
        return subprocess.run([TMUX, "-S", self.socket, *args], check=True, capture_output=True, text=True).stdout

    def keys(self, *keys: str) -> None:
        for key in keys:
            self._tmux("send-keys", "-t", "e2e", key)
            time.sleep(0.15)  # one key at a time, like a person; the app handles each before the next

    def screen(self) -> str:
        return self._tmux("capture-pane", "-p", "-t", "e2e")

    def wait_for(self, what: str, cond, timeout: float = WAIT):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.screen()
            result = cond(text)
            if result:
                return result
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}; the terminal shows:\n{self.screen()}")

    def close(self) -> None:
        subprocess.run([TMUX, "-S", self.socket, "kill-server"], capture_output=True)


def _quote(s: str) -> str:
    return "'" + s.replace("'", "'\\''") + "'"


def setup_dirs(tmp: Path, assets: dict[str, str], run: str) -> dict[str, str]:
    """A config dir with a tiny user prefab (loaded on the Config tab) and the env that points at it."""
    config = tmp / "config"
    (config / "prefabs").mkdir(parents=True)
    nested: dict[str, dict] = {}
    for key, value in tiny_overrides(assets, run, nproc=2).items():
        category, field = key.split(".")
        nested.setdefault(category, {})[field] = value
    prefab = {"name": "tiny-e2e", "description": "a few seconds on 2 CPU processes", "extends": "cpu-tiny", **nested}
    (config / "prefabs" / "tiny-e2e.yaml").write_text(yaml.safe_dump(prefab, sort_keys=False))
    (config / "state.json").write_text(json.dumps({"screen": "config", "prefab": "tiny-e2e", "overrides": {}}))
    return {"NANOCHAT_CLI_CONFIG_DIR": str(config), "NANOCHAT_BASE_DIR": str(tmp / "base"), "HOME": str(tmp / "home"),
            "NANOCHAT_CLI_KEYRING": "file", "TERM": "xterm-256color", "PATH": os.environ.get("PATH", ""),
            "PYTHONPATH": str(Path(__file__).resolve().parents[2])}


def stop_leftovers(base: Path) -> None:
    """If an assert failed mid-run, stop the job the app started (it runs in its own session)."""
    from nanochat_cli.services.runs import RunOrchestrator

    orch = RunOrchestrator(base)
    for info in orch.list_runs():
        if info.status in ("running", "hung"):
            orch.stop(info.name, graceful_timeout=5, signal_timeout=5)


def step_seen(text: str) -> int | None:
    steps = [int(m) for m in STEP_RE.findall(text)]
    return max(steps) if steps and max(steps) >= 2 else None


def test_a_person_launches_watches_stops_and_quits(tmp_path, assets):
    env = setup_dirs(tmp_path, assets, "e2e")
    term = Terminal(tmp_path, env, [str(CLI)])
    try:
        term.wait_for("the Config tab", lambda s: "tiny-e2e" in s and "Categories" in s)
        term.keys("2")
        term.wait_for("the empty Train tab", lambda s: "No run yet" in s)
        term.keys("1")
        term.wait_for("the Config tab again", lambda s: "Categories" in s)
        term.keys("t")
        term.wait_for("the Train tab with the run", lambda s: "e2e" in s and "Progress" in s)
        first = term.wait_for("step numbers", step_seen)
        later = term.wait_for("more steps", lambda s: (n := step_seen(s)) and n > first and n)
        assert later > first
        screen = term.screen()
        assert "Loss · loss" in screen and "e2e  running" in screen
        term.keys("x")
        term.wait_for("the stop question", lambda s: "Stop run e2e" in s)
        term.keys("y")
        term.wait_for("the stopped run", lambda s: "e2e  stopped" in s)
        term.keys("C-q")
        term.wait_for("the app to exit", lambda s: "Progress" not in s and "nanochat" not in s)
    finally:
        term.close()
        stop_leftovers(tmp_path / "base")
    events = (tmp_path / "base" / "runs" / "e2e" / "telemetry.jsonl").read_text()
    assert '"event":"run_end"' in events and '"status":"stopped"' in events


def test_train_command_on_a_terminal_opens_the_train_tab(tmp_path, assets):
    env = setup_dirs(tmp_path, assets, "cli")
    term = Terminal(tmp_path, env, [str(CLI), "train", "--prefab", "tiny-e2e", "--set", "run.name=from-cli"])
    try:
        term.wait_for("steps on the Train tab", lambda s: "from-cli" in s and step_seen(s))
        term.wait_for("the running header", lambda s: "from-cli  running" in s)
        term.keys("x")
        term.wait_for("the stop question", lambda s: "Stop run from-cli" in s)
        term.keys("y")
        term.wait_for("the stopped run", lambda s: "from-cli  stopped" in s)
        term.keys("C-q")
        term.wait_for("the app to exit", lambda s: "Progress" not in s)
    finally:
        term.close()
        stop_leftovers(tmp_path / "base")
