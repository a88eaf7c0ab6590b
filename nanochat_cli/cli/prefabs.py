"""`nanochat-cli prefabs list|show|diff|save-as|delete` and `nanochat-cli config validate`.

    nanochat-cli prefabs list | show NAME | diff NAME --set k=v ... | save-as NEW --from NAME --set k=v ... [--yes]
    nanochat-cli prefabs delete NAME [--yes]
    nanochat-cli config validate FILE
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from nanochat_cli.cli.common import (
    add_set_option,
    confirm,
    console,
    fail,
    hours,
    parse_sets,
    prefab_store,
    value,
)
from nanochat_cli.errors import USER_ERRORS
from nanochat_cli.formatting import count

if TYPE_CHECKING:
    from nanochat_cli.services.registry import Registry


def compat_rows(info) -> list[tuple[str, str]]:
    rows = [("hardware", info.hardware)]
    if info.device == "cuda":
        rows.append(("VRAM per GPU (est.)", f"{info.vram_gb_per_gpu:.1f} GB"))
    else:
        rows.append(("RAM, all processes (est.)", f"{info.ram_gb:.1f} GB"))
    rows += [
        ("parameters", f"{count(info.params)} ({count(info.scaling_params)} counted for the tokens:params ratio)"),
        ("model", f"model_dim {info.model_dim}, {info.n_head} heads, {info.n_kv_head} kv heads"),
        ("tokens", f"{count(info.tokens)} in {info.steps:,} steps (grad accum {info.grad_accum})"),
        ("FLOPs", f"{info.flops_per_token / 1e6:,.1f} M/token, {info.flops:.2e} total incl. evals"),
        ("throughput (est.)", f"{info.tokens_per_second:,.0f} tokens/s"),
        ("wall time (est.)", hours(info.est_hours)),
        ("cost (est.)", f"${info.est_cost_usd:,.2f}"),
        ("assumes", info.assumptions),
    ]
    return rows


# ---- prefabs

def cmd_prefabs_list(args: argparse.Namespace) -> int:
    from rich.table import Table
    from rich.text import Text

    from nanochat_cli.services.config.estimate import compat_matrix

    store = prefab_store()
    table = Table(title="prefabs (shipped: read-only; user: in " + str(store.user_dir) + ")")
    for col in ("prefab", "source", "hardware", "params", "tokens", "time (est.)", "cost (est.)", "description"):
        table.add_column(col, justify="right" if col in ("params", "tokens", "time (est.)", "cost (est.)") else "left")
    for p in store.list():
        source = "shipped" if p.shipped else "user" + (f" ← {p.extends}" if p.extends else "")
        try:
            info = compat_matrix(store.resolve(p.name))
            cells = (info.hardware, count(info.params), count(info.tokens), hours(info.est_hours),
                     f"${info.est_cost_usd:,.2f}")
        except USER_ERRORS as e:
            cells = (Text(f"invalid: {e}", style="red"), "", "", "", "")
        table.add_row(p.name, source, *cells, Text(p.description))  # file text is data, never markup
    for b in store.broken():  # files that cannot be used: listed with why, the others still work
        table.add_row(b.label, "shipped" if b.shipped else "user", Text(f"broken: {b.error}", style="red"),
                      "", "", "", "", "")
    console().print(table)
    return 0


def cmd_prefabs_show(args: argparse.Namespace) -> int:
    from rich.markup import escape
    from rich.table import Table

    from nanochat_cli.services.config.estimate import compat_matrix
    from nanochat_cli.services.config.guardrails import check_machine, detect_machine
    from nanochat_cli.services.config.schema import specs_by_category

    store = prefab_store()
    overrides = parse_sets(args.set)
    resolved = store.resolve(args.name, overrides)
    chain = store.chain(args.name)
    prefab = chain[-1]
    set_by = {k: p.name for p in chain for k in p.values} | {k: "--set" for k in overrides}
    con = console()
    kind = "shipped, read-only" if prefab.shipped else "user prefab"
    con.print(f"[bold]{prefab.name}[/bold]: {escape(prefab.description)}\n{escape(str(prefab.path))} ({kind})"
              + (f"; extends {' → '.join(p.name for p in chain[:-1][::-1])}" if len(chain) > 1 else ""))
    for category, specs in specs_by_category().items():
        table = Table(title=category, title_justify="left")
        for col in ("field", "value", "set by", "hot", "help"):
            table.add_column(col)
        for s in specs:
            table.add_row(s.name, value(resolved[s.key]), set_by.get(s.key, "derived" if s.readonly else "default"),
                          "yes" if s.hot else "", s.help)
        con.print(table)
    machine = detect_machine()
    info = compat_matrix(resolved, has_gpu=bool(machine.gpus))  # hardware.device=auto follows this machine
    table = Table(title="compatibility (computed from the config)", title_justify="left", show_header=False)
    table.add_column("what")
    table.add_column("estimate")
    for row in compat_rows(info):
        table.add_row(*row)
    con.print(table)
    rails = check_machine(resolved, machine)
    for g in rails:
        con.print(f"[{'red' if g.level == 'error' else 'yellow'}]{g.level}: {g.message}[/] — fix: {g.remedy}")
    if not rails:
        con.print("this machine can run it (no guardrail warnings)")
    return 0


def cmd_prefabs_diff(args: argparse.Namespace) -> int:
    from rich.table import Table

    from nanochat_cli.services.config.diff import diff

    store = prefab_store()
    overrides = parse_sets(args.set)
    rows = diff(store.resolve(args.name), store.resolve(args.name, overrides))
    if not rows:
        print(f"no differences from {args.name}")
        return 0
    table = Table(title=f"{args.name} vs your overrides")
    for col in ("category", "field", args.name, "now"):
        table.add_column(col)
    for r in rows:
        table.add_row(r.category, r.field, value(r.base), value(r.current))
    console().print(table)
    return 0


def cmd_prefabs_save_as(args: argparse.Namespace) -> int:
    from nanochat_cli.services.config.prefabs import PrefabExists

    store = prefab_store()
    overrides = parse_sets(args.set)
    try:
        path = store.save_as(args.new, args.source, overrides, overwrite=args.yes, description=args.description)
    except PrefabExists as e:
        if not sys.stdin.isatty():
            return fail(str(e))
        if not confirm(f"{e}\noverwrite it?"):
            print("not saved")
            return 1
        path = store.save_as(args.new, args.source, overrides, overwrite=True, description=args.description)
    print(f"saved prefab {args.new!r} to {path}")
    return 0


def cmd_prefabs_delete(args: argparse.Namespace) -> int:
    store = prefab_store()
    prefab = store.get(args.name)
    if not args.yes:
        if not sys.stdin.isatty():
            return fail(f"prefab {prefab.name!r}: deleting needs confirmation: pass --yes")
        if not confirm(f"delete prefab {prefab.name!r} ({prefab.path})?"):
            print("not deleted")
            return 1
    store.delete(args.name)
    print(f"deleted prefab {prefab.name!r}")
    return 0


# ---- config

def cmd_config_validate(args: argparse.Namespace) -> int:
    from nanochat_cli.services.config.estimate import compat_matrix

    resolved = prefab_store().resolve_file(args.file)
    info = compat_matrix(resolved)
    print(f"{args.file}: valid: {count(info.params)} params, {count(info.tokens)} tokens on {info.hardware}, "
          f"~{hours(info.est_hours)}, ~${info.est_cost_usd:,.2f}")
    return 0


# ---- parser

def setup_prefabs(prefabs: argparse.ArgumentParser) -> None:
    psub = prefabs.add_subparsers(dest="action", metavar="ACTION", required=True)
    psub.add_parser("list", help="all prefabs with their estimated size, time and cost").set_defaults(
        func=cmd_prefabs_list)
    sp = psub.add_parser("show", help="every field of a prefab, its compatibility matrix and machine checks")
    sp.add_argument("name", help="prefab name (quote names with $ in the shell: '$10')")
    add_set_option(sp)
    sp.set_defaults(func=cmd_prefabs_show)
    sp = psub.add_parser("diff", help="fields your overrides change, against the prefab")
    sp.add_argument("name")
    add_set_option(sp)
    sp.set_defaults(func=cmd_prefabs_diff)
    sp = psub.add_parser("save-as", help="save a prefab plus overrides as a new user prefab")
    sp.add_argument("new", help="name of the new prefab")
    sp.add_argument("--from", dest="source", required=True, help="prefab to start from")
    add_set_option(sp)
    sp.add_argument("--description", help="one line saying what the prefab is for")
    sp.add_argument("--yes", action="store_true", help="overwrite an existing user prefab without asking")
    sp.set_defaults(func=cmd_prefabs_save_as)
    sp = psub.add_parser("delete", help="delete a user prefab")
    sp.add_argument("name")
    sp.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    sp.set_defaults(func=cmd_prefabs_delete)


def setup_config(config: argparse.ArgumentParser) -> None:
    csub = config.add_subparsers(dest="action", metavar="ACTION", required=True)
    sp = csub.add_parser("validate", help="validate a prefab-format YAML file (category sections, optional extends)")
    sp.add_argument("file")
    sp.set_defaults(func=cmd_config_validate)


def register(registry: Registry) -> None:
    registry.register_cli_command("prefabs", setup_prefabs, "list, show, diff and save prefabs", builtin=True)
    registry.register_cli_command("config", setup_config, "check config files", builtin=True)
