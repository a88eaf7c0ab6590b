"""Plugin loader: finds plugins, runs their `register(registry)`, and disables any that fail.

Plugins come from three places, tried in this order:
- "in-repo": the `nanochat_plugins` package that ships with nanochat-cli; each subpackage is one plugin;
- "user folder": `<config dir>/plugins/` (and any other `extra_dirs`), laid out the same way; imported as
  `nanochat_user_plugins.<name>` so they never collide with an installed top-level package;
- "entry point": installed packages declaring one in the group `nanochat_cli.plugins`.

A plugin that fails to import or raises in `register` is rolled back (nothing it registered stays),
recorded with a one-line error for the UI to toast, logged with its traceback, and the app goes on. A
plugin the user disabled (`nanochat-cli plugins disable NAME`, kept in `<config dir>/plugins.yaml`) is not
imported at all. Loading is idempotent: the registry remembers every plugin it has seen, so calling
`load_plugins` again imports nothing twice and reports the same outcome. See docs/plugins.md.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import logging
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

from engine.safe_yaml import YamlError, load_yaml_file
from engine.shared import atomic_write, one_line
from nanochat_cli.errors import USER_ERRORS, AppError
from nanochat_cli.services import paths
from nanochat_cli.services.registry import Registry

ENTRY_POINT_GROUP = "nanochat_cli.plugins"
IN_REPO_PACKAGE = "nanochat_plugins"
USER_NAMESPACE = "nanochat_user_plugins"
SOURCES = ("in-repo", "user folder", "entry point")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PluginInfo:
    name: str
    source: str  # "in-repo" | "user folder" | "entry point"
    origin: str  # the folder, or "name = module:function" of the entry point
    status: str  # "loaded" | "failed" | "disabled"
    error: str | None = None  # why it failed (one line)
    registered: tuple[tuple[str, str], ...] = ()  # (kind, name) of what it added, in order


@dataclass
class PluginReport:
    loaded: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (plugin, one-line error)
    disabled: list[str] = field(default_factory=list)  # turned off by the user: not imported
    plugins: list[PluginInfo] = field(default_factory=list)  # every plugin found, in load order


@dataclass(frozen=True)
class Candidate:
    """A plugin found but not imported yet."""

    name: str
    source: str
    origin: str
    load: Callable[[], Any]  # imports it; returns a module with register() or the register function itself


def _import_package(module_name: str) -> ModuleType:
    """Import `module_name`; on failure leave none of it (or its submodules) half-imported in sys.modules."""
    try:
        return importlib.import_module(module_name)
    except BaseException:
        for name in [n for n in sys.modules if n == module_name or n.startswith(module_name + ".")]:
            del sys.modules[name]
        raise


def _in_repo_candidates() -> list[Candidate]:
    spec = importlib.util.find_spec(IN_REPO_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return []
    out = []
    for folder in spec.submodule_search_locations:
        for pkg in sorted(p for p in Path(folder).iterdir() if (p / "__init__.py").is_file()):
            module = f"{IN_REPO_PACKAGE}.{pkg.name}"
            out.append(Candidate(pkg.name, "in-repo", str(pkg), lambda module=module: _import_package(module)))
    return out


def _user_namespace() -> None:
    """Plugins from folders are `nanochat_user_plugins.<name>`; relative imports inside them need the parent."""
    if USER_NAMESPACE not in sys.modules:
        parent = ModuleType(USER_NAMESPACE, "namespace for plugins loaded from plugin folders")
        parent.__path__ = []  # a package that finds nothing by itself: its plugins are loaded by path
        sys.modules[USER_NAMESPACE] = parent


def _import_folder(pkg: Path) -> ModuleType:
    module_name = f"{USER_NAMESPACE}.{pkg.name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    _user_namespace()
    spec = importlib.util.spec_from_file_location(module_name, pkg / "__init__.py",
                                                  submodule_search_locations=[str(pkg)])
    if spec is None or spec.loader is None:
        raise AppError(f"plugin {pkg.name}: {pkg} cannot be imported as a package")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # so the plugin's relative imports find it
    try:
        spec.loader.exec_module(module)
    except BaseException:
        for name in [n for n in sys.modules if n == module_name or n.startswith(module_name + ".")]:
            del sys.modules[name]  # leave no half-imported plugin behind
        raise
    return module


def _folder_candidates(folder: Path) -> list[Candidate]:
    if not folder.is_dir():
        return []
    return [Candidate(pkg.name, "user folder", str(pkg), lambda pkg=pkg: _import_folder(pkg))
            for pkg in sorted(p for p in folder.iterdir() if (p / "__init__.py").is_file())]


def _entry_point_candidates() -> list[Candidate]:
    eps = sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name)
    return [Candidate(ep.name, "entry point", f"{ep.name} = {ep.value}", ep.load) for ep in eps]


def find_plugins(extra_dirs: Iterable[str | Path] | None = None, *, repo: bool = True,
                 entry_points: bool = True) -> list[Candidate]:
    """Every plugin that `load_plugins` would try, in its order, without importing any."""
    candidates: list[Candidate] = []
    if repo:
        candidates += _in_repo_candidates()
    for d in extra_dirs or []:
        candidates += _folder_candidates(Path(d))
    if entry_points:
        candidates += _entry_point_candidates()
    return candidates


def _register_function(obj: Any, name: str) -> Callable[[Registry], Any]:
    fn = getattr(obj, "register", None) if isinstance(obj, ModuleType) else obj
    if not callable(fn):
        raise AppError(f"plugin {name}: no register(registry) function: define one in the plugin's module")
    return fn


def load_plugins(registry: Registry, extra_dirs: Iterable[str | Path] | None = None, *, repo: bool = True,
                 entry_points: bool = True, disabled: Iterable[str] = ()) -> PluginReport:
    """Load every plugin found (in-repo, extra_dirs, entry points) into `registry`, except those `disabled`.

    Never raises for a bad plugin: it ends up in `report.failed` as (name, one-line error) instead.
    """
    off = set(disabled)
    report, origins = PluginReport(), {}

    def outcome(c: Candidate, status: str, error: str | None = None) -> None:
        report.plugins.append(PluginInfo(c.name, c.source, c.origin, status, error, tuple(registry.owned(c.name))))
        if status == "loaded":
            report.loaded.append(c.name)
        elif status == "failed":
            report.failed.append((c.name, error or ""))
        else:
            report.disabled.append(c.name)

    for c in find_plugins(extra_dirs, repo=repo, entry_points=entry_points):
        if c.name in origins and origins[c.name] != c.origin:
            err = f"another plugin named {c.name!r} is already loaded ({origins[c.name]}): rename one"
            report.failed.append((c.name, err))
            report.plugins.append(PluginInfo(c.name, c.source, c.origin, "failed", err))
            log.warning("plugin %s from %s disabled: %s", c.name, c.origin, err)
            continue
        origins[c.name] = c.origin
        if c.name in off and c.name not in registry.plugins:
            outcome(c, "disabled")
            continue
        if c.name in registry.plugins:  # seen before: report the same outcome, import nothing
            err = registry.plugins[c.name]
            outcome(c, "loaded" if err is None else "failed", err)
            continue
        try:
            register = _register_function(c.load(), c.name)
            with registry.owned_by(c.name):
                register(registry)
        except (Exception, SystemExit) as e:  # a plugin calling sys.exit() must not end the app either
            registry.remove_owned(c.name)
            err = one_line(e, type_name=not isinstance(e, USER_ERRORS))  # a user error is its own message
            registry.plugins[c.name] = err
            outcome(c, "failed", err)
            log.warning("plugin %s (%s) disabled: %s", c.name, c.origin, err, exc_info=True)
        else:
            registry.plugins[c.name] = None
            outcome(c, "loaded")
            summary = ", ".join(f"{k} {n}" for k, n in registry.owned(c.name)) or "registered nothing"
            where = c.origin
            if c.source == "in-repo":  # the install's own folder: its paths say nothing (and would vary per machine)
                where, summary = "the package", summary.replace(c.origin.rstrip("/") + "/", "")
            log.info("plugin %s loaded from %s: %s", c.name, where, summary)
    return report


def load_user_plugins(registry: Registry) -> PluginReport:
    """What the app and the CLI load: in-repo plugins, the user plugin folder and entry points, minus the
    ones the user disabled. Raises AppError when the settings file is broken."""
    # the built-ins first: plugins may name core config keys, panels and sources
    import nanochat_cli.services.config.schema  # noqa: F401
    import nanochat_cli.services.ingest  # noqa: F401
    import nanochat_cli.services.panels  # noqa: F401

    return load_plugins(registry, extra_dirs=[paths.user_plugins_dir()], disabled=disabled_plugins())


# ---- the user's on/off switches (<config dir>/plugins.yaml)

def disabled_plugins(path: Path | None = None) -> set[str]:
    """Names the user turned off; empty when the settings file does not exist."""
    path = Path(path) if path else paths.plugin_settings_path()
    if not path.exists():
        return set()
    try:
        raw = load_yaml_file(path, what="plugin settings file")
    except YamlError as e:  # bounded read: size, UTF-8, nesting, aliases
        why = str(e).removeprefix(f"{path}: ")
        raise AppError(f"{path}: unreadable ({why}); or delete it to enable every plugin") from None
    names = (raw or {}).get("disabled", []) if isinstance(raw, dict | None) else None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise AppError(f"{path}: expected 'disabled: [plugin names]': fix it, or delete it to enable every plugin")
    return set(names)


def set_plugin_enabled(name: str, enabled: bool, path: Path | None = None) -> bool:
    """Turn a plugin on or off for the next start (atomically); returns False when it already was."""
    path = Path(path) if path else paths.plugin_settings_path()
    off = disabled_plugins(path)
    if (name not in off) == enabled:
        return False
    off = off - {name} if enabled else off | {name}
    text = "# nanochat-cli plugins switched off (nanochat-cli plugins enable|disable NAME)\n"
    atomic_write(path, text + yaml.safe_dump({"disabled": sorted(off)}, sort_keys=False))
    return True
