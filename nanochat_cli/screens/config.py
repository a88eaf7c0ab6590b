"""Config tab: pick a prefab, edit fields by category with inline validation, see the diff against the
prefab, the compat matrix (params, tokens, time, cost, GPUs) and this machine's guardrails.

All edits go through the app (`set_override`, `reset_override`, …) so the command palette and this screen
share one path; the screen redraws whenever the app bumps `config_rev`. At start-up this tab paints its
frame before the app's services (plugins, prefabs, secrets) are loaded, and composes its content once they
are (`services_ready`): the schema, pydantic and the field widgets are imported then, not before.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import ContentSwitcher, OptionList, Select, Static, TabbedContent, TabPane
from textual.widgets.option_list import Option

from nanochat_cli.errors import USER_ERRORS
from nanochat_cli.screens.base import AppScreen
from nanochat_cli.services.lazy_module import LazyModule

if TYPE_CHECKING:
    from nanochat_cli.widgets.config.field_row import FieldRow

# imported when the content is first composed, after the first paint (the schema brings in pydantic)
_schema = LazyModule("nanochat_cli.services.config.schema")
_rows = LazyModule("nanochat_cli.widgets.config.field_row")
_diff = LazyModule("nanochat_cli.widgets.config.diff_table")
_compat = LazyModule("nanochat_cli.widgets.config.compat_panel")

VIEWS = ["view-fields", "view-diff", "view-compat"]


class ConfigScreen(AppScreen):
    SCREEN_NAME = "config"
    BINDINGS = [
        Binding("ctrl+s", "app.save_as", "Save", tooltip="Save the prefab + overrides under a new name"),
        Binding("ctrl+r", "reset_field", "Reset", tooltip="Reset the focused field to the prefab value"),
        Binding("ctrl+l", "app.reset_all", "Reset all", tooltip="Drop every override"),
        Binding("ctrl+o", "next_view", "View", tooltip="Cycle Fields / Diff / Compat"),
    ]

    def compose_body(self) -> ComposeResult:
        if not self.napp.services_ready:  # the frame only; `_services_ready` composes the rest
            with Horizontal(id="body"):
                with Vertical(id="config-side"):
                    yield Static("Prefab", classes="section-title")
                    yield Static("loading…", id="config-loading")
                    yield Static("Categories", classes="section-title")
            return
        session = self.napp.session
        cats = self._cats = {c: s for c, s in _schema.specs_by_category().items() if s}
        with Horizontal(id="body"):
            with Vertical(id="config-side"):
                yield Static("Prefab", classes="section-title")
                self._shown_options = self._prefab_options()
                yield Select(self._shown_options, value=session.prefab, allow_blank=False, compact=True,
                             id="prefab-select")
                yield Static("", id="prefab-desc", markup=False)
                yield Static("", id="stage-source", markup=False)
                yield Static("Categories", classes="section-title")
                yield OptionList(*(Option(c, id=c) for c in cats), id="categories")
                yield Static("", id="guard-summary", markup=False)
            with TabbedContent(id="config-views"):
                with TabPane("Fields", id="view-fields"):
                    with ContentSwitcher(initial=f"cat-{next(iter(cats))}", id="field-pages"):
                        for cat in cats:  # rows are mounted when a category is first shown (fast start-up)
                            yield VerticalScroll(id=f"cat-{cat}", classes="field-page")
                with TabPane("Diff", id="view-diff"):
                    yield Static("No overrides: the config is exactly the prefab.", id="diff-empty")
                    yield _diff.DiffTable(id="diff-table")
                with TabPane("Compat", id="view-compat"):
                    with VerticalScroll():
                        yield _compat.CompatPanel(id="compat")

    def _prefab_options(self) -> list[tuple[str, str]]:
        return [(p.name if p.shipped else f"{p.name} (yours)", p.name) for p in self.napp.session.prefabs()]

    def on_mount(self) -> None:
        if self.napp.services_ready:
            self._start()
        else:
            self.watch(self.app, "services_ready", self._services_ready, init=False)

    async def _services_ready(self, ready: bool) -> None:
        if ready and not self.query("#categories"):
            await self.recompose()
            self._start()

    def _start(self) -> None:
        self._epoch = self.napp.session.epoch
        self.query_one("#categories", OptionList).highlighted = 0
        self.watch(self.app, "config_rev", lambda _: self.redraw(), init=True)
        self.query_one("#categories", OptionList).focus()

    # ---- redraw --------------------------------------------------------------------------------
    def redraw(self) -> None:
        s = self.napp.session
        select = self.query_one("#prefab-select", Select)
        options = self._prefab_options()
        if options != self._shown_options:
            self._shown_options = options
            with select.prevent(Select.Changed):
                select.set_options(options)
        if select.value != s.prefab:
            with select.prevent(Select.Changed):
                select.value = s.prefab
        prefab = s.prefab_info()
        extends = f" (extends {prefab.extends})" if prefab.extends else ""
        self.query_one("#prefab-desc", Static).update(f"{prefab.description}{extends}")
        self._redraw_source()
        force, self._epoch = s.epoch != self._epoch, s.epoch  # everything replaced: drop half-typed text too
        for row in self.query(_rows.FieldRow):
            issues = s.issues_for(row.key)
            row.sync(s.current.get(row.key), row.key in s.overrides, issues[0].message if issues else None,
                     force=force)
        self._redraw_categories()
        self._redraw_diff()
        self._redraw_compat()

    def _redraw_source(self) -> None:
        """For an sft, rl or eval stage: the checkpoint each of its modules starts from, or why there is none."""
        from pathlib import Path

        from nanochat_cli.services.runs.stages import starts_from

        current = self.napp.session.current
        base = Path(current.get("run.base_dir") or self.napp.base_dir).expanduser()
        widget = self.query_one("#stage-source", Static)
        try:
            points = starts_from(current, base)
        except USER_ERRORS as e:
            points, problem = [], str(e)
        else:
            problem = None
        widget.display = bool(points or problem)
        if not widget.display:
            return
        stage = current.get("run.stage", "base")
        lines = [f"Stage {stage}:"] + [f"{p.module}: " + (p.problem or f"starts from {self.napp.show_path(p.ckpt_dir)} "
                                                                      f"step {p.step}") for p in points]
        widget.update("\n".join(lines + ([problem] if problem else [])))
        widget.set_class(any(p.problem for p in points) or problem is not None, "-error")

    def _redraw_categories(self) -> None:
        s = self.napp.session
        options = self.query_one("#categories", OptionList)
        bad = {issue.field for issue in s.issues} | set(s.pending)
        for index in range(options.option_count):
            cat = options.get_option_at_index(index).id or ""
            n_over = sum(1 for k in s.overrides if k.startswith(cat + "."))
            n_bad = sum(1 for k in bad if k.startswith(cat + "."))
            label = cat + (f" ●{n_over}" if n_over else "") + (f" ✗{n_bad}" if n_bad else "")
            options.replace_option_prompt_at_index(index, label)

    def _redraw_diff(self) -> None:
        rows = self.napp.session.diff
        table = self.query_one("#diff-table", _diff.DiffTable)
        table.show(rows)
        table.display = bool(rows)
        self.query_one("#diff-empty").display = not rows
        self.query_one(TabbedContent).get_tab("view-diff").label = f"Diff ({len(rows)})"

    def _redraw_compat(self) -> None:
        s = self.napp.session
        colours = self.app.theme_variables
        machine = self.napp.machine
        try:
            compat, problem = s.compat(has_gpu=bool(machine.gpus) if machine else None), None
            guards = s.guardrails(machine) if machine is not None else []
        except USER_ERRORS as e:
            compat, problem, guards = None, str(e), []
        n = len(s.overrides)
        title = s.prefab + (f" + {n} override{'s' if n > 1 else ''}" if n else "")
        panel = self.query_one("#compat", _compat.CompatPanel)
        panel.show(title, compat, problem, guards, machine is not None, colours)
        n_err = sum(1 for g in guards if g.level == "error")
        n_warn = len(guards) - n_err
        summary = self.query_one("#guard-summary", Static)
        n_bad = len({i.field for i in s.issues} | set(s.pending))
        if n_bad:
            summary.update(f"✗ {n_bad} invalid field{'s' if n_bad > 1 else ''}")
        elif machine is None:
            summary.update("checking this machine…")
        elif guards:
            parts = [f"{n} {word}{'s' if n > 1 else ''}" for n, word in ((n_err, "error"), (n_warn, "warning")) if n]
            summary.update(f"{'✗' if n_err else '!'} {', '.join(parts)} on this machine (Compat tab)")
        else:
            summary.update("✓ config valid")
        summary.set_class(bool(n_bad or n_err), "-error")
        summary.set_class(not n_bad and not n_err and bool(n_warn), "-warning")
        tab = self.query_one(TabbedContent).get_tab("view-compat")
        tab.label = f"Compat ({len(guards)}!)" if guards else "Compat"

    # ---- events --------------------------------------------------------------------------------
    @on(OptionList.OptionHighlighted, "#categories")
    def _category(self, event: OptionList.OptionHighlighted) -> None:
        self.show_category(event.option.id or "")

    def show_category(self, cat: str) -> None:
        page = self.query_one(f"#cat-{cat}", VerticalScroll)
        if not page.children:
            s = self.napp.session
            rows = [_rows.FieldRow(spec, s.current.get(spec.key), spec.key in s.overrides)
                    for spec in self._cats[cat]]
            page.mount_all(rows)
            self.call_after_refresh(self.redraw)  # issues for the new rows
        self.query_one("#field-pages", ContentSwitcher).current = f"cat-{cat}"
        self.query_one(TabbedContent).active = "view-fields"

    @on(Select.Changed, "#prefab-select")
    def _prefab(self, event: Select.Changed) -> None:
        if event.value is not Select.NULL and event.value != self.napp.session.prefab:
            self.napp.request_switch_prefab(str(event.value))

    def on_field_row_parse_state(self, event: FieldRow.ParseState) -> None:
        pending = self.napp.session.pending
        if event.error:
            pending[event.key] = event.error
        else:
            pending.pop(event.key, None)
        self._redraw_categories()
        self._redraw_compat()

    def on_field_row_edited(self, event: FieldRow.Edited) -> None:
        self.napp.set_override(event.key, event.value)

    # ---- actions -------------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("reset_field", "next_view"):
            return bool(self.query("#categories"))  # the content is composed (the services are loaded)
        return True

    def action_reset_field(self) -> None:
        row = next((w for w in (self.focused.ancestors_with_self if self.focused else []) if
                    isinstance(w, _rows.FieldRow)), None)
        if row is None:
            self.notify("Move to a field first (Tab), then Ctrl+R resets it", severity="warning")
            return
        self.napp.reset_override(row.key)
        s = self.napp.session
        issues = s.issues_for(row.key)
        row.sync(s.current.get(row.key), False, issues[0].message if issues else None, force=True)

    def action_next_view(self) -> None:
        tabs = self.query_one(TabbedContent)
        tabs.active = VIEWS[(VIEWS.index(tabs.active) + 1) % len(VIEWS)]
