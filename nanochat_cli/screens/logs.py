"""Logs tab: the app's own structured log (the JSON-lines file, shown as readable lines), with the
debug toggle."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import Static

from nanochat_cli.screens.base import AppScreen
from nanochat_cli.widgets.logs.log_view import LogView


class LogsScreen(AppScreen):
    SCREEN_NAME = "logs"
    BINDINGS = [Binding("d", "app.toggle_debug", "Debug log")]

    def compose_body(self) -> ComposeResult:
        with Vertical(id="body"):
            yield Static("", id="log-where", markup=False)
            yield LogView(self.napp.app_log.tail, id="log-view")

    def on_mount(self) -> None:
        self.watch(self.app, "status", lambda _: self._show_header(), init=True)

    def _show_header(self) -> None:
        log = self.napp.app_log
        level = "debug" if log.debug else "info"
        self.query_one("#log-where", Static).update(f"{self.napp.show_path(log.path)} · level {level}")
