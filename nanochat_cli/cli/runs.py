"""`nanochat-cli train` and `nanochat-cli runs list|attach|stop|save|patch|command`.

    nanochat-cli train --prefab cpu-tiny [--set k=v ...] [--name RUN] [--resume] [--headless]
    nanochat-cli runs list
    nanochat-cli runs attach RUN          follow a run (replays its history, then live; Ctrl-C detaches)
    nanochat-cli runs save RUN            ask it to checkpoint now
    nanochat-cli runs patch RUN k=v ...   change hot-patchable fields mid-run
    nanochat-cli runs stop RUN            graceful stop (save, exit), escalating to signals, until every
                                          process of the run is gone
    nanochat-cli runs command --prefab NAME   print the torchrun command(s), one per node, runnable as is

Registered into the main parser by `cli/main.py`; imports stay inside the commands, the logic in
`nanochat_cli.services.runs`.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import TYPE_CHECKING, Any

from nanochat_cli.cli.common import add_set_option, parse_sets, prefab_store

if TYPE_CHECKING:
    from nanochat_cli.services.registry import Registry


def _orchestrator():
    from nanochat_cli.services.paths import base_dir
    from nanochat_cli.services.runs import RunOrchestrator

    return RunOrchestrator(base_dir())


def _resolved(args: argparse.Namespace) -> dict[str, Any]:
    from nanochat_cli.services.config.schema import ConfigError, validate_overrides

    store = prefab_store()
    overrides = parse_sets(args.set)
    if getattr(args, "name", None):
        overrides["run.name"] = args.name
    base = store.resolve(args.prefab)
    issues = validate_overrides(base, overrides)
    if issues:
        raise ConfigError(issues)
    return store.resolve(args.prefab, overrides)


def cmd_train(args: argparse.Namespace) -> int:
    from nanochat_cli.services.runs import specs_from_resolved

    resolved = _resolved(args)
    specs = specs_from_resolved(resolved)
    if args.resume:
        for spec in specs:
            if "resume" in type(spec.config).model_fields:
                spec.config = spec.config.model_copy(update={"resume": True})
    if len(specs) > 1:  # eval: its modules one after the other, each followed to its end
        from nanochat_cli.headless import run_headless

        orch = _orchestrator()
        for spec in specs:
            code = run_headless(orch, spec)
            if code != 0:
                return code
        return 0
    spec = specs[0]
    if not args.headless and sys.stdout.isatty() and sys.stdin.isatty():
        from nanochat_cli.app import run_app  # the TUI starts the job itself and opens the Train tab

        return run_app(start_run=spec, start_config=resolved)
    from nanochat_cli.headless import run_headless

    return run_headless(_orchestrator(), spec)


def cmd_runs_list(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from nanochat_cli.services.text import duration, printable

    runs = _orchestrator().list_runs()
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 140)
    if not runs:
        console.print("no runs yet: start one with `nanochat-cli train --prefab cpu-tiny`")
        return 0
    table = Table("run", "status", "step", "loss", "val bpb", "duration", "started")
    for r in runs:
        started = time.strftime("%Y-%m-%d %H:%M", time.localtime(r.started)) if r.started else "-"
        table.add_row(Text(printable(r.name, newlines=False)), r.status,
                      f"{r.step}/{r.total}" if r.total else str(r.step),
                      f"{r.loss:.4f}" if r.loss is not None else "-",
                      f"{r.val_bpb:.4f}" if r.val_bpb is not None else "-", duration(r.elapsed), started)
    console.print(table)
    return 0


def cmd_runs_attach(args: argparse.Namespace) -> int:
    from rich.console import Console

    from nanochat_cli.headless import follow

    orch = _orchestrator()
    orch.run_dir(args.run)  # a clear error for an unknown run
    try:
        code = follow(orch, args.run, Console(highlight=False), detach_on_broken_pipe=True)
    except KeyboardInterrupt:
        print(f"detached; the run goes on (runs stop {args.run} to stop it)", file=sys.stderr)
        return 130
    return code if code is not None else 0


def cmd_runs_save(args: argparse.Namespace) -> int:
    request_id = _orchestrator().save_now(args.run)
    print(f"save requested ({request_id}); the checkpoint event appears in the run's telemetry")
    return 0


def cmd_runs_patch(args: argparse.Namespace) -> int:
    from engine.config import HOT_PATCHABLE, TrainConfig

    changes: dict[str, Any] = {}
    for item in args.changes:
        key, sep, value = item.partition("=")
        key = key.split(".")[-1].strip()
        if not sep or key not in TrainConfig.model_fields:
            hot = ", ".join(sorted(HOT_PATCHABLE))
            print(f"nanochat-cli: error: {item}: expected FIELD=VALUE with a hot field ({hot})", file=sys.stderr)
            return 2
        changes[key] = value
    request_id = _orchestrator().patch(args.run, changes)
    print(f"patch sent ({request_id}); the engine validates it and answers with a control_ack event")
    return 0


def cmd_runs_stop(args: argparse.Namespace) -> int:
    result = _orchestrator().stop(args.run, graceful_timeout=args.timeout)
    code = f" (exit code {result.exit_code})" if result.exit_code is not None else ""
    if not result.stopped:
        pids = ", ".join(map(str, result.survivors))
        print(f"nanochat-cli: error: run {args.run}: NOT stopped: pid(s) {pids} still alive after SIGKILL: "
              "check them with `ps -o pid,stat,cmd -p PID` (a process in D state waits on the kernel)",
              file=sys.stderr)
        return 1
    print(f"run {args.run}: " + ("stopped" if result.was_running else "was not running") + code)
    return 0


def cmd_runs_command(args: argparse.Namespace) -> int:
    from nanochat_cli.services.runs import preview_commands, specs_from_resolved

    for spec in specs_from_resolved(_resolved(args)):
        for rank, line in enumerate(preview_commands(spec)):
            print(f"# node {rank}\n{line}" if spec.nnodes > 1 else line)
    return 0


def setup_train(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--prefab", default="cpu-tiny", help="prefab to start from (default: cpu-tiny)")
    add_set_option(sp)
    sp.add_argument("--name", help="run name (a taken name gets a -2, -3 … suffix)")
    sp.add_argument("--resume", action="store_true", help="continue the run's latest checkpoint")
    sp.add_argument("--headless", action="store_true", help="no TUI: a progress bar (plain lines when piped)")
    sp.set_defaults(func=cmd_train)


def setup_runs(runs: argparse.ArgumentParser) -> None:
    rsub = runs.add_subparsers(dest="action", metavar="ACTION", required=True)
    rsub.add_parser("list", help="past and running runs with status, loss and duration").set_defaults(
        func=cmd_runs_list)
    for name, func, help_ in [("attach", cmd_runs_attach, "follow a run: its history, then live"),
                              ("save", cmd_runs_save, "ask a running job to save a checkpoint now")]:
        p = rsub.add_parser(name, help=help_)
        p.add_argument("run")
        p.set_defaults(func=func)
    p = rsub.add_parser("patch", help="change hot-patchable fields of a running job")
    p.add_argument("run")
    p.add_argument("changes", nargs="+", metavar="FIELD=VALUE")
    p.set_defaults(func=cmd_runs_patch)
    p = rsub.add_parser("stop", help="graceful stop: save, exit; then SIGINT/SIGTERM/SIGKILL after timeouts, "
                                     "until every process of the run is gone")
    p.add_argument("run")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the graceful stop")
    p.set_defaults(func=cmd_runs_stop)
    p = rsub.add_parser("command", help="print the torchrun command for a prefab (one per node)")
    p.add_argument("--prefab", default="cpu-tiny")
    add_set_option(p)
    p.set_defaults(func=cmd_runs_command, name=None)


def register(registry: Registry) -> None:
    registry.register_cli_command("train", setup_train, "launch training from a prefab (TUI on a terminal, "
                                  "--headless for scripts)", builtin=True)
    registry.register_cli_command("runs", setup_runs, "list, follow and steer training runs", builtin=True)
