"""A centred "nothing here yet" panel: what is missing, where we looked, and what to do about it."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Center, Vertical
from textual.widgets import Static


class EmptyState(Vertical):
    def __init__(self, title: str, body: str = "", id: str | None = None) -> None:
        super().__init__(id=id, classes="empty-state")
        self.title_text, self.body_text = title, body

    def compose(self) -> ComposeResult:
        with Center():
            yield Static(self.title_text, classes="empty-title", markup=False)
        with Center():
            yield Static(self.body_text, classes="empty-body", markup=False)

    def set_text(self, title: str, body: str = "") -> None:
        self.query_one(".empty-title", Static).update(title)
        self.query_one(".empty-body", Static).update(body)
