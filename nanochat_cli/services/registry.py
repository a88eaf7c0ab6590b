"""The registry core code and plugins extend the app through: config categories, panels, layouts, telemetry
sources, checkpoint fields, CLI commands, chat modes and screens.

Core code and plugins register through the same calls, so a plugin's additions show up everywhere at
once. Built-ins arrive when their module is imported: `services/config/schema.py` registers the core
config categories, `services/panels.py` the built-in panels and shipped layouts, `services/ingest` the
"jsonl" and "system" sources, and the CLI (`nanochat_cli/cli/`) its own commands. A plugin calls e.g.
`registry.register_category("myplugin", MyPluginConfig)` from its `register(registry)` function (see
docs/plugins.md); while the loader (`services/plugins.py`) runs it, everything it adds is recorded under
its name so that a plugin failing halfway is rolled back completely.

This module knows the things it stores only by the few methods it calls on them (`check_refs`,
`check_panels`), so it imports neither pydantic nor `panels`: the CLI can build its parser from it cheaply.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from nanochat_cli.errors import AppError

if TYPE_CHECKING:
    import argparse

    from pydantic import BaseModel

    from nanochat_cli.services.chat_modes import ChatMode

_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
_LAYOUT_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")  # like prefab names: file-name safe, dashes allowed
_COMMAND_RE = re.compile(r"^[a-z][a-z0-9-]*$")  # a word typed after `nanochat-cli`
_KEY_RE = re.compile(r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")  # a config key: category.field

MISSING: Any = object()  # config_default() of a key no registered category has


class PanelLike(Protocol):
    """What the registry needs of a panel (a `panels.PanelSpec`)."""

    id: str

    def check_refs(self, registry: Registry) -> None: ...


class LayoutLike(Protocol):
    """What the registry needs of a layout (a `panels.Layout`)."""

    def check_panels(self, registry: Registry) -> None: ...


@dataclass(frozen=True)
class Category:
    name: str
    model: type[BaseModel]  # one pydantic model; its fields are the category's fields
    help: str = ""
    builtin: bool = False  # core categories cannot be unregistered


@dataclass(frozen=True)
class SourceEntry:
    name: str
    factory: Callable[..., Any]  # factory(run_dir: Path) -> TelemetrySource (see services/ingest)
    help: str = ""
    builtin: bool = False


@dataclass(frozen=True)
class EngineExtension:
    """An engine extension a plugin ships (engine/extensions.py): when config key `enabled_key` is true, the run
    config's `extensions` names `entry` ("module:Class", imported by the engine process, so it must not import
    the app) and passes the values of category `name` as its settings. Off: the run is exactly a vanilla one."""

    name: str  # the plugin's config category, also the extension's name in telemetry and checkpoints
    entry: str
    enabled_key: str


@dataclass(frozen=True)
class CheckpointField:
    """A config value every checkpoint records (in its meta's user_config) and the Checkpoints views show.

    `key` is a registered config key ("category.field"). A checkpoint whose value differs from the active
    config's gets a compatibility reason at `level` ("warn": loadable; "error": incompatible) with the
    remedy `set key=<the checkpoint's value>`. A checkpoint that does not record it has the field's default.
    """

    key: str
    title: str  # in sentences: "MegaContext is on in the checkpoint, off in the config"
    column: str = ""  # table header; the title when empty
    level: str = "warn"
    help: str = ""

    @property
    def header(self) -> str:
        return self.column or self.title


@dataclass(frozen=True)
class CliCommand:
    """A `nanochat-cli NAME ...` command. `setup(parser)` adds its arguments to its own argparse parser and
    names the handler with `parser.set_defaults(func=handler)` (or sub-parsers, each with its own func);
    `handler(args)` returns the exit code (None means 0)."""

    name: str
    setup: Callable[[argparse.ArgumentParser], None]
    help: str = ""
    builtin: bool = False


@dataclass(frozen=True)
class ScreenEntry:
    """A screen a plugin adds to the TUI next to the built-in tabs. `factory()` returns a Textual Screen
    (a `plugin_api.PluginScreen` subclass gets the app's frame: nav bar, status bar, footer); the app opens
    it from the command palette and with the keys 6, 7, … in registration order."""

    name: str
    factory: Callable[[], Any]
    title: str
    help: str = ""


def check_name(kind: str, name: str) -> None:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise AppError(f"{kind} {name!r}: invalid name: use lowercase letters, digits and _, starting with a letter")


class Registry:
    def __init__(self) -> None:
        self._categories: dict[str, Category] = {}
        self.order: list[str] = []  # live list of category names, core first then plugins
        self.version = 0  # bumped on every change so derived caches know to rebuild
        self._panels: dict[str, PanelLike] = {}
        self._builtin_panels: set[str] = set()
        self._layouts: dict[str, LayoutLike] = {}
        self._sources: dict[str, SourceEntry] = {}
        self._ckpt_fields: dict[str, CheckpointField] = {}
        self._commands: dict[str, CliCommand] = {}
        self._extensions: dict[str, EngineExtension] = {}
        self._chat_contexts: dict[str, Callable[..., Any]] = {}
        self._prefab_dirs: list[str] = []
        self._chat_modes: dict[str, ChatMode] = {}
        self._screens: dict[str, ScreenEntry] = {}
        self.plugins: dict[str, str | None] = {}  # plugin name -> None when loaded, else its one-line error
        self._owner: str | None = None  # the plugin whose register() is running
        self._owned: dict[str, list[tuple[str, str]]] = {}  # plugin -> [(kind, name)] it added

    def _added(self, kind: str, name: str) -> None:
        if self._owner is not None:
            self._owned.setdefault(self._owner, []).append((kind, name))
        self.version += 1

    def owner(self, kind: str, name: str) -> str | None:
        """The plugin that registered (kind, name); None for built-ins and things registered outside a plugin."""
        return next((p for p, items in self._owned.items() if (kind, name) in items), None)

    def _taken(self, kind: str, name: str) -> str:
        """' (by plugin X)' or ' (built in)': who holds a name, for the 'already registered' errors."""
        owner = self.owner(kind, name)
        return f" (by plugin {owner})" if owner else " (built in)"

    # --- config categories

    def register_category(self, name: str, model: type[BaseModel], help: str = "", *, builtin: bool = False) -> None:
        """Add a config category. Its model must forbid extra keys and give every field a default."""
        if not _NAME_RE.match(name):
            raise AppError(f"category {name!r}: invalid name: use lowercase letters, digits and _")
        if name in self._categories:
            raise AppError(f"category {name!r}: already registered: pick another name for the plugin's category")
        if model.model_config.get("extra") != "forbid":
            raise AppError(f"category {name!r}: {model.__name__} must set extra='forbid' so typos in prefabs "
                           "are caught")
        required = [f for f, info in model.model_fields.items() if info.is_required()]
        if required:
            raise AppError(f"category {name!r}: fields {', '.join(required)} have no default: give every field "
                           "a default so a prefab can leave it out")
        self._categories[name] = Category(name, model, help, builtin)
        if builtin:
            self.order.append(name)
        else:  # plugins' categories after the core ones, by name: the same order whichever loaded first
            at = next((i for i, n in enumerate(self.order)
                       if not self._categories[n].builtin and n > name), len(self.order))
            self.order.insert(at, name)
        self._added("category", name)

    def unregister_category(self, name: str) -> None:
        cat = self._categories.get(name)
        if cat is None:
            raise AppError(f"category {name!r}: not registered")
        if cat.builtin:
            raise AppError(f"category {name!r}: core categories cannot be removed")
        del self._categories[name]
        self.order.remove(name)
        self.version += 1

    def categories(self) -> list[Category]:
        return [self._categories[n] for n in self.order]

    def get(self, name: str) -> Category | None:
        return self._categories.get(name)

    def config_default(self, key: str) -> Any:
        """The default of config key "category.field", or MISSING when no registered category has it."""
        category, _, name = key.partition(".")
        cat = self._categories.get(category)
        if cat is None or name not in cat.model.model_fields:
            return MISSING
        return cat.model.model_fields[name].get_default(call_default_factory=True)

    # --- panels

    def register_panel(self, spec: PanelLike, *, builtin: bool = False) -> None:
        """Add a panel (a `panels.PanelSpec`); layouts place it by its id."""
        check_name("panel", spec.id)
        if spec.id in self._panels:
            raise AppError(f"panel {spec.id!r}: already registered: pick another id for the plugin's panel")
        if not builtin:  # built-ins name core config keys, which a bare Registry (tests) may not hold
            spec.check_refs(self)  # thresholds that name config keys must name registered ones
        self._panels[spec.id] = spec
        if builtin:
            self._builtin_panels.add(spec.id)
        self._added("panel", spec.id)

    def unregister_panel(self, panel_id: str) -> None:
        if panel_id not in self._panels:
            raise AppError(f"panel {panel_id!r}: not registered")
        if panel_id in self._builtin_panels:
            raise AppError(f"panel {panel_id!r}: built-in panels cannot be removed")
        del self._panels[panel_id]
        self.version += 1

    def panels(self) -> list[Any]:
        """Every panel (`panels.PanelSpec`) in registration order: built-ins first, then plugins'."""
        return list(self._panels.values())

    def panel(self, panel_id: str) -> Any:
        """The `panels.PanelSpec` with this id, or None."""
        return self._panels.get(panel_id)

    # --- layouts (the Train screen's tabs of panels)

    def register_layout(self, name: str, layout: LayoutLike) -> None:
        """Add a read-only layout (a `panels.Layout`); every panel it places must be registered."""
        if not isinstance(name, str) or not _LAYOUT_RE.match(name):
            raise AppError(f"layout {name!r}: invalid name: use lowercase letters, digits, - and _")
        if name in self._layouts:
            raise AppError(f"layout {name!r}: already registered: pick another name")
        layout.check_panels(self)
        self._layouts[name] = layout
        self._added("layout", name)

    def unregister_layout(self, name: str) -> None:
        if self._layouts.pop(name, None) is None:
            raise AppError(f"layout {name!r}: not registered")
        self.version += 1

    def layouts(self) -> dict[str, Any]:
        """Registered layouts (`panels.Layout`) by name: shipped ones, then plugins'."""
        return dict(self._layouts)

    def layout(self, name: str) -> Any:
        """The registered `panels.Layout` of this name, or None."""
        return self._layouts.get(name)

    # --- telemetry sources

    def register_telemetry_source(self, name: str, factory: Callable[..., Any], help: str = "", *,
                                  builtin: bool = False) -> None:
        """Add a telemetry source: `factory(run_dir: Path) -> TelemetrySource` (see services/ingest)."""
        check_name("telemetry source", name)
        if name in self._sources:
            raise AppError(f"telemetry source {name!r}: already registered: pick another name")
        if not callable(factory):
            raise AppError(f"telemetry source {name!r}: factory is not callable: pass a function "
                           "run_dir -> TelemetrySource")
        self._sources[name] = SourceEntry(name, factory, help, builtin)
        self._added("source", name)

    def unregister_telemetry_source(self, name: str) -> None:
        entry = self._sources.get(name)
        if entry is None:
            raise AppError(f"telemetry source {name!r}: not registered")
        if entry.builtin:
            raise AppError(f"telemetry source {name!r}: built-in sources cannot be removed")
        del self._sources[name]
        self.version += 1

    def telemetry_sources(self) -> list[SourceEntry]:
        return list(self._sources.values())

    def telemetry_source(self, name: str) -> SourceEntry | None:
        return self._sources.get(name)

    # --- checkpoint fields

    def register_checkpoint_field(self, field: CheckpointField) -> None:
        """Add a config value the checkpoint views show and compare (its category must be registered first)."""
        key = field.key
        if not isinstance(key, str) or not _KEY_RE.match(key):
            raise AppError(f"checkpoint field {key!r}: not a config key: use 'category.field'")
        if self.config_default(key) is MISSING:
            raise AppError(f"checkpoint field {key!r}: no registered category has this field: register the "
                           "category first, or fix the key")
        if field.level not in ("warn", "error"):
            raise AppError(f"checkpoint field {key!r}: level {field.level!r}: use 'warn' or 'error'")
        if not field.title:
            raise AppError(f"checkpoint field {key!r}: empty title: give it the name users know it by")
        if key in self._ckpt_fields:
            raise AppError(f"checkpoint field {key!r}: already registered{self._taken('checkpoint field', key)}")
        self._ckpt_fields[key] = field
        self._added("checkpoint field", key)

    def unregister_checkpoint_field(self, key: str) -> None:
        if self._ckpt_fields.pop(key, None) is None:
            raise AppError(f"checkpoint field {key!r}: not registered")
        self.version += 1

    def checkpoint_fields(self) -> list[CheckpointField]:
        return list(self._ckpt_fields.values())

    # --- engine extensions

    def register_engine_extension(self, ext: EngineExtension) -> None:
        """Add an engine extension that runs whose `ext.enabled_key` is true load (its category first)."""
        if self.get(ext.name) is None:
            raise AppError(f"engine extension {ext.name!r}: no config category of that name: register the "
                           "category first (the extension's settings are its fields)")
        if self.config_default(ext.enabled_key) is MISSING:
            raise AppError(f"engine extension {ext.name!r}: enabled_key {ext.enabled_key!r} is not a config key")
        module, _, attr = ext.entry.partition(":")
        if not module or not attr:
            raise AppError(f"engine extension {ext.name!r}: entry {ext.entry!r}: use 'module:Class'")
        if ext.name in self._extensions:
            raise AppError(f"engine extension {ext.name!r}: already registered")
        self._extensions[ext.name] = ext
        self._added("engine extension", ext.name)

    def unregister_engine_extension(self, name: str) -> None:
        if self._extensions.pop(name, None) is None:
            raise AppError(f"engine extension {name!r}: not registered")
        self.version += 1

    def engine_extensions(self) -> list[EngineExtension]:
        return list(self._extensions.values())

    # --- prefab folders

    def register_prefab_dir(self, path: Any) -> None:
        """Add a folder of prefab YAML files the plugin ships; they list as shipped prefabs while it is loaded."""
        from pathlib import Path

        folder = Path(path)
        if not folder.is_dir():
            raise AppError(f"prefab folder {folder}: not a folder: ship the prefabs inside the plugin package")
        if str(folder) in self._prefab_dirs:
            raise AppError(f"prefab folder {folder}: already registered")
        self._prefab_dirs.append(str(folder))
        self._added("prefab dir", str(folder))

    def unregister_prefab_dir(self, path: str) -> None:
        if path not in self._prefab_dirs:
            raise AppError(f"prefab folder {path}: not registered")
        self._prefab_dirs.remove(path)
        self.version += 1

    def prefab_dirs(self) -> list[str]:
        return list(self._prefab_dirs)

    # --- chat contexts

    def register_chat_context(self, name: str, factory: Callable[..., Any], help: str = "") -> None:
        """Add a chat context: `factory(ckpt_dir, step, model, tokenizer, meta)` returns an object that generates
        for checkpoints it applies to (`generate(ids, max_tokens, temperature, top_k, seed)` -> token ids, and
        `status()` -> text the Chat screen shows under each reply), or None for the others."""
        check_name("chat context", name)
        if name in self._chat_contexts:
            raise AppError(f"chat context {name!r}: already registered: pick another name")
        if not callable(factory):
            raise AppError(f"chat context {name!r}: factory is not callable")
        self._chat_contexts[name] = factory
        self._added("chat context", name)

    def unregister_chat_context(self, name: str) -> None:
        if self._chat_contexts.pop(name, None) is None:
            raise AppError(f"chat context {name!r}: not registered")
        self.version += 1

    def chat_contexts(self) -> dict[str, Callable[..., Any]]:
        return dict(self._chat_contexts)

    # --- CLI commands

    def register_cli_command(self, name: str, setup: Callable[[argparse.ArgumentParser], None], help: str = "",
                             *, builtin: bool = False) -> None:
        """Add `nanochat-cli NAME`: `setup(parser)` adds its arguments and sets `func` (see `CliCommand`)."""
        if not isinstance(name, str) or not _COMMAND_RE.match(name):
            raise AppError(f"CLI command {name!r}: invalid name: use lowercase letters, digits and -, starting "
                           "with a letter")
        if name in self._commands:
            raise AppError(f"CLI command {name!r}: already registered{self._taken('cli command', name)}: pick "
                           "another name")
        if not callable(setup):
            raise AppError(f"CLI command {name!r}: setup is not callable: pass a function that configures the "
                           "command's argparse parser")
        self._commands[name] = CliCommand(name, setup, help, builtin)
        self._added("cli command", name)

    def unregister_cli_command(self, name: str) -> None:
        command = self._commands.get(name)
        if command is None:
            raise AppError(f"CLI command {name!r}: not registered")
        if command.builtin:
            raise AppError(f"CLI command {name!r}: built-in commands cannot be removed")
        del self._commands[name]
        self.version += 1

    def cli_commands(self) -> list[CliCommand]:
        """Every command in registration order: the built-ins first, then plugins'."""
        return list(self._commands.values())

    def cli_command(self, name: str) -> CliCommand | None:
        return self._commands.get(name)

    # --- chat modes (services/chat_modes.py)

    def register_chat_mode(self, mode: ChatMode) -> None:
        """Add a Chat tab mode: `mode.run(ModeRequest) -> ModeResult` (see services/chat_modes.py)."""
        from nanochat_cli.services.chat_modes import BUILTIN_MODES

        name = getattr(mode, "name", None)
        check_name("chat mode", name)
        if name in BUILTIN_MODES or name in self._chat_modes:
            taken = " (built in)" if name in BUILTIN_MODES else self._taken("chat mode", name)
            raise AppError(f"chat mode {name!r}: already registered{taken}: pick another name")
        if not callable(getattr(mode, "run", None)):
            raise AppError(f"chat mode {name!r}: run is not callable: pass a function ModeRequest -> ModeResult")
        if not getattr(mode, "label", ""):
            raise AppError(f"chat mode {name!r}: empty label: give it the text the mode selector shows")
        self._chat_modes[name] = mode
        self._added("chat mode", name)

    def unregister_chat_mode(self, name: str) -> None:
        if self._chat_modes.pop(name, None) is None:
            raise AppError(f"chat mode {name!r}: not registered")
        self.version += 1

    def chat_modes(self) -> list[ChatMode]:
        """Registered modes in registration order (the built-in chat and continue modes are not listed)."""
        return list(self._chat_modes.values())

    def chat_mode(self, name: str) -> ChatMode | None:
        return self._chat_modes.get(name)

    # --- screens

    def register_screen(self, name: str, factory: Callable[[], Any], title: str, help: str = "") -> None:
        """Add a TUI screen: `factory()` makes it when first opened (see `ScreenEntry`)."""
        from nanochat_cli.tabs import SCREENS

        check_name("screen", name)
        if name in SCREENS:
            raise AppError(f"screen {name!r}: already registered (built in): pick another name")
        if name in self._screens:
            raise AppError(f"screen {name!r}: already registered{self._taken('screen', name)}: pick another name")
        if not callable(factory):
            raise AppError(f"screen {name!r}: factory is not callable: pass a function that returns the Screen")
        if not isinstance(title, str) or not title.strip():
            raise AppError(f"screen {name!r}: empty title: give the label the palette shows")
        self._screens[name] = ScreenEntry(name, factory, title.strip(), help)
        self._added("screen", name)

    def unregister_screen(self, name: str) -> None:
        if self._screens.pop(name, None) is None:
            raise AppError(f"screen {name!r}: not registered")
        self.version += 1

    def screens(self) -> list[ScreenEntry]:
        """Plugin screens in registration order."""
        return list(self._screens.values())

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
        """What `plugin` registered, as (kind, name) pairs in order. Kinds: category, panel, layout, source,
        checkpoint field, cli command, chat mode, screen."""
        return list(self._owned.get(plugin, []))

    def remove_owned(self, plugin: str) -> None:
        """Unregister everything `plugin` added (a plugin that failed halfway leaves nothing behind)."""
        undo = {"category": self.unregister_category, "panel": self.unregister_panel,
                "layout": self.unregister_layout, "source": self.unregister_telemetry_source,
                "checkpoint field": self.unregister_checkpoint_field, "cli command": self.unregister_cli_command,
                "engine extension": self.unregister_engine_extension,
                "chat context": self.unregister_chat_context, "prefab dir": self.unregister_prefab_dir,
                "chat mode": self.unregister_chat_mode, "screen": self.unregister_screen}
        for kind, name in reversed(self._owned.pop(plugin, [])):
            with suppress(AppError):  # already unregistered by hand
                undo[kind](name)


REGISTRY = Registry()
