"""The checkpoint listing: one row per step, with its shape, val bpb and compatibility with the active config.

Rows are keyed by `CheckpointEntry.key`, so the cursor stays on the same checkpoint across rescans.
"""

from __future__ import annotations

import time

from rich.text import Text
from textual.widgets import DataTable

from nanochat_cli.formatting import count, file_size, param_count, setting
from nanochat_cli.services.checkpoints.compat import Compat
from nanochat_cli.services.checkpoints.entries import CheckpointEntry
from nanochat_cli.services.registry import REGISTRY

COLUMNS = ("checkpoint", "stage", "step", "status", "val bpb (tokens)", "params", "depth", "vocab", "seq", "window",
           "tokenizer", "date", "size")  # each checkpoint field a plugin registered goes before "date"
FILTERS = ("all", "loadable", "compatible")
# status -> theme variable for its colour
STATUS_COLOUR = {"compatible": "success", "warnings": "warning", "incompatible": "error", "incomplete": "error",
                 "corrupt": "error"}


def status_of(entry: CheckpointEntry, compat: Compat) -> str:
    """What the status column says: the file problem when not complete, else the compatibility level."""
    return compat.level if entry.complete else entry.status


def keep(entry: CheckpointEntry, compat: Compat, which: str) -> bool:
    """Filter: all rows; loadable = complete (can be evaluated and chatted with); compatible = can seed a run of
    the active config (compatible, or with warnings)."""
    if which == "loadable":
        return entry.complete
    if which == "compatible":
        return entry.complete and compat.loadable
    return True


def val_bpb_cell(entry: CheckpointEntry) -> str:
    """'1.8870 (16.4K)': the run's last val bpb and the tokens it was measured over (an evaluation over another
    count gives another figure)."""
    if entry.val_bpb is None:
        return "-"
    return f"{entry.val_bpb:.4f}" + (f" ({count(entry.val_tokens)})" if entry.val_tokens else "")


def cells(entry: CheckpointEntry, compat: Compat, colours: dict[str, str]) -> list[str | Text]:
    def num(v: object) -> str:
        return "-" if v is None else str(v)

    status = status_of(entry, compat)
    return [entry.label, entry.phase, str(entry.step), Text(status, style=colours.get(STATUS_COLOUR[status], "")),
            val_bpb_cell(entry), param_count(entry.params), num(entry.depth),
            num(entry.vocab_size), num(entry.sequence_len), entry.window_pattern or "-", entry.tokenizer_hash or "-",
            *(setting(entry.setting(f.key)) for f in REGISTRY.checkpoint_fields()),
            time.strftime("%Y-%m-%d %H:%M", time.localtime(entry.date)),
            file_size(entry.size_bytes)]


class CheckpointTable(DataTable):
    def __init__(self, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        fields = [f.header for f in REGISTRY.checkpoint_fields()]
        for name in (*COLUMNS[:-2], *fields, *COLUMNS[-2:]):
            self.add_column(name, key=name)

    def show(self, rows: list[tuple[CheckpointEntry, Compat]]) -> None:
        """Replace the rows, keeping the cursor on the same checkpoint when it is still listed."""
        selected = self.selected_key()
        colours = self.app.theme_variables
        self.clear()
        for entry, compat in rows:
            self.add_row(*cells(entry, compat, colours), key=entry.key)
        keys = [e.key for e, _ in rows]
        if selected in keys:
            self.move_cursor(row=keys.index(selected), animate=False)

    def selected_key(self) -> str | None:
        if not self.row_count:
            return None
        return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
