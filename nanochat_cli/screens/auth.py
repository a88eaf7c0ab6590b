"""Token modal: enter a W&B API key and/or a Hugging Face token (masked inputs).

Only whether a token is set is ever shown, never its value. Empty inputs leave a token unchanged;
the app stores what was entered in the SecretStore and reports the validation result as a toast.
"""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

TOKENS = {"wandb_api_key": "W&B API key", "hf_token": "Hugging Face token"}


class AuthScreen(ModalScreen[dict[str, str] | None]):
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, is_set: dict[str, bool], backend: str) -> None:
        super().__init__(classes="modal")
        self.is_set, self.backend = is_set, backend

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="auth"):
            yield Static("Tokens", classes="dialog-title")
            for name, label in TOKENS.items():
                state = "set" if self.is_set.get(name) else "not set"
                yield Label(f"{label} ({state})", classes="field-label")
                yield Input(password=True, placeholder="paste to set; empty = keep", id=f"tok-{name}",
                            compact=True)
            yield Static(f"stored in: {self.backend}", classes="dialog-text", markup=False)
            with Horizontal(classes="dialog-buttons"):
                yield Button("Save", variant="primary", id="save", compact=True)
                yield Button("Cancel", id="cancel", compact=True)

    @on(Input.Submitted)
    @on(Button.Pressed, "#save")
    def _save(self) -> None:
        entered = {name: self.query_one(f"#tok-{name}", Input).value.strip() for name in TOKENS}
        self.dismiss({k: v for k, v in entered.items() if v})

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
