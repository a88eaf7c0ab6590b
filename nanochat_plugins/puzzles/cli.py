"""`nanochat-cli puzzles list|run|verify|peek N`.

    nanochat-cli puzzles list [--json]          the eight and their status (not started, in progress, failing, passing)
    nanochat-cli puzzles run N                  your code on the puzzle's small example
    nanochat-cli puzzles verify N [--oracle X]  check by check against the engine (or nanochat=PATH)
    nanochat-cli puzzles peek N [--oracle X]    the oracle's source for puzzle N
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict


def _list(args: argparse.Namespace) -> int:
    from nanochat_plugins.puzzles import runner

    rows = runner.rows()
    if args.json:
        print(json.dumps([asdict(r) for r in rows], indent=1))
        return 0
    width = max(len(r.module) for r in rows)
    for r in rows:
        print(f"{r.number}  {r.module:<{width}}  {r.status:<11}  {r.title}: {r.goal}")
        if r.detail and r.status != "not started":
            print(f"   {'':<{width}}  {r.detail}")
    print("\nnanochat-cli puzzles run|verify|peek N   (or python -m puzzles.0N_name [--verify|--peek])")
    return 0


def _run_mode(mode: str):
    def handler(args: argparse.Namespace) -> int:
        from nanochat_plugins.puzzles import runner

        code, _ = runner.run(runner.puzzle(args.number), mode, getattr(args, "oracle", "engine"), capture=False)
        return code

    return handler


def setup(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="puzzles_command", required=True, metavar="list|run|verify|peek")
    p = sub.add_parser("list", help="the eight puzzles and their status")
    p.add_argument("--json", action="store_true", help="one JSON list")
    p.set_defaults(func=_list)
    for mode, text in (("run", "run your code on the puzzle's small example"),
                       ("verify", "compare your code with the oracle, check by check"),
                       ("peek", "print the oracle's source for the puzzle")):
        p = sub.add_parser(mode, help=text)
        p.add_argument("number", help="the puzzle: 1..8")
        if mode != "run":
            p.add_argument("--oracle", default="engine", metavar="engine|nanochat=PATH",
                           help="the installed engine (default) or a stock nanochat checkout")
        p.set_defaults(func=_run_mode(mode))
