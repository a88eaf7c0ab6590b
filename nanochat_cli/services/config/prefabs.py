"""Prefabs: named starting configs in YAML. Shipped ones (prefabs/ at the repo root) are read-only;
the user's own live in <user config dir>/prefabs/ and are written by save_as().

A prefab file holds `name:`, `description:`, optional `extends:` (another prefab's name) and category
sections with only the fields it changes. Resolving a prefab applies, in order: schema defaults, the
`extends` chain, the prefab, then the caller's overrides, and validates the result.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from engine.safe_yaml import YamlError, load_yaml_file
from engine.shared import atomic_write
from nanochat_cli.errors import USER_ERRORS, AppError
from nanochat_cli.services import paths
from nanochat_cli.services.config.estimate import CompatInfo, compat_matrix
from nanochat_cli.services.config.schema import (
    STAGES,
    ConfigError,
    ConfigIssue,
    check,
    defaults,
    nest,
    normalize_overrides,
    resolve_key,
    specs_by_category,
)
from nanochat_cli.services.registry import REGISTRY

__all__ = ["BrokenPrefab", "Prefab", "PrefabError", "PrefabExists", "PrefabStore", "CompatInfo", "compat_matrix",
           "file_stem"]

NAME_RE = re.compile(r"^[A-Za-z0-9$][A-Za-z0-9$._-]{0,63}$")
_TOP_KEYS = {"name", "description", "extends"}


class PrefabError(AppError):
    """A prefab that cannot be found, read or written."""


class PrefabExists(PrefabError):
    """save_as() would replace an existing user prefab and overwrite was not allowed."""


@dataclass(frozen=True)
class Prefab:
    name: str
    path: Path
    shipped: bool
    extends: str | None
    description: str
    values: dict[str, Any] = field(default_factory=dict)  # dotted keys, only what this prefab sets


@dataclass(frozen=True)
class BrokenPrefab:
    """A prefab file that cannot be used; `error` is the one-line reason (it names the file and the fix)."""

    path: Path
    shipped: bool
    error: str
    name: str | None = None  # known when the file parsed (a duplicate name); else the file name stands for it

    @property
    def label(self) -> str:
        return self.name or self.path.stem


def file_stem(name: str) -> str:
    """File name for a prefab name: '$10' -> 'usd10' (no '$' in file names)."""
    return name.replace("$", "usd")


def _check_name(name: str) -> None:
    if not NAME_RE.match(name or ""):
        hint = " (in a shell, quote names with $: '$10')" if not name or name.isdigit() else ""
        raise PrefabError(f"prefab name {name!r}: invalid: use up to 64 letters, digits, $ . _ -, starting with a "
                          f"letter, digit or ${hint}")


def read_prefab_file(path: Path, shipped: bool = False, require_name: bool = True) -> Prefab:
    """Parse one prefab YAML; unknown or read-only fields are errors that name the file and the field."""
    try:
        raw = load_yaml_file(path, what="prefab file")
    except YamlError as e:
        raise PrefabError(str(e)) from None
    if not isinstance(raw, dict):
        raise PrefabError(f"{path}: expected a mapping with name:, description: and category sections")
    if "name" in raw:
        name = str(raw["name"])
        _check_name(name)
    elif require_name:
        raise PrefabError(f"{path}: no name: key: add `name: {path.stem}`")
    else:
        name = path.stem
    extends = raw.get("extends")
    if extends is not None and not isinstance(extends, str):
        raise PrefabError(f"{path}: extends: {extends!r} is not a prefab name: write extends: <name>")
    sections = specs_by_category()
    values: dict[str, Any] = {}
    for cat, body in raw.items():
        if cat in _TOP_KEYS:
            continue
        if cat not in sections:
            try:
                hint = f"put it under its category: {resolve_key(cat).split('.')[0]}:"
            except ConfigError:
                hint = f"use one of {', '.join(sections)} (a plugin category needs its plugin loaded)"
            raise PrefabError(f"{path}: {cat}: unknown category: {hint}")
        if body is None:
            continue
        if not isinstance(body, dict):
            raise PrefabError(f"{path}: {cat}: expected a mapping of fields, got {body!r}")
        known = {s.name: s for s in sections[cat]}
        for fname, value in body.items():
            spec = known.get(fname)
            if spec is None:
                raise PrefabError(f"{path}: {cat}.{fname}: unknown field: known fields are {', '.join(known)}")
            if spec.readonly:
                raise PrefabError(f"{path}: {cat}.{fname}: read-only (derived from the secret store): remove it")
            values[spec.key] = value
    return Prefab(name, path, shipped, extends, str(raw.get("description") or ""), values)


class PrefabStore:
    def __init__(self, shipped_dir: Path | None = None, user_dir: Path | None = None,
                 auth_flags: Callable[[], dict[str, bool]] | None = None) -> None:
        self.shipped_dir = Path(shipped_dir) if shipped_dir else paths.shipped_prefabs_dir()
        # loaded plugins' prefab folders count as shipped (a store given its own folder, as in tests, reads only it)
        self.plugin_dirs = [] if shipped_dir else REGISTRY.prefab_dirs()
        self.user_dir = Path(user_dir) if user_dir else paths.user_prefabs_dir()
        self._auth_flags = auth_flags  # None: ask the secret store (lazily: it imports keyring)
        self._broken: list[BrokenPrefab] | None = None  # from the last scan

    # ---- reading

    def _scan(self) -> tuple[list[Prefab], list[Prefab], list[BrokenPrefab]]:
        """Read every prefab file. A file that cannot be used is set aside as broken, with why, so one bad
        user file never hides the others."""
        if not self.shipped_dir.is_dir():
            raise PrefabError(f"{self.shipped_dir}: shipped prefabs not found: run from a source checkout or an "
                              "editable install (pip install -e .)")
        files = [(p, True) for p in sorted(self.shipped_dir.glob("*.yaml"))]
        files += [(p, True) for d in self.plugin_dirs for p in sorted(Path(d).glob("*.yaml"))]
        if self.user_dir.is_dir():
            files += [(p, False) for p in sorted(self.user_dir.glob("*.yaml"))]
        shipped: list[Prefab] = []
        user: list[Prefab] = []
        broken: list[BrokenPrefab] = []
        seen: dict[str, Path] = {}
        for path, is_shipped in files:
            try:
                prefab = read_prefab_file(path, shipped=is_shipped)
            except USER_ERRORS as e:
                broken.append(BrokenPrefab(path, is_shipped, str(e)))
                continue
            if prefab.name in seen:
                broken.append(BrokenPrefab(path, is_shipped, f"{path}: name {prefab.name!r} is already used by "
                                                             f"{seen[prefab.name]}: rename one of them", prefab.name))
                continue
            seen[prefab.name] = path
            (shipped if is_shipped else user).append(prefab)
        return shipped, user, broken

    def _load(self) -> tuple[list[Prefab], list[Prefab]]:
        shipped, user, broken = self._scan()
        self._broken = broken  # _find names them when asked for one
        return shipped, user

    def broken(self) -> list[BrokenPrefab]:
        """Prefab files that cannot be used (unreadable, invalid, a duplicate name), each with a one-line why,
        as the last read of the prefab dirs found them (list(), get(), resolve() ... read them)."""
        if self._broken is None:
            self._load()
        return list(self._broken or [])

    def list(self) -> list[Prefab]:
        """Shipped prefabs, cheapest first (a post-training stage prefab right after the base prefab it
        extends, in pipeline order), then the user's, by name."""
        shipped, user = self._load()

        def cost(p: Prefab) -> tuple[float, float, int]:
            chain = self._chain(p, shipped + user)
            stage = self._resolve_chain(p, {}, shipped + user)[0].get("run.stage", "base")
            base = next((q for q in reversed(chain) if q.values.get("run.stage", "base") == "base"), chain[0])
            info = compat_matrix(self._resolve_chain(base, {}, shipped + user)[0])
            return info.est_cost_usd, info.est_hours, STAGES.index(stage)

        return sorted(shipped, key=cost) + sorted(user, key=lambda p: p.name)

    def get(self, name: str) -> Prefab:
        """By name, or by file name without .yaml ('usd10' for '$10')."""
        return self._find(name, sum(self._load(), []))

    def _find(self, name: str, prefabs: list[Prefab]) -> Prefab:
        for p in prefabs:
            if name in (p.name, p.path.stem):
                return p
        for b in self._broken or []:
            if name == b.name or b.path.stem in (name, file_stem(name)):
                raise PrefabError(f"prefab {name!r}: cannot be used: {b.error}")
        hint = " (in a shell, quote names with $: '$10')" if not name or name.isdigit() else ""
        raise PrefabError(f"prefab {name!r}: not found: choose one of {', '.join(p.name for p in prefabs)}{hint}")

    def chain(self, name: str) -> list[Prefab]:
        """The prefab and its `extends` ancestors, root first."""
        return self._chain(self.get(name), sum(self._load(), []))

    def _chain(self, prefab: Prefab, all_prefabs: list[Prefab]) -> list[Prefab]:
        out = [prefab]
        while out[-1].extends is not None:
            try:
                parent = self._find(out[-1].extends, all_prefabs)
            except PrefabError as e:
                raise PrefabError(f"{out[-1].path}: extends: {e}") from None
            if parent in out:
                raise PrefabError(f"{out[-1].path}: extends: {parent.name!r} makes a cycle "
                                  f"({' -> '.join(p.name for p in out)} -> {parent.name}): break the loop")
            out.append(parent)
        return out[::-1]

    def resolve(self, name: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
        """Defaults <- extends chain <- prefab <- overrides, validated; dotted keys, typed values."""
        all_prefabs = sum(self._load(), [])
        return self._resolve_chain(self._find(name, all_prefabs), overrides or {}, all_prefabs)[0]

    def resolve_file(self, path: Path) -> dict[str, Any]:
        """Validate a config/prefab YAML that is not in the store (its `extends` may name a stored prefab)."""
        prefab = read_prefab_file(Path(path), require_name=False)
        return self._resolve_chain(prefab, {}, sum(self._load(), []))[0]

    def _resolve_chain(self, prefab: Prefab, overrides: dict[str, Any],
                       all_prefabs: list[Prefab]) -> tuple[dict[str, Any], list[Prefab]]:
        chain = self._chain(prefab, all_prefabs)
        values, origin = defaults(), {}
        for p in chain:
            values.update(p.values)
            origin.update({k: p.path for k in p.values})
        values.update(self.auth_flags())
        values.update(normalize_overrides(overrides))
        typed, issues = check(values)
        if issues and not overrides:  # the files alone are wrong: name the file to edit
            issues = [ConfigIssue(i.field, i.value, f"{origin[i.field]}: {i.message}") if i.field in origin else i
                      for i in issues]
        if issues:
            raise ConfigError(issues)
        return typed, chain

    def auth_flags(self) -> dict[str, bool]:
        if self._auth_flags is None:
            from nanochat_cli.services.secrets import SecretStore

            self._auth_flags = SecretStore().auth_flags
        return self._auth_flags()

    # ---- writing

    def save_as(self, new_name: str, from_name: str, overrides: dict[str, Any] | None = None,
                overwrite: bool = False, description: str | None = None) -> Path:
        """Write a user prefab: `from_name` + `overrides`, stored as the fields that differ from its parent.

        Raises PrefabExists when a user prefab of that name exists and overwrite is False; shipped prefabs
        are never written. The saved file resolves to exactly resolve(from_name, overrides).
        """
        _check_name(new_name)
        shipped, user = self._load()
        all_prefabs = shipped + user
        if any(new_name in (p.name, p.path.stem) for p in shipped):
            raise PrefabError(f"prefab {new_name!r}: shipped prefabs are read-only: save under another name")
        source = self._find(from_name, all_prefabs)
        target = self.user_dir / f"{file_stem(new_name)}.yaml"
        existing = next((p for p in user if new_name in (p.name, p.path.stem) or p.path == target), None)
        if existing is not None and not overwrite:
            raise PrefabExists(f"prefab {existing.name!r}: already exists ({existing.path}): confirm to overwrite "
                               "(--yes) or choose another name")
        if existing is None and not overwrite and target.exists():  # a broken file of that name: still the user's
            raise PrefabExists(f"prefab {new_name!r}: {target} exists (and cannot be read): confirm to overwrite "
                               "(--yes) or choose another name")
        resolved, chain = self._resolve_chain(source, overrides or {}, all_prefabs)
        if source.name != new_name and any(p.name == new_name for p in chain):
            raise PrefabError(f"prefab {new_name!r}: {source.name} extends it, so saving over it would make a cycle: "
                              "choose another name")
        # re-saving a prefab over itself keeps its parent; otherwise the source becomes the parent
        parent = source.extends if source.name == new_name else source.name
        base = self._resolve_chain(self._find(parent, all_prefabs), {}, all_prefabs)[0] if parent else check({})[0]
        own = {k: v for k, v in resolved.items() if not k.startswith("auth.") and v != base[k]}
        if existing is not None and existing.path != target:
            existing.path.unlink()
        doc: dict[str, Any] = {"name": new_name,
                               "description": description if description is not None else
                               (source.description if source.name == new_name else
                                f"{source.name} with {len(own)} change{'s' if len(own) != 1 else ''}"),
                               "extends": parent}
        doc.update(nest(own))
        text = f"# user prefab, written by nanochat-cli\n{yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)}"
        atomic_write(target, text)
        return target

    def delete(self, name: str) -> None:
        """Remove a user prefab; shipped ones and prefabs others extend are refused."""
        shipped, user = self._load()
        prefab = self._find(name, shipped + user)
        if prefab.shipped:
            raise PrefabError(f"prefab {prefab.name!r}: shipped prefabs are read-only: nothing to delete")
        children = [p.name for p in user if p.extends in (prefab.name, prefab.path.stem)]
        if children:
            raise PrefabError(f"prefab {prefab.name!r}: extended by {', '.join(children)}: delete or re-save those "
                              "first")
        prefab.path.unlink()
