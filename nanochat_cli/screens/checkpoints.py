"""Checkpoints tab: the checkpoint dirs under the base dir, in nanochat's layout, read without torch.

<base>/{base,chatsft,chatrl}_checkpoints/<tag>/meta_<step:06d>.json marks a complete step (the
engine writes it last); val_bpb comes from the newest meta file.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Static

from nanochat_cli.screens.base import AppScreen
from nanochat_cli.widgets.shell.empty_state import EmptyState

PHASE_DIRS = {"base": "base_checkpoints", "sft": "chatsft_checkpoints", "rl": "chatrl_checkpoints"}
_META_RE = re.compile(r"^meta_(\d{6})\.json$")


@dataclass(frozen=True)
class CheckpointDir:
    phase: str
    tag: str
    path: Path
    steps: list[int]
    val_bpb: float | None


def scan_checkpoints(base: Path) -> list[CheckpointDir]:
    """Every <phase>/<tag> dir with at least one complete step, newest step's val_bpb included."""
    found: list[CheckpointDir] = []
    for phase, dirname in PHASE_DIRS.items():
        root = base / dirname
        if not root.is_dir():
            continue
        for tag_dir in sorted(p for p in root.iterdir() if p.is_dir()):
            steps = sorted(int(m.group(1)) for f in tag_dir.iterdir() if (m := _META_RE.match(f.name)))
            if not steps:
                continue
            try:
                meta = json.loads((tag_dir / f"meta_{steps[-1]:06d}.json").read_text())
                bpb = meta.get("val_bpb")
            except (OSError, ValueError):
                bpb = None  # shown as "?" — an unreadable meta file is visible, not hidden
            found.append(CheckpointDir(phase, tag_dir.name, tag_dir, steps,
                                       float(bpb) if isinstance(bpb, int | float) else None))
    return found


class CheckpointsScreen(AppScreen):
    SCREEN_NAME = "checkpoints"
    BINDINGS = [Binding("r", "rescan", "Rescan")]

    def compose_body(self) -> ComposeResult:
        with Vertical(id="body"):
            yield Static("", id="ckpt-where", markup=False)
            yield DataTable(id="ckpt-table", cursor_type="row", zebra_stripes=True)
            yield EmptyState("", id="ckpt-empty")

    def on_mount(self) -> None:
        self.query_one(DataTable).add_columns("phase", "tag", "steps", "latest", "val bpb")

    def on_screen_resume(self) -> None:
        self.action_rescan()

    def action_rescan(self) -> None:
        base = self.napp.base_dir
        where = self.napp.show_path(base)
        found = scan_checkpoints(base)
        table = self.query_one(DataTable)
        table.clear()
        for c in found:
            bpb = f"{c.val_bpb:.4f}" if c.val_bpb is not None else "?"
            table.add_row(c.phase, c.tag, str(len(c.steps)), str(c.steps[-1]), bpb)
        table.display = bool(found)
        self.query_one("#ckpt-where", Static).update(f"Checkpoints under {where}")
        self.query_one("#ckpt-where").display = bool(found)
        empty = self.query_one(EmptyState)
        empty.display = not found
        empty.set_text(f"No checkpoints found under {where}",
                       "Training writes them to <base>/base_checkpoints/<tag>/ (r to rescan).")
