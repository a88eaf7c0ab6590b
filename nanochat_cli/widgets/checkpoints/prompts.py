"""Eval prompts editor (a modal): the prompts every checkpoint evaluation completes, edited and persisted.

One row per prompt (name, mode, text); a line break in a prompt is typed as \\n. Save validates through
`save_prompt_set` (the error shows inline and nothing is written); Defaults refills the rows with the shipped list.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Select, Static

from nanochat_cli.errors import USER_ERRORS, AppError
from nanochat_cli.services.checkpoints.prompts import MODES, SHIPPED, EvalPrompt, load_prompt_set, save_prompt_set


def escape(prompt: str) -> str:
    return prompt.replace("\\", "\\\\").replace("\n", "\\n")


def unescape(text: str) -> str:
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text) and text[i + 1] in "n\\":
            out.append("\n" if text[i + 1] == "n" else "\\")
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


class PromptRow(Horizontal):
    def __init__(self, prompt: EvalPrompt) -> None:
        super().__init__(classes="prompt-row")
        self.prompt = prompt

    def compose(self) -> ComposeResult:
        yield Input(self.prompt.name, placeholder="name", classes="prompt-name", compact=True)
        yield Select([(m, m) for m in MODES], value=self.prompt.mode, allow_blank=False, compact=True,
                     classes="prompt-mode")
        yield Input(escape(self.prompt.prompt), placeholder="prompt (\\n = line break)", classes="prompt-text",
                    compact=True)
        yield Button("✕", classes="prompt-remove", compact=True, tooltip="remove this prompt")

    def value(self) -> EvalPrompt:
        return EvalPrompt(self.query_one(".prompt-name", Input).value.strip(),
                            unescape(self.query_one(".prompt-text", Input).value),
                            str(self.query_one(".prompt-mode", Select).value))


class PromptSetScreen(ModalScreen[str | None]):
    """Dismissed with the saved file's path, or None when cancelled."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, where: str) -> None:
        super().__init__(classes="modal")
        self.where = where

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="prompt-set"):
            yield Static("Eval prompts", classes="dialog-title")
            yield Static(f"Every evaluation completes these greedily. continue = the model continues the text; "
                         f"chat = it answers it. Saved to {self.where}.", classes="dialog-text", markup=False)
            yield VerticalScroll(id="prompt-rows")
            yield Static("", id="prompt-set-error", classes="field-error", markup=False)
            with Horizontal(classes="dialog-buttons"):
                yield Button("Add", id="add", compact=True)
                yield Button("Defaults", id="defaults", compact=True, tooltip="the shipped prompts (saved on Save)")
                yield Button("Save", variant="primary", id="save", compact=True)
                yield Button("Cancel", id="cancel", compact=True)

    def on_mount(self) -> None:
        try:
            prompts = load_prompt_set()
        except USER_ERRORS as e:  # a hand-broken file: say so, start from the defaults
            self.query_one("#prompt-set-error", Static).update(f"{e} (showing the defaults)")
            prompts = load_prompt_set(SHIPPED)
        self._fill(prompts)

    def _fill(self, prompts: list[EvalPrompt]) -> None:
        rows = self.query_one("#prompt-rows")
        rows.remove_children()
        rows.mount_all(PromptRow(p) for p in prompts)

    def values(self) -> list[EvalPrompt]:
        return [row.value() for row in self.query(PromptRow)]

    @on(Button.Pressed, "#add")
    def _add(self) -> None:
        names = {p.name for p in self.values()}
        n = len(names) + 1
        while f"prompt-{n}" in names:
            n += 1
        row = PromptRow(EvalPrompt(f"prompt-{n}", "", "continue"))
        self.query_one("#prompt-rows").mount(row)
        self.call_after_refresh(lambda: row.query_one(".prompt-text", Input).focus())

    @on(Button.Pressed, ".prompt-remove")
    def _remove(self, event: Button.Pressed) -> None:
        event.button.parent.remove()

    @on(Button.Pressed, "#defaults")
    def _defaults(self) -> None:
        self._fill(load_prompt_set(SHIPPED))

    @on(Button.Pressed, "#save")
    def _save(self) -> None:
        prompts = self.values()
        empty = [p.name or "(unnamed)" for p in prompts if not p.name or not p.prompt]
        try:
            if empty:
                raise AppError(f"eval prompts: {empty[0]} needs a name and a prompt: fill it in or remove it")
            path = save_prompt_set(prompts)
        except USER_ERRORS as e:
            self.query_one("#prompt-set-error", Static).update(str(e))
            return
        self.dismiss(str(path))

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)


def open_prompt_set_editor(app: Any) -> None:
    """Open the editor over the current screen; a save is logged and confirmed with a toast."""
    from nanochat_cli.logging_setup import log_event
    from nanochat_cli.services.checkpoints.prompts import user_prompts_path

    def saved(path: str | None) -> None:
        if path:
            log_event("eval prompts saved", path=path)
            app.notify(f"Eval prompts saved to {app.show_path(Path(path))}")

    app.push_screen(PromptSetScreen(app.show_path(user_prompts_path())), saved)
