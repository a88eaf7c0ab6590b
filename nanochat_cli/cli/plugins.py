"""`nanochat-cli plugins list|enable|disable`: what each plugin is, where it came from, what it added, and
whether it loaded.

    nanochat-cli plugins list [--json]
    nanochat-cli plugins disable NAME     not imported from the next start on (kept in <config dir>/plugins.yaml)
    nanochat-cli plugins enable NAME
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from nanochat_cli.cli.common import PLUGINS, console

if TYPE_CHECKING:
    from nanochat_cli.services.plugins import PluginInfo
    from nanochat_cli.services.registry import Registry

_KIND_ORDER = ("category", "panel", "layout", "source", "checkpoint field", "cli command", "screen")
_KIND_WORDS = {"category": "config categories", "panel": "panels", "layout": "layouts",
               "source": "telemetry sources", "checkpoint field": "checkpoint fields", "cli command": "CLI commands",
               "screen": "screens"}


def registered_text(registered: tuple[tuple[str, str], ...]) -> str:
    """[('panel', 'a'), ('panel', 'b'), ('layout', 'c')] -> 'panels: a, b; layouts: c'."""
    by_kind: dict[str, list[str]] = {}
    for kind, name in registered:
        by_kind.setdefault(kind, []).append(name)
    kinds = sorted(by_kind, key=lambda k: _KIND_ORDER.index(k) if k in _KIND_ORDER else len(_KIND_ORDER))
    return "; ".join(f"{_KIND_WORDS.get(k, k)}: {', '.join(by_kind[k])}" for k in kinds) or "-"


def _status_text(p: PluginInfo) -> str:
    if p.status == "failed":
        return f"[red]failed[/]: {p.error}"
    if p.status == "loaded":
        return "[green]loaded[/]"
    return f"[dim]disabled[/] (nanochat-cli plugins enable {p.name})"


def cmd_plugins_list(args: argparse.Namespace) -> int:
    from rich.markup import escape
    from rich.table import Table

    from nanochat_cli.services import paths
    from nanochat_cli.services.plugins import load_user_plugins
    from nanochat_cli.services.registry import REGISTRY

    PLUGINS.ensure(quiet=True)  # the table says what failed: no warning lines on top
    report = load_user_plugins(REGISTRY)  # loaded already: this only reads the outcome back
    if args.json:
        print(json.dumps([{"name": p.name, "source": p.source, "origin": p.origin, "status": p.status,
                           "error": p.error, "registered": [list(r) for r in p.registered]}
                          for p in report.plugins], indent=1))
        return 0
    con = console(160)
    if not report.plugins:
        con.print(f"no plugins found; put one in {paths.user_plugins_dir()} (see docs/plugins.md)")
        return 0
    table = Table(title=f"plugins (yours go in {paths.user_plugins_dir()})")
    for col in ("plugin", "source", "status", "registered"):
        table.add_column(col)
    for p in report.plugins:
        table.add_row(p.name, f"{p.source}\n[dim]{escape(p.origin)}[/]", _status_text(p),
                      escape(registered_text(p.registered)))
    con.print(table)
    return 0


def _switch(args: argparse.Namespace, enabled: bool) -> int:
    from nanochat_cli.errors import AppError
    from nanochat_cli.services import paths
    from nanochat_cli.services.plugins import disabled_plugins, find_plugins, set_plugin_enabled

    known = {c.name for c in find_plugins([paths.user_plugins_dir()])}
    if args.name not in known and (not enabled or args.name not in disabled_plugins()):
        raise AppError(f"plugin {args.name!r}: not found: `nanochat-cli plugins list` shows the plugins there are")
    changed = set_plugin_enabled(args.name, enabled)
    state = "enabled" if enabled else "disabled"
    if not changed:
        print(f"plugin {args.name} is already {state}")
    else:
        print(f"plugin {args.name} {state}: from the next start of nanochat-cli on (restart an open TUI)")
    return 0


def cmd_plugins_enable(args: argparse.Namespace) -> int:
    return _switch(args, True)


def cmd_plugins_disable(args: argparse.Namespace) -> int:
    return _switch(args, False)


def setup_plugins(plugins: argparse.ArgumentParser) -> None:
    psub = plugins.add_subparsers(dest="action", metavar="ACTION", required=True)
    sp = psub.add_parser("list", help="each plugin: where it came from, what it registered, loaded/failed/disabled")
    sp.add_argument("--json", action="store_true", help="machine-readable output")
    sp.set_defaults(func=cmd_plugins_list)
    sp = psub.add_parser("disable", help="stop loading a plugin (from the next start on)")
    sp.add_argument("name")
    sp.set_defaults(func=cmd_plugins_disable)
    sp = psub.add_parser("enable", help="load a disabled plugin again (from the next start on)")
    sp.add_argument("name")
    sp.set_defaults(func=cmd_plugins_enable)


def register(registry: Registry) -> None:
    registry.register_cli_command("plugins", setup_plugins, "list plugins and switch them on or off", builtin=True)
