"""Chat tab. Loading a checkpoint to chat with is not built yet; the screen says so plainly."""

from __future__ import annotations

from textual.app import ComposeResult

from nanochat_cli.screens.base import AppScreen
from nanochat_cli.screens.checkpoints import scan_checkpoints
from nanochat_cli.widgets.shell.empty_state import EmptyState


class ChatScreen(AppScreen):
    SCREEN_NAME = "chat"

    def compose_body(self) -> ComposeResult:
        yield EmptyState("", id="body")

    def on_screen_resume(self) -> None:
        base = self.napp.base_dir
        n = len(scan_checkpoints(base))
        found = (f"{n} checkpoint dir{'s' if n != 1 else ''} found under {self.napp.show_path(base)}"
                 if n else f"No checkpoints found under {self.napp.show_path(base)}")
        self.query_one(EmptyState).set_text(
            "No model loaded",
            f"{found}.\nChatting with a checkpoint from this screen is not built yet.")
