"""`nanochat-cli`: prefabs, config validation and secrets from the command line; bare, it opens the TUI.

    nanochat-cli prefabs list | show NAME | diff NAME --set k=v ... | save-as NEW --from NAME --set k=v ... [--yes]
    nanochat-cli config validate FILE
    nanochat-cli auth wandb | hf | status | forget wandb|hf
    nanochat-cli train ... | runs ...   (see nanochat_cli/cli/runs.py)
    nanochat-cli checkpoints list|delete ... | chat ... | eval ...   (see nanochat_cli/cli/checkpoints.py)

Errors are one line on stderr, `nanochat-cli: error: <field/file>: <problem>: <fix>`, exit code 2.
Importing this module stays cheap (no torch, no textual, no pydantic): each command imports what it uses.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from typing import Any

from engine import __version__
from engine.errors import EngineError

PROG = "nanochat-cli"


def _fail(message: str) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return 2


def _console():
    from rich.console import Console

    return Console(width=None if sys.stdout.isatty() else 120, highlight=False)


def _store():
    from nanochat_cli.services.config.prefabs import PrefabStore

    return PrefabStore()


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


# ---- formatting

def _count(n: float) -> str:
    for div, unit in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= div:
            return f"{n / div:.1f}{unit}"
    return f"{n:.0f}"


def _duration(hours: float) -> str:
    if hours < 1:
        return f"{hours * 60:.0f} min"
    return f"{hours:.1f} h" if hours < 48 else f"{hours:.0f} h ({hours / 24:.1f} days)"


def _value(v: Any) -> str:
    if v is None:
        return "none"
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _compat_rows(info) -> list[tuple[str, str]]:
    rows = [("hardware", info.hardware)]
    if info.device == "cuda":
        rows.append(("VRAM per GPU (est.)", f"{info.vram_gb_per_gpu:.1f} GB"))
    else:
        rows.append(("RAM, all processes (est.)", f"{info.ram_gb:.1f} GB"))
    rows += [
        ("parameters", f"{_count(info.params)} ({_count(info.scaling_params)} counted for the tokens:params ratio)"),
        ("model", f"model_dim {info.model_dim}, {info.n_head} heads, {info.n_kv_head} kv heads"),
        ("tokens", f"{_count(info.tokens)} in {info.steps:,} steps (grad accum {info.grad_accum})"),
        ("FLOPs", f"{info.flops_per_token / 1e6:,.1f} M/token, {info.flops:.2e} total incl. evals"),
        ("throughput (est.)", f"{info.tokens_per_second:,.0f} tokens/s"),
        ("wall time (est.)", _duration(info.est_hours)),
        ("cost (est.)", f"${info.est_cost_usd:,.2f}"),
        ("assumes", info.assumptions),
    ]
    return rows


# ---- prefabs

def cmd_prefabs_list(args: argparse.Namespace) -> int:
    from rich.table import Table

    from nanochat_cli.services.config.estimate import compat_matrix

    store = _store()
    table = Table(title="prefabs (shipped: read-only; user: in " + str(store.user_dir) + ")")
    for col in ("prefab", "source", "hardware", "params", "tokens", "time (est.)", "cost (est.)", "description"):
        table.add_column(col, justify="right" if col in ("params", "tokens", "time (est.)", "cost (est.)") else "left")
    for p in store.list():
        source = "shipped" if p.shipped else "user" + (f" ← {p.extends}" if p.extends else "")
        try:
            info = compat_matrix(store.resolve(p.name))
            cells = (info.hardware, _count(info.params), _count(info.tokens), _duration(info.est_hours),
                     f"${info.est_cost_usd:,.2f}")
        except EngineError as e:
            cells = (f"[red]invalid: {e}[/red]", "", "", "", "")
        table.add_row(p.name, source, *cells, p.description)
    _console().print(table)
    return 0


def cmd_prefabs_show(args: argparse.Namespace) -> int:
    from rich.table import Table

    from nanochat_cli.services.config.estimate import compat_matrix
    from nanochat_cli.services.config.guardrails import check_machine, detect_machine
    from nanochat_cli.services.config.schema import specs_by_category

    store = _store()
    overrides = parse_sets(args.set)
    resolved = store.resolve(args.name, overrides)
    chain = store.chain(args.name)
    prefab = chain[-1]
    set_by = {k: p.name for p in chain for k in p.values} | {k: "--set" for k in overrides}
    con = _console()
    kind = "shipped, read-only" if prefab.shipped else "user prefab"
    con.print(f"[bold]{prefab.name}[/bold]: {prefab.description}\n{prefab.path} ({kind})"
              + (f"; extends {' → '.join(p.name for p in chain[:-1][::-1])}" if len(chain) > 1 else ""))
    for category, specs in specs_by_category().items():
        table = Table(title=category, title_justify="left")
        for col in ("field", "value", "set by", "hot", "help"):
            table.add_column(col)
        for s in specs:
            table.add_row(s.name, _value(resolved[s.key]), set_by.get(s.key, "derived" if s.readonly else "default"),
                          "yes" if s.hot else "", s.help)
        con.print(table)
    machine = detect_machine()
    info = compat_matrix(resolved, has_gpu=bool(machine.gpus))  # hardware.device=auto follows this machine
    table = Table(title="compatibility (computed from the config)", title_justify="left", show_header=False)
    table.add_column("what")
    table.add_column("estimate")
    for row in _compat_rows(info):
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

    store = _store()
    overrides = parse_sets(args.set)
    rows = diff(store.resolve(args.name), store.resolve(args.name, overrides))
    if not rows:
        print(f"no differences from {args.name}")
        return 0
    table = Table(title=f"{args.name} vs your overrides")
    for col in ("category", "field", args.name, "now"):
        table.add_column(col)
    for r in rows:
        table.add_row(r.category, r.field, _value(r.base), _value(r.current))
    _console().print(table)
    return 0


def _confirm(question: str) -> bool:
    try:
        return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")
    except EOFError:
        return False


def cmd_prefabs_save_as(args: argparse.Namespace) -> int:
    from nanochat_cli.services.config.prefabs import PrefabExists

    store = _store()
    overrides = parse_sets(args.set)
    try:
        path = store.save_as(args.new, args.source, overrides, overwrite=args.yes, description=args.description)
    except PrefabExists as e:
        if not sys.stdin.isatty():
            return _fail(str(e))
        if not _confirm(f"{e}\noverwrite it?"):
            print("not saved")
            return 1
        path = store.save_as(args.new, args.source, overrides, overwrite=True, description=args.description)
    print(f"saved prefab {args.new!r} to {path}")
    return 0


def cmd_prefabs_delete(args: argparse.Namespace) -> int:
    store = _store()
    prefab = store.get(args.name)
    if not args.yes:
        if not sys.stdin.isatty():
            return _fail(f"prefab {prefab.name!r}: deleting needs confirmation: pass --yes")
        if not _confirm(f"delete prefab {prefab.name!r} ({prefab.path})?"):
            print("not deleted")
            return 1
    store.delete(args.name)
    print(f"deleted prefab {prefab.name!r}")
    return 0


# ---- config

def cmd_config_validate(args: argparse.Namespace) -> int:
    from nanochat_cli.services.config.estimate import compat_matrix

    resolved = _store().resolve_file(args.file)
    info = compat_matrix(resolved)
    print(f"{args.file}: valid: {_count(info.params)} params, {_count(info.tokens)} tokens on {info.hardware}, "
          f"~{_duration(info.est_hours)}, ~${info.est_cost_usd:,.2f}")
    return 0


# ---- auth

def _read_secret(prompt: str, from_stdin: bool) -> str:
    value = sys.stdin.readline() if from_stdin else getpass.getpass(prompt)
    value = value.strip()
    if not value:
        raise EngineError("no value entered: paste it at the prompt (input is hidden), or pipe it with --stdin")
    return value


def cmd_auth_wandb(args: argparse.Namespace) -> int:
    from nanochat_cli.services.secrets import SecretStore, validate_wandb_key

    key = _read_secret("W&B API key (from https://wandb.ai/authorize; input hidden): ", args.stdin)
    status, message = validate_wandb_key(key, online_check=not args.no_verify, endpoint=args.endpoint)
    if status == "invalid":
        return _fail(message)
    store = SecretStore()
    store.set("wandb_api_key", key)
    print(f"W&B key {'saved and ' + message if status == 'verified' else message}; stored in {store.backend_name()}")
    return 0


def cmd_auth_hf(args: argparse.Namespace) -> int:
    from nanochat_cli.services.secrets import SecretStore, validate_hf_token

    token = _read_secret("Hugging Face token (from https://huggingface.co/settings/tokens; input hidden): ",
                         args.stdin)
    status, message = validate_hf_token(token)
    if status == "invalid":
        return _fail(message)
    store = SecretStore()
    store.set("hf_token", token)
    print(f"HF token {message}; stored in {store.backend_name()}")
    return 0


def cmd_auth_status(args: argparse.Namespace) -> int:
    from rich.table import Table

    from nanochat_cli.services.secrets import SecretStore

    store = SecretStore()
    table = Table(title=f"secrets (values are never shown) — {store.backend_name()}")
    table.add_column("secret")
    table.add_column("stored")
    table.add_column("set it with")
    for name, cmd in (("wandb_api_key", "nanochat-cli auth wandb"), ("hf_token", "nanochat-cli auth hf")):
        table.add_row(name, "yes" if store.is_set(name) else "no", cmd)
    _console().print(table)
    return 0


def cmd_auth_forget(args: argparse.Namespace) -> int:
    from nanochat_cli.services.secrets import SecretStore

    name = {"wandb": "wandb_api_key", "hf": "hf_token"}[args.which]
    SecretStore().delete(name)
    print(f"{name}: removed")
    return 0


# ---- parser and entry point

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description="Configure, launch and watch nanochat-style GPT training. "
                                                       "With no command, opens the terminal UI.")
    p.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def with_sets(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--set", nargs="+", action="extend", metavar="KEY=VALUE",
                        help="override a field: category.field=value, or field=value when unambiguous")

    prefabs = sub.add_parser("prefabs", help="list, show, diff and save prefabs")
    psub = prefabs.add_subparsers(dest="action", metavar="ACTION", required=True)
    psub.add_parser("list", help="all prefabs with their estimated size, time and cost").set_defaults(
        func=cmd_prefabs_list)
    sp = psub.add_parser("show", help="every field of a prefab, its compatibility matrix and machine checks")
    sp.add_argument("name", help="prefab name (quote names with $ in the shell: '$10')")
    with_sets(sp)
    sp.set_defaults(func=cmd_prefabs_show)
    sp = psub.add_parser("diff", help="fields your overrides change, against the prefab")
    sp.add_argument("name")
    with_sets(sp)
    sp.set_defaults(func=cmd_prefabs_diff)
    sp = psub.add_parser("save-as", help="save a prefab plus overrides as a new user prefab")
    sp.add_argument("new", help="name of the new prefab")
    sp.add_argument("--from", dest="source", required=True, help="prefab to start from")
    with_sets(sp)
    sp.add_argument("--description", help="one line saying what the prefab is for")
    sp.add_argument("--yes", action="store_true", help="overwrite an existing user prefab without asking")
    sp.set_defaults(func=cmd_prefabs_save_as)
    sp = psub.add_parser("delete", help="delete a user prefab")
    sp.add_argument("name")
    sp.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    sp.set_defaults(func=cmd_prefabs_delete)

    config = sub.add_parser("config", help="check config files")
    csub = config.add_subparsers(dest="action", metavar="ACTION", required=True)
    sp = csub.add_parser("validate", help="validate a prefab-format YAML file (category sections, optional extends)")
    sp.add_argument("file")
    sp.set_defaults(func=cmd_config_validate)

    from nanochat_cli.cli import runs  # train / runs commands (cheap: its imports live inside the commands)

    runs.register(sub, with_sets)
    from nanochat_cli.cli import checkpoints  # checkpoints / chat / eval commands (imports inside the commands)

    checkpoints.register(sub, with_sets)

    auth = sub.add_parser("auth", help="store secrets in the keyring (never shown or written to configs)")
    asub = auth.add_subparsers(dest="action", metavar="ACTION", required=True)
    sp = asub.add_parser("wandb", help="store a W&B API key (checked online when W&B is reachable)")
    sp.add_argument("--stdin", action="store_true", help="read the key from stdin instead of a hidden prompt")
    sp.add_argument("--no-verify", action="store_true", help="skip the online check")
    sp.add_argument("--endpoint", help="W&B server URL (default $WANDB_BASE_URL or https://api.wandb.ai)")
    sp.set_defaults(func=cmd_auth_wandb)
    sp = asub.add_parser("hf", help="store a Hugging Face token")
    sp.add_argument("--stdin", action="store_true", help="read the token from stdin instead of a hidden prompt")
    sp.set_defaults(func=cmd_auth_hf)
    asub.add_parser("status", help="which secrets are stored, and where").set_defaults(func=cmd_auth_status)
    sp = asub.add_parser("forget", help="remove a stored secret")
    sp.add_argument("which", choices=["wandb", "hf"])
    sp.set_defaults(func=cmd_auth_forget)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version and usage errors (argparse already printed them)
        return e.code if isinstance(e.code, int) else 2
    if args.command is None:
        from nanochat_cli.app import run_app

        return run_app()
    try:
        return args.func(args)
    except EngineError as e:
        for issue in getattr(e, "issues", None) or [e]:
            _fail(getattr(issue, "message", str(issue)))
        return 2
    except OSError as e:
        return _fail(f"{e.filename or 'file'}: {e.strerror or e}: check the path and its permissions")
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130
    except Exception as e:  # a bug: one line by default, the traceback with NANOCHAT_CLI_DEBUG=1
        if os.environ.get("NANOCHAT_CLI_DEBUG"):
            raise
        return _fail(f"internal error ({type(e).__name__}: {e}): rerun with NANOCHAT_CLI_DEBUG=1 and report it")
