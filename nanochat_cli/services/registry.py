"""The plugin registry: config categories, panels, screen presets and telemetry sources.

Core code and plugins register through the same calls, so a plugin's additions show up everywhere at
once. The config schema registers its core categories here at import; `panels` registers the built-in
panels and `ingest` the built-in telemetry sources. A plugin does e.g.
`registry.register_category("myplugin", MyPluginConfig)` from its `register(registry)` function (see
docs/plugins.md); while the loader runs it, everything it adds is recorded under its name so a plugin
that fails halfway is rolled back completely.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from engine.errors import EngineError

if TYPE_CHECKING:  # only for hints: panels and ingest import this module
    from nanochat_cli.services.panels import Layout, PanelSpec

_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
_PRESET_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")  # like prefab names: file-name safe, dashes allowed


@dataclass(frozen=True)
class Category:
    name: str
    model: type[BaseModel]  # one pydantic model; its fields are the category's fields
    help: str = ""
    builtin: bool = False  # core categories cannot be unregistered


@dataclass(frozen=True)
class SourceEntry:
    name: str
    factory: Callable[..., Any]  # factory(run_dir: Path) -> TelemetrySource (see services/ingest.py)
    help: str = ""
    builtin: bool = False


def check_name(kind: str, name: str) -> None:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise EngineError(f"{kind} {name!r}: invalid name: use lowercase letters, digits and _, starting with a letter")


class Registry:
    def __init__(self) -> None:
        self._categories: dict[str, Category] = {}
        self.order: list[str] = []  # live list of category names, core first then plugins
        self.version = 0  # bumped on every change so derived caches know to rebuild
        self._panels: dict[str, PanelSpec] = {}
        self._builtin_panels: set[str] = set()
        self._presets: dict[str, Layout] = {}
        self._sources: dict[str, SourceEntry] = {}
        self.plugins: dict[str, str | None] = {}  # plugin name -> None when loaded, else its one-line error
        self._owner: str | None = None  # the plugin whose register() is running
        self._owned: dict[str, list[tuple[str, str]]] = {}  # plugin -> [(kind, name)] it added

    def _added(self, kind: str, name: str) -> None:
        if self._owner is not None:
            self._owned.setdefault(self._owner, []).append((kind, name))
        self.version += 1

    # --- config categories

    def register_category(self, name: str, model: type[BaseModel], help: str = "", *, builtin: bool = False) -> None:
        """Add a config category. Its model must forbid extra keys and give every field a default."""
        if not _NAME_RE.match(name):
            raise EngineError(f"category {name!r}: invalid name: use lowercase letters, digits and _")
        if name in self._categories:
            raise EngineError(f"category {name!r}: already registered: pick another name for the plugin's category")
        if model.model_config.get("extra") != "forbid":
            raise EngineError(f"category {name!r}: {model.__name__} must set extra='forbid' so typos in prefabs "
                              "are caught")
        required = [f for f, info in model.model_fields.items() if info.is_required()]
        if required:
            raise EngineError(f"category {name!r}: fields {', '.join(required)} have no default: give every field "
                              "a default so a prefab can leave it out")
        self._categories[name] = Category(name, model, help, builtin)
        self.order.append(name)
        self._added("category", name)

    def unregister_category(self, name: str) -> None:
        cat = self._categories.get(name)
        if cat is None:
            raise EngineError(f"category {name!r}: not registered")
        if cat.builtin:
            raise EngineError(f"category {name!r}: core categories cannot be removed")
        del self._categories[name]
        self.order.remove(name)
        self.version += 1

    def categories(self) -> list[Category]:
        return [self._categories[n] for n in self.order]

    def get(self, name: str) -> Category | None:
        return self._categories.get(name)

    # --- panels

    def register_panel(self, spec: PanelSpec, *, builtin: bool = False) -> None:
        """Add a panel (a `panels.PanelSpec`); layouts place it by its id."""
        check_name("panel", spec.id)
        if spec.id in self._panels:
            raise EngineError(f"panel {spec.id!r}: already registered: pick another id for the plugin's panel")
        spec.check_refs(self)  # thresholds that name config keys must name registered ones
        self._panels[spec.id] = spec
        if builtin:
            self._builtin_panels.add(spec.id)
        self._added("panel", spec.id)

    def unregister_panel(self, panel_id: str) -> None:
        if panel_id not in self._panels:
            raise EngineError(f"panel {panel_id!r}: not registered")
        if panel_id in self._builtin_panels:
            raise EngineError(f"panel {panel_id!r}: built-in panels cannot be removed")
        del self._panels[panel_id]
        self.version += 1

    def panels(self) -> list[PanelSpec]:
        """Every panel in registration order: built-ins first, then plugins'."""
        return list(self._panels.values())

    def panel(self, panel_id: str) -> PanelSpec | None:
        return self._panels.get(panel_id)

    # --- screen presets

    def register_screen_preset(self, name: str, layout: Layout) -> None:
        """Add a read-only layout preset (a `panels.Layout`); every panel it places must be registered."""
        if not isinstance(name, str) or not _PRESET_RE.match(name):
            raise EngineError(f"screen preset {name!r}: invalid name: use lowercase letters, digits, - and _")
        if name in self._presets:
            raise EngineError(f"screen preset {name!r}: already registered: pick another name")
        layout.check_panels(self)
        self._presets[name] = layout
        self._added("preset", name)

    def unregister_screen_preset(self, name: str) -> None:
        if self._presets.pop(name, None) is None:
            raise EngineError(f"screen preset {name!r}: not registered")
        self.version += 1

    def screen_presets(self) -> dict[str, Layout]:
        return dict(self._presets)

    def screen_preset(self, name: str) -> Layout | None:
        return self._presets.get(name)

    # --- telemetry sources

    def register_telemetry_source(self, name: str, factory: Callable[..., Any], help: str = "", *,
                                  builtin: bool = False) -> None:
        """Add a telemetry source: `factory(run_dir: Path) -> TelemetrySource` (see services/ingest.py)."""
        check_name("telemetry source", name)
        if name in self._sources:
            raise EngineError(f"telemetry source {name!r}: already registered: pick another name")
        if not callable(factory):
            raise EngineError(f"telemetry source {name!r}: factory is not callable: pass a function "
                              "run_dir -> TelemetrySource")
        self._sources[name] = SourceEntry(name, factory, help, builtin)
        self._added("source", name)

    def unregister_telemetry_source(self, name: str) -> None:
        entry = self._sources.get(name)
        if entry is None:
            raise EngineError(f"telemetry source {name!r}: not registered")
        if entry.builtin:
            raise EngineError(f"telemetry source {name!r}: built-in sources cannot be removed")
        del self._sources[name]
        self.version += 1

    def telemetry_sources(self) -> list[SourceEntry]:
        return list(self._sources.values())

    def telemetry_source(self, name: str) -> SourceEntry | None:
        return self._sources.get(name)

    # --- plugin bookkeeping (used by services/plugins.py)

    @contextmanager
    def owned_by(self, plugin: str) -> Iterator[None]:
        """Record everything registered inside the block as `plugin`'s, so remove_owned can undo it."""
        prev, self._owner = self._owner, plugin
        try:
            yield
        finally:
            self._owner = prev

    def owned(self, plugin: str) -> list[tuple[str, str]]:
        """What `plugin` registered, as (kind, name) pairs in order."""
        return list(self._owned.get(plugin, []))

    def remove_owned(self, plugin: str) -> None:
        """Unregister everything `plugin` added (a plugin that failed halfway leaves nothing behind)."""
        undo = {"category": self.unregister_category, "panel": self.unregister_panel,
                "preset": self.unregister_screen_preset, "source": self.unregister_telemetry_source}
        for kind, name in reversed(self._owned.pop(plugin, [])):
            with suppress(EngineError):  # already unregistered by hand
                undo[kind](name)


REGISTRY = Registry()
