"""The diff view: every field whose current value differs from the loaded prefab (category, field, prefab
value, current value)."""

from __future__ import annotations

from textual.widgets import DataTable

from nanochat_cli.services.config.diff import DiffRow
from nanochat_cli.widgets.config.field_row import format_value


class DiffTable(DataTable):
    def __init__(self, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        self.add_columns("category", "field", "prefab", "current")

    def show(self, rows: list[DiffRow]) -> None:
        self.clear()
        for r in rows:
            self.add_row(r.category, r.field, format_value(r.base) or "(none)", format_value(r.current) or "(none)",
                         key=r.key)
