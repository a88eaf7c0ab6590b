"""Modals of the Train screen: patch a running job, a failed run's details, the torchrun command, and the
small pickers and prompts the layout editor uses.

The patch form offers only the hot-patchable fields (engine.config.HOT_PATCHABLE), each parsed with its
config-schema spec as it is typed and the whole change checked with engine.config.validate_patch before
anything is sent; the engine still has the last word and answers with a control_ack.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, OptionList, Static, TextArea
from textual.widgets.option_list import Option

from engine.config import HOT_PATCHABLE, TrainConfig, validate_patch
from nanochat_cli.services.config.schema import FieldSpec, field_specs, parse_value, range_text
from nanochat_cli.widgets.config.field_row import format_value


def hot_specs() -> dict[str, FieldSpec]:
    """engine field name -> its config-schema spec, for every hot-patchable field."""
    return {s.engine_name: s for s in field_specs() if s.engine_name in HOT_PATCHABLE}


def remedy(error: str | None, exit_code: int | None, stderr: str) -> str:
    """What to try next for a failed run, from its error line, exit code and stderr."""
    text = f"{error or ''}\n{stderr}".lower()
    if exit_code in (-9, 137) or "out of memory" in text or "oom" in text.split():
        return ("Out of memory: lower training.device_batch_size (gradient accumulation keeps the total batch), "
                "model.max_seq_len or the model size, then launch again.")
    if "already has checkpoints" in text:
        return "The run name is taken by earlier checkpoints: set run.resume=true to continue it, or change run.name."
    if "data_dir" in text or "parquet" in text:
        return "Point data.data_dir at a folder of parquet shards (or set data.source=embedded), then launch again."
    if "tokenizer" in text:
        return "Check data.tokenizer_dir (a folder with tokenizer.pkl), or clear it to train one on the data."
    if exit_code == 2 and not error:
        return "The engine refused its arguments (see stderr below); fix the config on the Config tab."
    if exit_code is not None and exit_code < 0:
        return f"The job was killed by signal {-exit_code}; check the machine's logs (dmesg) and launch again."
    if error:
        return "The error names the field and the fix: change it on the Config tab (1) and press t to launch again."
    return "No error event was written: the process died abruptly. The stderr tail below shows its last words."


# ---- patch -------------------------------------------------------------------------------------

class PatchScreen(ModalScreen[dict[str, Any] | None]):
    """Edit hot fields of a running job; dismisses with only the changed ones, checked, or None."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, run: str, current: dict[str, Any], engine_config: dict[str, Any]) -> None:
        super().__init__(classes="modal")
        self.run, self.current, self.engine_config = run, current, engine_config
        self.specs = hot_specs()

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="patch"):
            yield Static(f"Patch run {self.run}", classes="dialog-title", markup=False)
            yield Static("Hot fields change at the next step boundary; the engine answers with a toast.",
                         classes="dialog-text", markup=False)
            for name, spec in sorted(self.specs.items(), key=lambda kv: kv[1].key):
                rng = range_text(spec)
                with Horizontal(classes="patch-row"):
                    yield Label(spec.key, classes="patch-label", markup=False)
                    yield Input(format_value(self.current.get(name)), id=f"hot-{name}", compact=True,
                                select_on_focus=False, tooltip=f"{spec.help}" + (f" ({rng})" if rng else ""))
            yield Static("", id="patch-error", classes="field-error", markup=False)
            with Horizontal(classes="dialog-buttons"):
                yield Button("Send", variant="primary", id="send", compact=True)
                yield Button("Cancel", id="cancel", compact=True)

    def changes(self) -> tuple[dict[str, Any], str | None]:
        """(changed fields with typed values, None) or ({}, the first problem)."""
        out: dict[str, Any] = {}
        for name, spec in self.specs.items():
            text = self.query_one(f"#hot-{name}", Input).value
            try:
                value = parse_value(spec, text)
            except ValueError as e:
                return {}, str(e)
            if value != self.current.get(name):
                out[name] = value
        if not out:
            return {}, "nothing changed: edit a value first"
        try:
            base = TrainConfig(**self.engine_config)
        except Exception:  # a config from an older engine: let the engine judge the patch itself
            return out, None
        _, reason = validate_patch(base, out)
        return ({}, reason) if reason else (out, None)

    @on(Input.Changed)
    def _typed(self) -> None:
        _, problem = self.changes()
        self.query_one("#patch-error", Static).update("" if problem and problem.startswith("nothing") else
                                                      problem or "")

    @on(Input.Submitted)
    @on(Button.Pressed, "#send")
    def _send(self) -> None:
        out, problem = self.changes()
        if problem:
            self.query_one("#patch-error", Static).update(problem)
            return
        self.dismiss(out)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)


# ---- a failed run ------------------------------------------------------------------------------

class CrashScreen(ModalScreen[None]):
    """Why a run failed: status, exit code, the engine's one-line error, a hint, stderr's tail, the command."""

    BINDINGS = [Binding("escape,enter", "close", "Close"), Binding("c", "copy", "Copy command")]

    def __init__(self, run: str, status: str, exit_code: int | None, error: str | None, stderr: str,
                 command: str) -> None:
        super().__init__(classes="modal")
        self.run, self.status, self.exit_code, self.error = run, status, exit_code, error
        self.stderr, self.command = stderr, command

    def compose(self) -> ComposeResult:
        code = "unknown (not started by this app)" if self.exit_code is None else str(self.exit_code)
        with Vertical(classes="dialog dialog-wide", id="crash"):
            yield Static(f"Run {self.run} {self.status}", classes="dialog-title dialog-title-error", markup=False)
            yield Static(Text.assemble(("exit code ", "dim"), code), id="crash-code")
            yield Static(self.error or "no error event: the process ended without saying why", id="crash-error",
                         classes="crash-error", markup=False)
            yield Static(Text.assemble(("hint ", "bold"), remedy(self.error, self.exit_code, self.stderr)),
                         id="crash-hint", classes="dialog-text")
            yield Label("stderr (last lines)", classes="field-label")
            with VerticalScroll(classes="crash-stderr"):
                yield Static(self.stderr or "(empty)", id="crash-stderr", markup=False)
            if self.command:
                yield Label("command", classes="field-label")
                yield Static(self.command, id="crash-command", classes="command-text", markup=False)
            with Horizontal(classes="dialog-buttons"):
                if self.command:
                    yield Button("Copy command", id="copy", compact=True)
                yield Button("Close", variant="primary", id="close", compact=True)

    def on_mount(self) -> None:
        self.query_one("#close", Button).focus()

    @on(Button.Pressed, "#copy")
    def action_copy(self) -> None:
        if self.command:
            self.app.copy_to_clipboard(self.command)
            self.notify("Command copied to the clipboard")

    @on(Button.Pressed, "#close")
    def action_close(self) -> None:
        self.dismiss(None)


# ---- the command -------------------------------------------------------------------------------

def node_commands(command: str, nnodes: int) -> list[str]:
    """The recorded command for each node of a multi-node run (they differ only in --node_rank)."""
    if nnodes <= 1 or "--node_rank=" not in command:
        return [command]
    return [re.sub(r"--node_rank=\d+", f"--node_rank={r}", command) for r in range(nnodes)]


class CommandScreen(ModalScreen[None]):
    """The exact torchrun command(s), selectable and copyable; one per node for multi-node runs."""

    BINDINGS = [Binding("escape", "close", "Close"), Binding("c", "copy", "Copy")]

    def __init__(self, title: str, commands: list[str], note: str = "") -> None:
        super().__init__(classes="modal")
        self.title_text, self.commands, self.note = title, commands, note

    def text(self) -> str:
        if len(self.commands) == 1:
            return self.commands[0]
        return "\n".join(f"# node {r}\n{c}" for r, c in enumerate(self.commands))

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog dialog-wide", id="command"):
            yield Static(self.title_text, classes="dialog-title", markup=False)
            if self.note:
                yield Static(self.note, classes="dialog-text", markup=False)
            yield TextArea(self.text(), read_only=True, soft_wrap=True, id="command-text", compact=True)
            with Horizontal(classes="dialog-buttons"):
                yield Button("Copy", variant="primary", id="copy", compact=True)
                yield Button("Close", id="close", compact=True)

    @on(Button.Pressed, "#copy")
    def action_copy(self) -> None:
        self.app.copy_to_clipboard(self.text())
        self.notify("Copied to the clipboard")

    @on(Button.Pressed, "#close")
    def action_close(self) -> None:
        self.dismiss(None)


# ---- layout editor helpers ---------------------------------------------------------------------

class PickScreen(ModalScreen[str | None]):
    """Pick one of `choices` (id, label); dismisses with the id or None."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, choices: list[tuple[str, str]], note: str = "") -> None:
        super().__init__(classes="modal")
        self.title_text, self.choices, self.note = title, choices, note

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="pick"):
            yield Static(self.title_text, classes="dialog-title", markup=False)
            if self.note:
                yield Static(self.note, classes="dialog-text", markup=False)
            yield OptionList(*(Option(label, id=cid) for cid, label in self.choices), id="pick-list")

    @on(OptionList.OptionSelected)
    def _picked(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def action_cancel(self) -> None:
        self.dismiss(None)


class AskScreen(ModalScreen[str | None]):
    """One line of text, checked as it is typed: `check(text)` returns why it is not acceptable, or None."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, note: str, value: str, check: Callable[[str], str | None]) -> None:
        super().__init__(classes="modal")
        self.title_text, self.note, self.value, self.check = title, note, value, check

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="ask"):
            yield Static(self.title_text, classes="dialog-title", markup=False)
            yield Static(self.note, classes="dialog-text", markup=False)
            yield Input(self.value, id="ask-input", compact=True)
            yield Static("", id="ask-error", classes="field-error", markup=False)
            with Horizontal(classes="dialog-buttons"):
                yield Button("OK", variant="primary", id="ok", compact=True)
                yield Button("Cancel", id="cancel", compact=True)

    @on(Input.Changed)
    def _typed(self, event: Input.Changed) -> None:
        self.query_one("#ask-error", Static).update(self.check(event.value.strip()) or "")

    @on(Input.Submitted)
    @on(Button.Pressed, "#ok")
    def _ok(self) -> None:
        text = self.query_one("#ask-input", Input).value.strip()
        problem = self.check(text)
        if problem:
            self.query_one("#ask-error", Static).update(problem)
            return
        self.dismiss(text)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
