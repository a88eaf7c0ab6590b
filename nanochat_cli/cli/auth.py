"""`nanochat-cli auth wandb|hf|status|forget`: secrets into and out of the keyring, never echoed."""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import TYPE_CHECKING

from nanochat_cli.cli.common import console, fail
from nanochat_cli.errors import AppError

if TYPE_CHECKING:
    from nanochat_cli.services.registry import Registry


def _read_secret(prompt: str, from_stdin: bool) -> str:
    value = sys.stdin.readline() if from_stdin else getpass.getpass(prompt)
    value = value.strip()
    if not value:
        raise AppError("no value entered: paste it at the prompt (input is hidden), or pipe it with --stdin")
    from nanochat_cli.services.masking import remember_secret

    remember_secret(value)  # masked in anything printed from here on, even if it is refused
    return value


def _store_secret(name: str, label: str, prompt: str, from_stdin: bool, validate) -> int:
    """Read a secret (hidden prompt or stdin), check it with `validate(value) -> (status, message)`, store
    it unless invalid, and say where it went."""
    from nanochat_cli.services.secrets import SecretStore

    value = _read_secret(prompt, from_stdin)
    status, message = validate(value)
    if status == "invalid":
        return fail(message)
    store = SecretStore()
    store.set(name, value)
    print(f"{label} {'saved and ' + message if status == 'verified' else message}")
    print("\n".join(store.backend_info().lines()))
    return 0


def cmd_auth_wandb(args: argparse.Namespace) -> int:
    from nanochat_cli.services.secrets import validate_wandb_key

    return _store_secret("wandb_api_key", "W&B key", "W&B API key (from https://wandb.ai/authorize; input hidden): ",
                         args.stdin, lambda key: validate_wandb_key(key, online_check=not args.no_verify,
                                                                    endpoint=args.endpoint))


def cmd_auth_hf(args: argparse.Namespace) -> int:
    from nanochat_cli.services.secrets import validate_hf_token

    return _store_secret("hf_token", "HF token",
                         "Hugging Face token (from https://huggingface.co/settings/tokens; input hidden): ",
                         args.stdin, validate_hf_token)


def cmd_auth_status(args: argparse.Namespace) -> int:
    from rich.table import Table

    from nanochat_cli.services.secrets import SecretStore

    store = SecretStore()
    table = Table(title="secrets (values are never shown)")
    table.add_column("secret")
    table.add_column("stored")
    table.add_column("set it with")
    for name, cmd in (("wandb_api_key", "nanochat-cli auth wandb"), ("hf_token", "nanochat-cli auth hf")):
        table.add_row(name, "yes" if store.is_set(name) else "no", cmd)
    con = console()
    con.print(table)
    for line in store.backend_info().lines():  # which backend, why, and how to get a system keyring
        con.print(line, markup=False)
    return 0


def cmd_auth_forget(args: argparse.Namespace) -> int:
    from nanochat_cli.services.secrets import SecretStore

    name = {"wandb": "wandb_api_key", "hf": "hf_token"}[args.which]
    SecretStore().delete(name)
    print(f"{name}: removed")
    return 0


# ---- parser

def setup_auth(auth: argparse.ArgumentParser) -> None:
    asub = auth.add_subparsers(dest="action", metavar="ACTION", required=True)
    sp = asub.add_parser("wandb", help="store a W&B API key (checked online when W&B is reachable)")
    sp.add_argument("--stdin", action="store_true", help="read the key from stdin instead of a hidden prompt")
    sp.add_argument("--no-verify", action="store_true", help="skip the online check")
    sp.add_argument("--endpoint", help="W&B server URL (default $WANDB_BASE_URL or https://api.wandb.ai)")
    sp.set_defaults(func=cmd_auth_wandb)
    sp = asub.add_parser("hf", help="store a Hugging Face token")
    sp.add_argument("--stdin", action="store_true", help="read the token from stdin instead of a hidden prompt")
    sp.set_defaults(func=cmd_auth_hf)
    asub.add_parser("status", help="which secrets are stored, where, and why there").set_defaults(
        func=cmd_auth_status)
    sp = asub.add_parser("forget", help="remove a stored secret")
    sp.add_argument("which", choices=["wandb", "hf"])
    sp.set_defaults(func=cmd_auth_forget)


def register(registry: Registry) -> None:
    registry.register_cli_command("auth", setup_auth, "store secrets in the system keyring, or a 0600 file where "
                                  "there is none (never shown or written to configs)", builtin=True)
