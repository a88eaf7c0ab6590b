"""One config field on the Config screen: name, an editor that fits its type, and a help-or-error line.

Input for numbers and text, Select for choices, Switch for booleans; secret and read-only fields only say
whether they are set. Typing is parsed on every change with the schema's `parse_value`; a parse error is
shown inline and nothing is stored, a good value is posted as `FieldRow.Edited` for the app to store.
"""

from __future__ import annotations

from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Input, Label, Select, Static, Switch

from nanochat_cli.services.config.schema import FieldSpec, parse_value


def _num(x: float) -> str:
    return f"{int(x):,}" if float(x).is_integer() else f"{x:g}"


def _bounds(spec: FieldSpec) -> str:
    """The allowed range, compact: '1–128', '≥0', '>0 ≤10'."""
    lo, hi = spec.minimum, spec.maximum
    if lo is not None and hi is not None and not (spec.min_exclusive or spec.max_exclusive):
        return f"{_num(lo)}–{_num(hi)}"
    parts = []
    if lo is not None:
        parts.append((">" if spec.min_exclusive else "≥") + _num(lo))
    if hi is not None:
        parts.append(("<" if spec.max_exclusive else "≤") + _num(hi))
    return " ".join(parts)


def format_value(value: Any) -> str:
    return "" if value is None else str(value)


def editor_id(key: str) -> str:
    return "f-" + key.replace(".", "--")


class FieldRow(Vertical):
    class Edited(Message):
        def __init__(self, key: str, value: Any) -> None:
            super().__init__()
            self.key, self.value = key, value

    class ParseState(Message):
        """The text in the editor stopped (error = message) or started (error = None) being a valid value."""

        def __init__(self, key: str, error: str | None) -> None:
            super().__init__()
            self.key, self.error = key, error

    def __init__(self, spec: FieldSpec, value: Any, overridden: bool = False) -> None:
        super().__init__(classes="field-row")
        self.spec = spec
        self.key = spec.key
        self.value = value
        self.overridden = overridden
        self.parse_error: str | None = None
        self.issue: str | None = None

    @property
    def read_only(self) -> bool:
        return self.spec.secret or self.spec.readonly  # derived flags (auth.*): shown, set with Ctrl+T

    def compose(self) -> ComposeResult:
        with Horizontal(classes="field-line"):
            yield Label(self._label_text(), classes="field-label", markup=False)
            yield self._make_editor()
            if self.spec.type_name == "bool" and not self.read_only:
                yield Label(self._on_off(), classes="switch-state")
        yield Static(self._help_text(), classes="field-help", markup=False)

    def _make_editor(self) -> Widget:
        s, eid = self.spec, editor_id(self.key)
        if self.read_only:
            return Static(self._read_only_text(), id=eid, classes="field-readonly", markup=False)
        if s.type_name == "bool":
            return Switch(bool(self.value), id=eid, classes="field-editor")
        if s.type_name == "choice":
            options = [(format_value(c) or "(none)", c) for c in (s.choices or [])]
            return Select(options, value=self.value, allow_blank=False, compact=True, id=eid,
                          classes="field-editor")
        return Input(format_value(self.value), placeholder="none" if s.nullable else "", compact=True,
                     id=eid, classes="field-editor", select_on_focus=False)

    def _on_off(self) -> str:
        return "on" if self.value else "off"

    def _label_text(self) -> str:
        return ("● " if self.overridden else "  ") + self.spec.name

    def _read_only_text(self) -> str:
        if self.spec.type_name == "bool":
            return ("set" if self.value else "not set") + "  (Ctrl+T to change)"
        return "set" if self.value else "not set"

    def _help_text(self) -> str:
        error = self.parse_error or self.issue
        if error:
            return "✗ " + error
        bounds = _bounds(self.spec)
        hot = " · hot" if self.spec.hot else ""
        return f"{self.spec.help}{' [' + bounds + ']' if bounds else ''}{hot}"

    # ---- editor events -------------------------------------------------------------------------
    # An editor posts Changed when it mounts; a `sync` may have set another value before that message is
    # handled. Such a stale message is not an edit (it would store the old value as an override).
    @on(Input.Changed, ".field-editor")
    def _input_changed(self, event: Input.Changed) -> None:
        event.stop()
        if event.value != event.input.value:
            return
        try:
            value = parse_value(self.spec, event.value)
        except ValueError as e:
            self._set_parse_error(str(e))
            return
        self._set_parse_error(None)
        if value != self.value:
            self.post_message(self.Edited(self.key, value))

    @on(Switch.Changed, ".field-editor")
    def _switch_changed(self, event: Switch.Changed) -> None:
        event.stop()
        if event.value == event.switch.value != self.value:
            self.post_message(self.Edited(self.key, event.value))

    @on(Select.Changed, ".field-editor")
    def _select_changed(self, event: Select.Changed) -> None:
        event.stop()
        if event.value is not Select.NULL and event.value == event.select.value != self.value:
            self.post_message(self.Edited(self.key, event.value))

    # ---- redraw from the session ----------------------------------------------------------------
    def sync(self, value: Any, overridden: bool, issue: str | None, force: bool = False) -> None:
        """Show the session's value; leave an Input alone while its text already means that value
        (so typing '1.' or a half-typed number is not overwritten). `force` rewrites the text anyway."""
        changed_value = force or value != self.value
        self.value, self.overridden, self.issue = value, overridden, issue
        editors = self.query(f"#{editor_id(self.key)}")
        if not editors:
            return  # not composed yet: compose() uses the values just stored
        editor = editors.first()
        if isinstance(editor, Input):
            if changed_value and not self._text_means(editor.value, value):
                with editor.prevent(Input.Changed):
                    editor.value = format_value(value)
                self._set_parse_error(None)
        elif isinstance(editor, Switch):
            if editor.value != bool(value):
                with editor.prevent(Switch.Changed):
                    editor.value = bool(value)
        elif isinstance(editor, Select):
            if editor.value != value:
                with editor.prevent(Select.Changed):
                    editor.value = value
        else:
            editor.update(self._read_only_text())
        self._show()

    def _set_parse_error(self, error: str | None) -> None:
        if error != self.parse_error:
            self.parse_error = error
            self.post_message(self.ParseState(self.key, error))
        self._show()

    def _text_means(self, text: str, value: Any) -> bool:
        try:
            return parse_value(self.spec, text) == value
        except ValueError:
            return False

    def _show(self) -> None:
        self.query_one(".field-label", Label).update(self._label_text())
        for state in self.query(".switch-state").results(Label):
            state.update(self._on_off())
        self.query_one(".field-help", Static).update(self._help_text())
        self.set_class(bool(self.parse_error or self.issue), "-invalid")
        self.set_class(self.overridden, "-overridden")
