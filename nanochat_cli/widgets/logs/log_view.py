"""A live view of the app's structured log: the in-memory tail first, then each new record as it lands."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.message import Message
from textual.widgets import RichLog

from nanochat_cli.logging_setup import TailHandler, format_line
from nanochat_cli.services.text import printable

# level -> theme variable, so log colours follow the app palette
LEVEL_COLOUR = {"DEBUG": "foreground-muted", "WARNING": "warning", "ERROR": "error", "CRITICAL": "error"}


class LogView(RichLog):
    class Appended(Message):
        def __init__(self, item: dict[str, Any]) -> None:
            super().__init__()
            self.item = item

    def __init__(self, tail: TailHandler, id: str | None = None) -> None:
        super().__init__(id=id, wrap=True, highlight=False, markup=False, max_lines=5000)
        self.tail = tail

    def on_mount(self) -> None:
        for item in list(self.tail.records):
            self._write(item)
        self.tail.listeners.append(self._on_record)

    def on_unmount(self) -> None:
        if self._on_record in self.tail.listeners:
            self.tail.listeners.remove(self._on_record)

    def _on_record(self, item: dict[str, Any]) -> None:
        self.post_message(self.Appended(item))  # thread-safe: records may come from worker threads

    def on_log_view_appended(self, message: Appended) -> None:
        self._write(message.item)

    def _write(self, item: dict[str, Any]) -> None:
        colour = LEVEL_COLOUR.get(item["level"])
        style = self.app.theme_variables.get(colour, "") if colour else ""
        self.write(Text(printable(format_line(item)), style=style))  # records quote run text: show, don't obey
