"""`nanochat-cli`: the argument parser and entry point; bare, it opens the TUI.

    nanochat-cli prefabs ... | config validate FILE      (cli/prefabs.py)
    nanochat-cli train ... | runs ...                     (cli/runs.py)
    nanochat-cli pipeline ...                             (cli/pipeline.py)
    nanochat-cli checkpoints ... | chat ... | eval ...    (cli/checkpoints.py)
    nanochat-cli auth wandb | hf | status | forget         (cli/auth.py)
    nanochat-cli plugins list | enable | disable          (cli/plugins.py)
    nanochat-cli <a plugin's command> ...                 (docs/plugins.md: registry.register_cli_command)

Every command, built in or from a plugin, is a `CliCommand` in the registry; the parser is built from
there. Plugins are loaded before parsing for `--help` and for a command that is not built in (it may be a
plugin's); a built-in command loads them when it needs what they add (`common.PLUGINS`, e.g. through
`prefab_store()`), so `auth` or `runs list` stay quick. A bare start leaves them to the TUI.
Errors are one line on stderr, `nanochat-cli: error: <field/file>: <problem>: <fix>`, exit code 2.
Importing this module stays cheap (no torch, no textual, no pydantic): each command imports what it uses.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
from collections.abc import Callable
from typing import Any

from engine import __version__
from nanochat_cli.cli import auth, checkpoints, pipeline, plugins, prefabs, runs
from nanochat_cli.cli.common import PLUGINS, PROG, fail
from nanochat_cli.errors import USER_ERRORS
from nanochat_cli.services.registry import REGISTRY, Registry
from nanochat_cli.startup_trace import stamp

BUILTIN_MODULES = (prefabs, runs, pipeline, checkpoints, auth, plugins)  # in the order `--help` lists them


def register_builtin_commands(registry: Registry) -> None:
    """The CLI's own commands, registered once per registry (before plugins, so theirs cannot take a name)."""
    if registry.cli_command("prefabs") is None:
        for module in BUILTIN_MODULES:
            module.register(registry)


def _broken(message: str) -> Callable[[argparse.Namespace], int]:
    return lambda args: fail(message)


def build_parser(registry: Registry = REGISTRY) -> argparse.ArgumentParser:
    register_builtin_commands(registry)
    p = argparse.ArgumentParser(prog=PROG, description="Configure, launch and watch nanochat-style GPT training. "
                                                       "With no command, opens the terminal UI.")
    p.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for command in registry.cli_commands():
        sp = sub.add_parser(command.name, help=command.help, description=command.help)
        if command.builtin:
            command.setup(sp)
            continue
        plugin = registry.owner("cli command", command.name) or "?"
        try:
            command.setup(sp)
        except Exception as e:  # a plugin's bad argparse setup must not take the whole CLI down
            sp.set_defaults(func=_broken(f"plugin {plugin}: command {command.name!r} could not be set up "
                                         f"({type(e).__name__}: {e}): fix its setup(parser)"))
        else:
            sp.set_defaults(_plugin=plugin)
    return p


def _run(args: argparse.Namespace) -> int:
    func: Any = getattr(args, "func", None)
    if func is None:  # only a plugin command can get here: ours all set one
        plugin = getattr(args, "_plugin", "?")
        return fail(f"plugin {plugin}: command {args.command!r} has no handler: call parser.set_defaults(func=...) "
                    "in its setup(parser)")
    code = func(args)
    return 0 if code is None else int(code)


def _quiet_logs() -> None:
    """No log records on the terminal (a plugin's traceback, say): the CLI says what matters in one line.
    NANOCHAT_CLI_DEBUG=1 lets warnings and their tracebacks through to stderr."""
    logger = logging.getLogger("nanochat_cli")
    if not os.environ.get("NANOCHAT_CLI_DEBUG") and not any(isinstance(h, logging.NullHandler)
                                                             for h in logger.handlers):
        logger.addHandler(logging.NullHandler())


def main(argv: list[str] | None = None) -> int:
    stamp("interpreter + CLI imported")
    argv = sys.argv[1:] if argv is None else list(argv)
    _quiet_logs()
    register_builtin_commands(REGISTRY)
    PLUGINS.reset()
    builtin = bool(argv) and (argv[0] == "--version" or REGISTRY.cli_command(argv[0]) is not None)
    if argv and not builtin:  # --help or a plugin's command: the parser needs every plugin's commands
        try:
            PLUGINS.ensure()
        except USER_ERRORS as e:
            return fail(str(e))
    parser = build_parser(REGISTRY)
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version and usage errors (argparse already printed them)
        return e.code if isinstance(e.code, int) else 2
    if args.command is None:
        from nanochat_cli.app import run_app

        stamp("app modules imported")
        return run_app()
    from nanochat_cli.services.masking import masked_std_streams

    with masked_std_streams():  # known secrets never reach the terminal, tracebacks included
        return _run_reporting(args)


def _run_reporting(args: argparse.Namespace) -> int:
    """Run the command; a user error or a bug becomes one line on stderr (a masked traceback when debugging)."""
    try:
        return _run(args)
    except USER_ERRORS as e:
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
            traceback.print_exc()  # into the masked stderr (a re-raise would print it after the mask is gone)
            return 1
        return fail(f"internal error ({type(e).__name__}: {e}): rerun with NANOCHAT_CLI_DEBUG=1 and report it")
