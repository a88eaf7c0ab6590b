"""What every CLI command module shares: the error line, the console, the prefab store, `--set` parsing,
confirmation prompts and number formatting.

Public on purpose: command modules (and plugin commands) import these instead of each other's privates.
Cheap to import (no torch, textual, pydantic or rich at module level): each helper imports what it uses.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

PROG = "nanochat-cli"


def fail(message: str) -> int:
    """Print `nanochat-cli: error: <message>` on stderr, known secrets masked (an error may quote a bad key or
    an exception); returns the usage-error exit code (2)."""
    from nanochat_cli.services.masking import mask

    print(f"{PROG}: error: {mask(message)}", file=sys.stderr)
    return 2


def warn(message: str) -> None:
    print(f"{PROG}: warning: {message}", file=sys.stderr)


def console(pipe_width: int = 120) -> Any:
    """A rich Console: the terminal's width, or `pipe_width` columns when stdout is not a terminal."""
    from rich.console import Console

    return Console(width=None if sys.stdout.isatty() else pipe_width, highlight=False)


class Plugins:
    """Loads the user's plugins into the registry at most once per command, and only for commands that use
    what plugins add (config categories, checkpoint fields, their own commands): `auth` or `runs list` stay
    quick. A plugin that failed is named in one warning line per command."""

    def __init__(self) -> None:
        self.loaded = False

    def reset(self) -> None:
        """A new command starts (main() calls this; tests run many commands in one process)."""
        self.loaded = False

    def ensure(self, quiet: bool = False) -> None:
        if self.loaded:
            return
        from nanochat_cli.services.plugins import load_user_plugins
        from nanochat_cli.services.registry import REGISTRY

        report = load_user_plugins(REGISTRY)
        self.loaded = True
        if not quiet:
            for name, error in report.failed:
                warn(f"plugin {name} failed to load: {error} (nanochat-cli plugins list)")


PLUGINS = Plugins()


def prefab_store() -> Any:
    """The prefab store, with plugins loaded first: their config categories are part of every prefab."""
    from nanochat_cli.services.config.prefabs import PrefabStore

    PLUGINS.ensure()
    return PrefabStore()


def add_set_option(parser: argparse.ArgumentParser) -> None:
    """`--set KEY=VALUE ...` (repeatable), read back with `parse_sets(args.set)`."""
    parser.add_argument("--set", nargs="+", action="extend", metavar="KEY=VALUE",
                        help="override a field: category.field=value, or field=value when unambiguous")


def parse_sets(items: list[str] | None) -> dict[str, Any]:
    """['model.depth=6', 'depth=6', ...] -> {'model.depth': 6}; every bad item is reported (ConfigError)."""
    from nanochat_cli.services.config.schema import ConfigError, ConfigIssue, parse_value, resolve_key, spec_for

    out: dict[str, Any] = {}
    issues: list[ConfigIssue] = []
    for item in items or []:
        key, sep, text = item.partition("=")
        if not sep or not key:
            issues.append(ConfigIssue(item, None, f"--set {item}: expected key=value: e.g. --set model.depth=6"))
            continue
        try:
            dotted = resolve_key(key.strip())
            out[dotted] = parse_value(spec_for(dotted), text)
        except ConfigError as e:
            issues.extend(e.issues)
        except ValueError as e:
            issues.append(ConfigIssue(key, text, str(e)))
    if issues:
        raise ConfigError(issues)
    return out


def confirm(question: str) -> bool:
    """Ask a yes/no question on the terminal; anything but y/yes (or no stdin at all) is no."""
    try:
        return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")
    except EOFError:
        return False


# ---- formatting

def hours(h: float) -> str:
    """An estimated wall time given in hours: '42 min', '3.5 h', '120 h (5.0 days)'."""
    if h < 1:
        return f"{h * 60:.0f} min"
    return f"{h:.1f} h" if h < 48 else f"{h:.0f} h ({h / 24:.1f} days)"


def value(v: Any) -> str:
    """A config value as typed on the command line: none, true/false, or its text."""
    if v is None:
        return "none"
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)
