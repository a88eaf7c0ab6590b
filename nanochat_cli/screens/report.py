"""A pipeline's report (report.md) in a modal: rendered markdown, scrollable; Esc or q closes it.

Opened when a pipeline the app ran ends, and with m from the Train tab (the attached run's pipeline) or the
Checkpoints tab (the selected checkpoint's pipeline)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Markdown, Static


class ReportScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q", "close", "Close")]

    def __init__(self, name: str, text: str, where: str) -> None:
        super().__init__(classes="modal")
        self.pipeline_name, self.text, self.where = name, text, where

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog report-dialog"):
            yield Static(f"Pipeline {self.pipeline_name}", classes="dialog-title", markup=False)
            with VerticalScroll(id="report-body"):
                yield Markdown(self.text, id="report-markdown")
            yield Static(f"{self.where} · ↑↓ scroll · Esc or q close", classes="dialog-keys", markup=False)

    def on_mount(self) -> None:
        self.query_one("#report-body").focus()

    def action_close(self) -> None:
        self.dismiss(None)
