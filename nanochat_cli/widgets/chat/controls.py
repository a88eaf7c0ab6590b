"""Sampling controls of the Chat screen: mode, temperature, top-k, max tokens and seed, validated as typed.

The mode selector lists the two conversational modes, then every registered chat mode (services/chat_modes.py).

A bad value marks its box and names the problem on the line below; `values()` refuses to hand it out, so a
reply is only ever generated with numbers the session accepts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Input, Label, Select, Static

from nanochat_cli.errors import USER_ERRORS, AppError

MODE_LABELS = {"chat": "chat (template)", "continue": "continuation (raw)"}


def _number(name: str, text: str, cast: Callable[[str], Any], what: str, low: float, hint: str) -> Any:
    try:
        value = cast(text.strip())
    except ValueError:
        raise AppError(f"{name}: {text.strip()!r} is not {what}: {hint}") from None
    if value < low:
        raise AppError(f"{name}: {value} is below {low:g}: {hint}")
    return value


def parse_temperature(text: str) -> float:
    return _number("temperature", text, float, "a number", 0, "use 0 (greedy) or more, e.g. 0.8")


def parse_top_k(text: str) -> int | None:
    k = _number("top-k", text or "0", int, "a whole number", 0, "use 0 (no limit) or more, e.g. 50")
    return k or None


def parse_max_tokens(text: str) -> int:
    return _number("max tokens", text, int, "a whole number", 1, "use 1 or more, e.g. 256")


def parse_seed(text: str) -> int:
    return _number("seed", text, int, "a whole number", 0, "use 0 or more, e.g. 42")


# input id -> (label, session attribute, parser, default text)
FIELDS: dict[str, tuple[str, str, Callable[[str], Any], str]] = {
    "chat-temperature": ("temp", "temperature", parse_temperature, "0.8"),
    "chat-top-k": ("top-k", "top_k", parse_top_k, "50"),
    "chat-max-tokens": ("max", "max_tokens", parse_max_tokens, "256"),
    "chat-seed": ("seed", "seed", parse_seed, "42"),
}


def mode_labels() -> dict[str, str]:
    """Every mode the selector offers, name -> label: the conversational ones first, then registered ones."""
    from nanochat_cli.services.registry import REGISTRY

    return {**MODE_LABELS, **{m.name: m.label for m in REGISTRY.chat_modes()}}


class ChatControls(Vertical):
    def compose(self) -> ComposeResult:
        with Horizontal(id="chat-controls-row"):
            yield Select([(label, mode) for mode, label in mode_labels().items()], value="chat", allow_blank=False,
                         compact=True, id="chat-mode")
            for input_id, (label, _attr, _parse, default) in FIELDS.items():
                yield Label(label, classes="control-label")
                yield Input(default, id=input_id, compact=True, classes="control-input")
        yield Static("", id="chat-controls-error", classes="field-error", markup=False)

    @property
    def mode(self) -> str:
        return str(self.query_one("#chat-mode", Select).value)

    @mode.setter
    def mode(self, mode: str) -> None:
        self.query_one("#chat-mode", Select).value = mode

    def set_mode(self, mode: str, quiet: bool = False) -> None:
        """Show `mode`; quiet: without a Select.Changed (the screen is not asked to switch the loaded model)."""
        select = self.query_one("#chat-mode", Select)
        if quiet:
            with select.prevent(Select.Changed):
                select.value = mode
        else:
            select.value = mode

    def values(self) -> dict[str, Any]:
        """Session settings from the boxes: {temperature, top_k, max_tokens, seed}; AppError on a bad one."""
        out = {}
        for input_id, (_label, attr, parse, _default) in FIELDS.items():
            out[attr] = parse(self.query_one(f"#{input_id}", Input).value)
        return out

    @on(Input.Changed, ".control-input")
    def _check(self) -> None:
        problems = []
        for input_id, (_label, _attr, parse, _default) in FIELDS.items():
            box = self.query_one(f"#{input_id}", Input)
            try:
                parse(box.value)
                box.remove_class("-invalid")
            except USER_ERRORS as e:
                box.add_class("-invalid")
                problems.append(str(e))
        error = self.query_one("#chat-controls-error", Static)
        error.update(problems[0] if problems else "")
        error.display = bool(problems)
