"""Plugin loader: finds plugins, runs their `register(registry)`, and disables any that fail.

Plugins come from the entry-point group `nanochat_cli.plugins` (installed packages) and from plugin
folders: the in-repo `plugins/` and any `extra_dirs`, where each subpackage (a folder with an
`__init__.py`) is one plugin. A plugin that fails to import or raises in `register` is rolled back
(nothing it registered stays), recorded with a one-line error for the UI to toast, logged with its
traceback, and the app goes on. Loading is idempotent: the registry remembers every plugin it has
seen, so calling `load_plugins` again imports nothing twice and reports the same outcome.
See docs/plugins.md for the plugin API.
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

from engine.errors import EngineError
from nanochat_cli.services.registry import Registry

ENTRY_POINT_GROUP = "nanochat_cli.plugins"
REPO_PLUGINS_DIR = Path(__file__).resolve().parents[2] / "plugins"

log = logging.getLogger(__name__)


@dataclass
class PluginReport:
    loaded: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (plugin, one-line error)


@dataclass(frozen=True)
class _Candidate:
    name: str
    origin: str  # where it was found, for messages
    load: Callable[[], Any]  # imports it; returns a module with register() or the register function itself


def _folder_candidates(folder: Path, prefix: str) -> list[_Candidate]:
    if not folder.is_dir():
        return []
    out = []
    for pkg in sorted(p for p in folder.iterdir() if (p / "__init__.py").is_file()):
        out.append(_Candidate(pkg.name, str(pkg), lambda pkg=pkg: _import_folder(pkg, f"{prefix}.{pkg.name}")))
    return out


def _ensure_parent(prefix: str) -> None:
    """Plugin modules are `<prefix>.<name>`; relative imports inside them need `<prefix>` importable."""
    if prefix in sys.modules:
        return
    if prefix == "plugins" and importlib.util.find_spec("plugins") is not None:
        importlib.import_module("plugins")  # the in-repo folder is a real package
        return
    parent = ModuleType(prefix, "namespace for plugins loaded from plugin folders")
    parent.__path__ = []  # a package that finds nothing by itself: its plugins are loaded by path
    sys.modules[prefix] = parent


def _import_folder(pkg: Path, module_name: str) -> ModuleType:
    if module_name in sys.modules:
        return sys.modules[module_name]
    _ensure_parent(module_name.rpartition(".")[0])
    spec = importlib.util.spec_from_file_location(module_name, pkg / "__init__.py",
                                                  submodule_search_locations=[str(pkg)])
    if spec is None or spec.loader is None:
        raise EngineError(f"plugin {pkg.name}: {pkg} cannot be imported as a package")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # so the plugin's relative imports find it
    try:
        spec.loader.exec_module(module)
    except BaseException:
        for name in [n for n in sys.modules if n == module_name or n.startswith(module_name + ".")]:
            del sys.modules[name]  # leave no half-imported plugin behind
        raise
    return module


def _entry_point_candidates() -> list[_Candidate]:
    eps = sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name)
    return [_Candidate(ep.name, f"entry point {ep.name} = {ep.value}", ep.load) for ep in eps]


def _register_function(obj: Any, name: str) -> Callable[[Registry], Any]:
    fn = getattr(obj, "register", None) if isinstance(obj, ModuleType) else obj
    if not callable(fn):
        raise EngineError(f"plugin {name}: no register(registry) function: define one in the plugin's module")
    return fn


def _one_line(e: BaseException) -> str:
    first = (str(e).strip().splitlines() or [""])[0]
    if isinstance(e, EngineError):
        return first
    return f"{type(e).__name__}: {first}" if first else type(e).__name__


def load_plugins(registry: Registry, extra_dirs: Iterable[str | Path] | None = None, *, repo: bool = True,
                 entry_points: bool = True) -> PluginReport:
    """Load every plugin found (in-repo plugins/, extra_dirs, entry points) into `registry`.

    Never raises for a bad plugin: it ends up in `report.failed` as (name, one-line error) instead.
    """
    candidates: list[_Candidate] = []
    if repo:
        candidates += _folder_candidates(REPO_PLUGINS_DIR, "plugins")
    for d in extra_dirs or []:
        candidates += _folder_candidates(Path(d), "nanochat_cli_plugins")
    if entry_points:
        candidates += _entry_point_candidates()

    report, origins = PluginReport(), {}
    for c in candidates:
        if c.name in origins and origins[c.name] != c.origin:
            err = f"another plugin named {c.name!r} is already loaded ({origins[c.name]}): rename one"
            report.failed.append((c.name, err))
            log.warning("plugin %s from %s disabled: %s", c.name, c.origin, err)
            continue
        origins[c.name] = c.origin
        if c.name in registry.plugins:  # seen before: report the same outcome, import nothing
            err = registry.plugins[c.name]
            report.loaded.append(c.name) if err is None else report.failed.append((c.name, err))
            continue
        try:
            register = _register_function(c.load(), c.name)
            with registry.owned_by(c.name):
                register(registry)
        except (Exception, SystemExit) as e:  # a plugin calling sys.exit() must not end the app either
            registry.remove_owned(c.name)
            err = _one_line(e)
            registry.plugins[c.name] = err
            report.failed.append((c.name, err))
            log.warning("plugin %s (%s) disabled: %s", c.name, c.origin, err, exc_info=True)
        else:
            registry.plugins[c.name] = None
            report.loaded.append(c.name)
            log.info("plugin %s loaded from %s: %s", c.name, c.origin,
                     ", ".join(f"{k} {n}" for k, n in registry.owned(c.name)) or "registered nothing")
    return report
