"""Editing the Train screen's layout while a run trains: select a panel, add, remove or move it, change its refresh
rate, save the layout under a name, open another. Each edit makes a new validated Layout (services/panels.py); the
run and its data are untouched.

Plain Python: the editor holds the layout being shown, the dashboard view that is active and the selected panel
of each view, and talks to the user only through what it returns. An operation either returns a `Done` (what
changed: the screen rebuilds its dashboards from `layout` when `rebuild` is set), or an `Ask` (a question for the
user; its `then(answer)` applies the answer and returns the next step), or raises `EditRefused` (a warning that says
what to do first) or AppError (the layout rejected the change).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from nanochat_cli.errors import USER_ERRORS
from nanochat_cli.services.panels import MAX_HZ, Layout, LayoutStore
from nanochat_cli.services.registry import REGISTRY, Registry


class EditRefused(Exception):
    """An edit that can't be made now; the message says why and what to do first."""


@dataclass(frozen=True)
class Done:
    rebuild: bool = False  # the dashboards must be rebuilt from the editor's layout
    select: str | None = None  # the panel selected after it
    note: str | None = None  # one line to tell the user
    change: str | None = None  # what changed, for the app log


@dataclass(frozen=True)
class Ask:
    """A question: pick one of `choices` (id, label), or with no choices type a line, checked by `check`."""

    title: str
    note: str
    then: Callable[[str], Done]
    choices: tuple[tuple[str, str], ...] = ()
    value: str = ""
    check: Callable[[str], str | None] | None = None


def check_rate(text: str) -> str | None:
    """Why `text` is not a refresh rate (repaints per second), or None."""
    try:
        hz = float(text)
    except ValueError:
        return f"{text!r} is not a number: give repaints per second, e.g. 2"
    if math.isnan(hz) or not 0 < hz <= MAX_HZ:
        return f"{text} is out of range: use a rate above 0 and at most {MAX_HZ:g}"
    return None


STAGE_LAYOUTS = ("sft", "rl", "eval")  # shipped layouts named after the run stage they are shown for


class LayoutEditor:
    """The layout the Train screen shows and the edits made to it. `show_path` formats a saved file's path."""

    def __init__(self, store: LayoutStore, registry: Registry = REGISTRY,
                 show_path: Callable[[Path], str] = str) -> None:
        self.store, self.registry, self.show_path = store, registry, show_path
        self.layout: Layout | None = None
        self.edited = False  # changed since it was opened or saved
        self.view: str | None = None  # id of the layout screen shown (None: no dashboard view is active)
        self.selected: dict[str, str] = {}  # layout screen id -> its selected panel
        self._picked = False  # the user opened a layout: keep it whatever stage the next run is

    @property
    def label(self) -> str:
        """The layout's name for the header, marked when edited."""
        if self.layout is None:
            return ""
        return self.layout.name + (" (edited)" if self.edited else "")

    def choose(self, small: bool, stage: str = "base") -> str | None:
        """Open the shipped layout for the terminal ("compact" when `small`) unless one is open already; a run of
        a post-training or eval stage gets that stage's layout (sft, rl, eval) unless the user opened or edited
        one. Returns a problem to report when the preferred one can't be used; raises AppError when none can."""
        stage_layout = stage if stage in STAGE_LAYOUTS else None
        if self.layout is not None:
            if self.edited or self._picked:
                return None
            shown_for_stage = self.layout.name in STAGE_LAYOUTS
            if self.layout.name == stage_layout or (stage_layout is None and not shown_for_stage):
                return None
            self.view = None  # another layout's screens
        name = stage_layout or ("compact" if small else "default")
        try:
            self.layout = self.store.get(name)
            return None
        except USER_ERRORS as e:  # e.g. a user layout naming a panel whose plugin failed
            if name == "default":
                raise
            self.layout = self.store.get("default")
            return f"{e}; using the shipped default layout"

    # ---- selection -------------------------------------------------------------------------------
    def panels(self) -> list[str]:
        """The panels of the active view in reading order."""
        if self.layout is None or self.view not in self.layout.screen_ids():
            return []
        return [p.panel for p in self.layout.screen(self.view).panels]

    def selected_panel(self) -> str | None:
        """The selected panel of the active view (its first panel until one is picked)."""
        panels = self.panels()
        want = self.selected.get(self.view or "")
        return want if want in panels else (panels[0] if panels else None)

    def select(self, panel: str) -> None:
        if self.view is not None:
            self.selected[self.view] = panel

    def select_panel(self, delta: int) -> Done:
        panels, current = self.panels(), self.selected_panel()
        if current is not None:
            self.select(panels[(panels.index(current) + delta) % len(panels)])
        return Done()

    # ---- edits -----------------------------------------------------------------------------------
    def _target(self) -> tuple[Layout, str, str | None]:
        """(layout, id of its screen shown, selected panel) for an edit of the active view."""
        if self.layout is None or self.view is None or self.view not in self.layout.screen_ids():
            raise EditRefused("Open a dashboard tab first (v)")
        return self.layout, self.view, self.selected_panel()

    def _panel_target(self) -> tuple[Layout, str, str]:
        """The same for an edit of the selected panel."""
        layout, screen, panel = self._target()
        if panel is None:
            raise EditRefused("This tab has no panels: add one (a)")
        return layout, screen, panel

    def _apply(self, layout: Layout, select: str | None, what: str) -> Done:
        self.layout, self.edited = layout, True
        return Done(rebuild=True, select=select, change=what)

    def add_panel(self) -> Ask:
        layout, screen, chosen = self._target()
        ids = [p.panel for p in layout.screen(screen).panels]
        choices = tuple((s.id, f"{s.title} ({s.kind}): {s.help}") for s in self.registry.panels() if s.id not in ids)
        if not choices:
            raise EditRefused("Every registered panel is already on this tab")
        index = ids.index(chosen) + 1 if chosen in ids else None

        def add(panel: str) -> Done:
            return self._apply(layout.add_panel(screen, panel, index=index, registry=self.registry), panel,
                               f"add {panel}")

        return Ask("Add a panel", "placed after the selected panel", add, choices=choices)

    def remove_panel(self) -> Done:
        layout, screen, panel = self._panel_target()
        return self._apply(layout.remove_panel(screen, panel, registry=self.registry), None, f"remove {panel}")

    def move_panel(self, delta: int) -> Done:
        layout, screen, panel = self._panel_target()
        ids = [p.panel for p in layout.screen(screen).panels]
        index = ids.index(panel) + delta
        if not 0 <= index < len(ids):
            raise EditRefused(f"{panel} is already {'first' if delta < 0 else 'last'}")
        return self._apply(layout.move_panel(screen, panel, index, registry=self.registry), panel, f"move {panel}")

    def refresh_rate(self) -> Ask:
        layout, screen, panel = self._panel_target()
        current = layout.resolved(screen, panel, self.registry).refresh_hz

        def set_rate(text: str) -> Done:
            return self._apply(layout.set_refresh(screen, panel, float(text), registry=self.registry), panel,
                               f"refresh {panel} {text} Hz")

        return Ask(f"Refresh rate of {panel}", "repaints per second (at most; only when its data changed)", set_rate,
                   value=f"{current:g}", check=check_rate)

    def save_layout(self) -> Ask:
        layout = self.layout
        if layout is None:
            raise EditRefused("No layout to save yet")

        def check(name: str) -> str | None:
            if not name:
                return "enter a name"
            try:
                layout.renamed(name)
            except USER_ERRORS as e:
                return str(e)
            return None

        def save(name: str) -> Done:
            path = self.store.save(layout, name)
            self.layout, self.edited = self.store.get(name), False
            shadows = " (it takes the place of the shipped one)" if self.registry.layout(name) else ""
            return Done(note=f"Saved layout {name}{shadows}: {self.show_path(path)}", change=f"saved to {path}")

        return Ask("Save layout as", "a user layout in the config dir's layouts/", save, value=layout.name,
                   check=check)

    def open_layout(self) -> Ask:
        layouts = self.store.list()
        choices = tuple((p.name, f"{p.name} ({'yours' if p.origin == 'user' else 'shipped/plugin'})")
                        for p in layouts)

        def open_(name: str) -> Done:
            self.layout, self.edited, self.view = self.store.get(name), False, None
            self._picked = True
            return Done(rebuild=True, change="opened")

        return Ask("Open a layout", "", open_, choices=choices)
