"""A yes/no modal for anything destructive (overwrite a prefab, drop overrides): y = yes, n/Esc = no.

Cancel has focus first, so a stray Enter never destroys anything. Keys pressed before the question was on
screen are dropped: on a busy machine the dialog can appear seconds after the key that asked for it, and the
keys typed meanwhile were meant for the screen underneath, not as an answer. The app drops them: a key
typed ahead is routed to the screen below but its binding is looked up when it bubbles back to the app, by
which time the dialog is on top, so only the app sees every key at the moment it would act.
"""

from __future__ import annotations

from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static


class ConfirmScreen(ModalScreen[bool]):
    BINDINGS = [Binding("y", "answer(True)", "Yes"), Binding("n,escape", "answer(False)", "No")]

    def __init__(self, question: str, yes_label: str = "Yes") -> None:
        super().__init__(classes="modal")
        self.question, self.yes_label = question, yes_label
        self.shown_at: float | None = None  # when it was first drawn (event clock); earlier keys are dropped

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(self.question, classes="dialog-text", markup=False)
            yield Static(f"y {self.yes_label.lower()} · n, Esc or Enter cancel", classes="dialog-keys", markup=False)
            with Horizontal(classes="dialog-buttons"):
                yield Button(f"{self.yes_label} (y)", variant="warning", id="yes", compact=True)
                yield Button("Cancel (n)", id="no", compact=True)

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()  # the safe choice is the default

    def on_show(self, event: events.Show) -> None:
        # stamped when the dialog is laid out for the frame that draws it (handled a little later)
        if self.shown_at is None:
            self.shown_at = event.time

    def typed_before_shown(self, event: events.Key) -> bool | None:
        """True for a key pressed before the question was drawn (the app drops it: NanochatApp.on_event), False
        for one pressed since, None while the dialog has not heard that it was drawn (the app asks again)."""
        return None if self.shown_at is None else event.time < self.shown_at

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)
