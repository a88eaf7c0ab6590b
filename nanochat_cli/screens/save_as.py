"""Save-as modal: a name for the current prefab + overrides. The caller saves and asks before overwriting."""

from __future__ import annotations

from collections.abc import Callable

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static


class SaveAsScreen(ModalScreen[str | None]):
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, source: str, n_overrides: int, check_name: Callable[[str], str | None]) -> None:
        super().__init__(classes="modal")
        self.source, self.n_overrides, self.check_name = source, n_overrides, check_name

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="save-as"):
            yield Static("Save prefab as", classes="dialog-title")
            yield Static(f"from {self.source} with {self.n_overrides} override(s)", classes="dialog-text",
                         markup=False)
            yield Input(placeholder="new prefab name", id="save-name", compact=True)
            yield Static("", id="save-error", classes="field-error", markup=False)
            with Horizontal(classes="dialog-buttons"):
                yield Button("Save", variant="primary", id="save", compact=True)
                yield Button("Cancel", id="cancel", compact=True)

    @on(Input.Changed, "#save-name")
    def _changed(self, event: Input.Changed) -> None:
        problem = self.check_name(event.value.strip()) if event.value.strip() else None
        self.query_one("#save-error", Static).update(problem or "")

    @on(Input.Submitted, "#save-name")
    @on(Button.Pressed, "#save")
    def _save(self) -> None:
        name = self.query_one("#save-name", Input).value.strip()
        problem = self.check_name(name) if name else "enter a name"
        if problem:
            self.query_one("#save-error", Static).update(problem)
            return
        self.dismiss(name)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
