"""Train tab. This version does not launch runs from the TUI yet, so it says so, gives the shell command
for the loaded prefab, and lists the run dirs that training left under the base dir."""

from __future__ import annotations

import shlex
from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding

from nanochat_cli.screens.base import AppScreen
from nanochat_cli.widgets.shell.empty_state import EmptyState


def list_runs(base: Path) -> list[str]:
    """Names of run dirs under <base>/runs that hold a telemetry stream, sorted."""
    runs = base / "runs"
    if not runs.is_dir():
        return []
    return sorted(p.name for p in runs.iterdir() if (p / "telemetry.jsonl").is_file())


class TrainScreen(AppScreen):
    SCREEN_NAME = "train"
    BINDINGS = [Binding("r", "rescan", "Rescan")]

    def compose_body(self) -> ComposeResult:
        yield EmptyState("", id="body")

    def on_screen_resume(self) -> None:
        self.action_rescan()

    def action_rescan(self) -> None:
        runs_dir = self.napp.show_path(self.napp.base_dir / "runs")
        found = list_runs(self.napp.base_dir)
        prefab = shlex.quote(self.napp.session.prefab)
        body = ("Launching and watching runs from this screen is not built yet. From a shell:\n"
                f"nanochat-cli train --prefab {prefab} --headless\n")
        if found:
            body += f"Run dirs with telemetry under {runs_dir}: {', '.join(found)}"
        else:
            body += f"No run dirs with telemetry under {runs_dir}"
        self.query_one(EmptyState).set_text("No run yet", body)
