"""`nanochat-cli`: the argument parser and entry point; bare, it opens the TUI.

    nanochat-cli prefabs ... | config validate FILE      (cli/prefabs.py)
    nanochat-cli train ... | runs ...                     (cli/runs.py)
    nanochat-cli checkpoints ... | chat ... | eval ...    (cli/checkpoints.py)
    nanochat-cli auth wandb | hf | status | forget         (cli/auth.py)

Errors are one line on stderr, `nanochat-cli: error: <field/file>: <problem>: <fix>`, exit code 2.
Importing this module stays cheap (no torch, no textual, no pydantic): each command imports what it uses.
"""

from __future__ import annotations

import argparse
import os
import sys

from engine import __version__
from engine.errors import EngineError
from nanochat_cli.cli import auth, checkpoints, prefabs, runs  # cheap: imports live inside the commands
from nanochat_cli.cli.common import PROG, fail


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description="Configure, launch and watch nanochat-style GPT training. "
                                                       "With no command, opens the terminal UI.")
    p.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    for module in (prefabs, runs, checkpoints, auth):
        module.register(sub)
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
            fail(getattr(issue, "message", str(issue)))
        return 2
    except OSError as e:
        return fail(f"{e.filename or 'file'}: {e.strerror or e}: check the path and its permissions")
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130
    except Exception as e:  # a bug: one line by default, the traceback with NANOCHAT_CLI_DEBUG=1
        if os.environ.get("NANOCHAT_CLI_DEBUG"):
            raise
        return fail(f"internal error ({type(e).__name__}: {e}): rerun with NANOCHAT_CLI_DEBUG=1 and report it")
