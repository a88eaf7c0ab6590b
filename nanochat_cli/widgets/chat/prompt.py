"""The message box of the Chat screen, with shell-style history: Up recalls earlier prompts, Down goes back
towards the one being typed (kept as it was)."""

from __future__ import annotations

from textual.binding import Binding
from textual.widgets import Input

HISTORY_SIZE = 200  # prompts kept for recall in one session


class PromptInput(Input):
    BINDINGS = [
        Binding("up", "recall(-1)", "Earlier prompt", show=False),
        Binding("down", "recall(1)", "Later prompt", show=False),
    ]

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.history: list[str] = []
        self._at: int | None = None  # index into history while recalling; None while typing a new one
        self._draft = ""  # what was typed before the first Up

    def remember(self, prompt: str) -> None:
        """Add a sent prompt (a repeat of the last one is kept once) and leave recall mode."""
        if prompt.strip() and (not self.history or self.history[-1] != prompt):
            self.history.append(prompt)
            del self.history[:-HISTORY_SIZE]
        self._at = None

    def action_recall(self, step: int) -> None:
        if not self.history:
            return
        if self._at is None:
            if step > 0:
                return  # already at the newest: the draft
            self._draft, self._at = self.value, len(self.history)
        self._at = max(0, self._at + step)
        if self._at >= len(self.history):
            self._at, text = None, self._draft
        else:
            text = self.history[self._at]
        self.value = text
        self.cursor_position = len(text)
