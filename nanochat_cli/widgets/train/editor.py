"""Layout editing on the Train screen, while a run trains: select a panel, add, remove, move it, change its
refresh rate, save the layout under a name or open another. Each edit returns a new validated Layout
(services/panels.py) and the dashboard tabs are rebuilt from it; the run and its data are untouched.

A mixin for TrainScreen: it uses the screen's `preset`, `active_view`, `selected`, `layouts`, `live`,
`_panels_in_view()` and `_rebuild()`.
"""

from __future__ import annotations

import math
from typing import Any

from nanochat_cli.errors import USER_ERRORS
from nanochat_cli.logging_setup import log_event
from nanochat_cli.services.panels import MAX_HZ, Layout, LayoutStore
from nanochat_cli.services.registry import REGISTRY
from nanochat_cli.widgets.train.base import Panel

RUNS_VIEW = "view-runs"


class LayoutEditor:
    preset: Layout | None
    preset_edited: bool
    active_view: str | None
    selected: dict[str, str]  # tab pane id -> id of its selected panel
    layouts: LayoutStore
    live: Any

    # ---- selection -------------------------------------------------------------------------------
    def selected_panel(self) -> Panel | None:
        """The selected panel of the active dashboard tab (its first panel until one is picked)."""
        panels = self._panels_in_view()
        want = self.selected.get(self.active_view or "")
        return next((p for p in panels if p.spec.id == want), panels[0] if panels else None)

    def _show_selection(self) -> None:
        chosen = self.selected_panel()
        for panel in self.query(Panel).results(Panel):
            panel.set_class(panel is chosen, "-selected")

    def action_select_panel(self, delta: int) -> None:
        panels = self._panels_in_view()
        current = self.selected_panel()
        if not panels or current is None or not self.active_view:
            return
        self.selected[self.active_view] = panels[(panels.index(current) + delta) % len(panels)].spec.id
        self._show_selection()

    def on_panel_picked(self, event: Panel.Picked) -> None:
        if self.active_view:
            self.selected[self.active_view] = event.panel.spec.id
            self._show_selection()

    # ---- edits -----------------------------------------------------------------------------------
    def _layout_target(self, need_panel: bool) -> tuple[str, str | None] | None:
        """(layout screen id, selected panel id) of the active dashboard tab, or None with a toast."""
        if self.preset is None or not self.active_view or self.active_view == RUNS_VIEW:
            self.notify("Open a dashboard tab first (v)", severity="warning")
            return None
        chosen = self.selected_panel()
        panel = chosen.spec.id if chosen is not None else None
        if need_panel and panel is None:
            self.notify("This tab has no panels: add one (a)", severity="warning")
            return None
        return self.active_view.removeprefix("view-"), panel

    async def _apply_layout(self, make: Any, select: str | None, what: str) -> None:
        try:
            layout = make()
        except USER_ERRORS as e:
            self.napp._error(str(e))
            return
        self.preset, self.preset_edited = layout, True
        log_event("layout edited", layout=layout.name, change=what)
        await self._rebuild(select)

    async def action_add_panel(self) -> None:
        target = self._layout_target(need_panel=False)
        if target is None or self.preset is None:
            return
        screen_id, chosen = target
        layout = self.preset
        placed = {p.panel for p in layout.screen(screen_id).panels}
        choices = [(s.id, f"{s.title} ({s.kind}): {s.help}") for s in REGISTRY.panels() if s.id not in placed]
        if not choices:
            self.notify("Every registered panel is already on this tab", severity="warning")
            return
        from nanochat_cli.screens.run_modals import PickScreen

        ids = [p.panel for p in layout.screen(screen_id).panels]
        index = ids.index(chosen) + 1 if chosen in ids else None

        async def add(panel: str | None) -> None:
            if panel:
                await self._apply_layout(lambda: layout.add_panel(screen_id, panel, index=index), panel,
                                         f"add {panel}")

        self.app.push_screen(PickScreen("Add a panel", choices, "placed after the selected panel"), add)

    async def action_remove_panel(self) -> None:
        target = self._layout_target(need_panel=True)
        if target is None or self.preset is None:
            return
        screen_id, panel = target
        layout = self.preset
        await self._apply_layout(lambda: layout.remove_panel(screen_id, panel), None, f"remove {panel}")

    async def action_move_panel(self, delta: int) -> None:
        target = self._layout_target(need_panel=True)
        if target is None or self.preset is None:
            return
        screen_id, panel = target
        layout = self.preset
        ids = [p.panel for p in layout.screen(screen_id).panels]
        index = ids.index(panel) + delta
        if not 0 <= index < len(ids):
            self.notify(f"{panel} is already {'first' if delta < 0 else 'last'}", severity="warning")
            return
        await self._apply_layout(lambda: layout.move_panel(screen_id, panel, index), panel, f"move {panel}")

    async def action_refresh_rate(self) -> None:
        target = self._layout_target(need_panel=True)
        if target is None or self.preset is None:
            return
        screen_id, panel = target
        layout = self.preset
        current = layout.resolved(screen_id, panel, REGISTRY).refresh_hz
        from nanochat_cli.screens.run_modals import AskScreen

        def check(text: str) -> str | None:
            try:
                hz = float(text)
            except ValueError:
                return f"{text!r} is not a number: give repaints per second, e.g. 2"
            if not (0 < hz <= MAX_HZ) or math.isnan(hz):
                return f"{text} is out of range: use a rate above 0 and at most {MAX_HZ:g}"
            return None

        async def set_rate(text: str | None) -> None:
            if text:
                await self._apply_layout(lambda: layout.set_refresh(screen_id, panel, float(text)), panel,
                                         f"refresh {panel} {text} Hz")

        self.app.push_screen(AskScreen(f"Refresh rate of {panel}", "repaints per second (at most; only when its "
                                       "data changed)", f"{current:g}", check), set_rate)

    def action_save_layout(self) -> None:
        if self.preset is None:
            self.notify("No layout to save yet", severity="warning")
            return
        from nanochat_cli.screens.run_modals import AskScreen

        layout = self.preset

        def check(name: str) -> str | None:
            if not name:
                return "enter a name"
            try:
                layout.renamed(name)
            except USER_ERRORS as e:
                return str(e)
            return None

        def save(name: str | None) -> None:
            if not name:
                return
            try:
                path = self.layouts.save(layout, name)
            except USER_ERRORS as e:
                self.napp._error(str(e))
                return
            self.preset, self.preset_edited = self.layouts.get(name), False
            shadows = " (it takes the place of the shipped one)" if REGISTRY.layout(name) else ""
            self.notify(f"Saved layout {name}{shadows}: {self.napp.show_path(path)}")
            log_event("layout saved", layout=name, path=str(path))
            self._show_header()

        self.app.push_screen(AskScreen("Save layout as", "a user layout in the config dir's layouts/",
                                       layout.name, check), save)

    def action_open_layout(self) -> None:
        from nanochat_cli.screens.run_modals import PickScreen

        try:
            presets = self.layouts.list()
        except USER_ERRORS as e:
            self.napp._error(str(e))
            return
        choices = [(p.name, f"{p.name} ({'yours' if p.origin == 'user' else 'shipped/plugin'})") for p in presets]

        async def open_(name: str | None) -> None:
            if not name:
                return
            try:
                layout = self.layouts.get(name)
            except USER_ERRORS as e:
                self.napp._error(str(e))
                return
            self.preset, self.preset_edited, self.active_view = layout, False, None
            if self.live is None:
                self.notify(f"Layout {name} is used once a run is attached")
                return
            await self._rebuild()

        self.app.push_screen(PickScreen("Open a layout", choices), open_)
