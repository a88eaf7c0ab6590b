"""`nanochat-cli pipeline`: base → SFT → RL → eval in one go, resumable, ending in a markdown report.

    nanochat-cli pipeline --prefab cpu-tiny [--set k=v | stage:k=v ...] [--stages base,sft,rl,eval]
                          [--new] [--headless]
    nanochat-cli pipeline --report [NAME]     print a pipeline's report (the newest by default)

Re-running the same command continues the unfinished pipeline of that prefab: finished stages are skipped,
an interrupted one resumes from its checkpoint. Ctrl-C stops the stage running (a second Ctrl-C kills it)
and starts nothing more. On a terminal without --headless the TUI opens and shows each stage live. The
logic is in nanochat_cli.services.pipeline.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from nanochat_cli.cli.common import PROG, prefab_store

if TYPE_CHECKING:
    from nanochat_cli.services.registry import Registry

EXIT = {"finished": 0, "stopped": 130, "failed": 1, "running": 1}


def parse_pipeline_sets(items: list[str] | None) -> dict[str, Any]:
    """--set k=v (every stage) and stage:k=v (that stage only), each checked like `train --set`."""
    from nanochat_cli.cli.common import parse_sets
    from nanochat_cli.errors import AppError
    from nanochat_cli.services.config.schema import STAGES

    out: dict[str, Any] = {}
    for item in items or []:
        stage, sep, rest = item.partition(":")
        if not sep or "=" in stage:  # no prefix (a ':' in the value is the value's)
            out.update(parse_sets([item]))
        elif stage in STAGES:
            out.update({f"{stage}:{k}": v for k, v in parse_sets([rest]).items()})
        else:
            raise AppError(f"--set {item}: {stage!r} is not a stage: prefix a key with one of {', '.join(STAGES)}, "
                           "e.g. sft:training.num_iterations=20")
    return out


def open_pipeline(args: argparse.Namespace) -> Any:
    """The Pipeline the arguments name: the unfinished one of this prefab, or a new one."""
    from nanochat_cli.services.paths import base_dir
    from nanochat_cli.services.pipeline import Pipeline, plan
    from nanochat_cli.services.runs import RunOrchestrator

    store = prefab_store()
    overrides = parse_pipeline_sets(args.set)
    stages = [s.strip() for s in args.stages.split(",") if s.strip()] if args.stages else None
    plans = plan(store, args.prefab, overrides, *([stages] if stages else []))
    base = base_dir()
    return Pipeline.open(base, RunOrchestrator(base), store.get(args.prefab).name, plans, overrides, new=args.new)


def print_report(args: argparse.Namespace) -> int:
    from nanochat_cli.errors import AppError
    from nanochat_cli.services.paths import base_dir
    from nanochat_cli.services.pipeline import PipelineDir, list_pipelines
    from nanochat_cli.services.pipeline.state import pipelines_root

    base = base_dir()
    if args.report == "":
        found = list_pipelines(base)
        if not found:
            raise AppError(f"no pipeline under {pipelines_root(base)}: run one with {PROG} pipeline --prefab cpu-tiny")
        pdir = found[0]
    else:
        pdir = PipelineDir(pipelines_root(base) / args.report)
    text = pdir.report()
    if text is None:
        raise AppError(f"pipeline {pdir.name}: no report in {pdir.path}: run `{PROG} pipeline` to finish it")
    sys.stdout.write(text)
    return 0


def cmd_pipeline(args: argparse.Namespace) -> int:
    if args.report is not None:
        return print_report(args)
    pipe = open_pipeline(args)
    if not args.headless and sys.stdout.isatty() and sys.stdin.isatty():
        from nanochat_cli.app import run_app  # the TUI runs the pipeline and shows each stage live

        return run_app(start_pipeline=pipe)
    return run_headless_pipeline(pipe)


def run_headless_pipeline(pipe: Any) -> int:
    from rich.console import Console

    from nanochat_cli.headless import run_headless
    from nanochat_cli.services.pipeline import write_report

    console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
    err = Console(stderr=True, highlight=False)
    done = [s.module for s in pipe.record.steps if s.done]
    err.print(f"pipeline {pipe.name}: {pipe.dir.path}" + (f" (skipping finished: {', '.join(done)})" if done else ""),
              markup=False)

    def announce(step: Any, attempt: Any) -> None:
        how = "resuming" if attempt.resumed else "starting"
        console.rule(f"{step.stage}: engine.{step.module} ({how} run {attempt.run})", characters="=")

    record = pipe.run(lambda spec: run_headless(pipe.orch, spec, console=console, err=err), on_step=announce)
    path = write_report(pipe.dir, record, pipe.orch.runs_dir, pipe.base)
    console.rule("report", characters="=")
    sys.stdout.write(path.read_text())
    sys.stdout.flush()
    if record.status != "finished":
        err.print(f"pipeline {pipe.name} {record.status}: run the same command again to continue where it stopped",
                  markup=False)
    err.print(f"report saved: {path}", markup=False)
    return EXIT.get(record.status, 1)


def setup_pipeline(sp: argparse.ArgumentParser) -> None:
    from nanochat_cli.cli.common import add_set_option

    sp.add_argument("--prefab", default="cpu-tiny", help="base prefab; its stage prefabs (PREFAB-sft, -rl, -eval) "
                                                         "configure the later stages (default: cpu-tiny)")
    add_set_option(sp)
    sp.add_argument("--stages", help="comma-separated stages to run, in order (default: base,sft,rl,eval)")
    sp.add_argument("--new", action="store_true", help="start a new pipeline instead of continuing this prefab's")
    sp.add_argument("--headless", action="store_true", help="no TUI: each stage's progress, then the report")
    sp.add_argument("--report", nargs="?", const="", metavar="NAME",
                    help="print the report of pipeline NAME (the newest without NAME) and exit")
    sp.set_defaults(func=cmd_pipeline)


def register(registry: Registry) -> None:
    registry.register_cli_command("pipeline", setup_pipeline, "base → SFT → RL → eval in one go, resumable, with "
                                  "a markdown report (TUI on a terminal, --headless for scripts)", builtin=True)
