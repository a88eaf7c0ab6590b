"""The command line every puzzle module shares: run, --verify, --peek, --oracle, --solution.

    python -m puzzles.01_transformer_blueprint                 your code on a small example
    python -m puzzles.01_transformer_blueprint --verify        pass/fail per check, with the first difference
    python -m puzzles.01_transformer_blueprint --peek          the oracle's source for this puzzle
    ... --oracle nanochat=PATH                                 a stock nanochat checkout as the oracle
    ... --solution FILE                                        take the puzzle's names from FILE instead

Exit codes: 0 all checks pass (or run/peek worked), 1 a check failed or something is not implemented
yet, 2 bad input (printed as one line).
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from types import ModuleType

from puzzles import catalog, status
from puzzles.errors import PuzzleError
from puzzles.oracle import Oracle, Skip, parse_oracle

Check = tuple[str, Callable[[], str | None]]  # (name, returns None when it passes, else the first difference)


def checks_module(puzzle: catalog.Puzzle) -> ModuleType:
    return importlib.import_module(f"puzzles.checks.p{puzzle.number:02d}")


def _learner_frame(error: BaseException) -> str:
    """' (at file.py:123)' for the innermost frame outside the harness and the oracle."""
    frames = [f for f in traceback.extract_tb(error.__traceback__)
              if "/puzzles/checks/" not in f.filename and "/puzzles/harness" not in f.filename
              and "/engine/" not in f.filename and "/torch/" not in f.filename]
    return f" (at {frames[-1].filename.rsplit('/', 1)[-1]}:{frames[-1].lineno})" if frames else ""


def run_checks(checks: Iterable[Check], out=print) -> tuple[int, int, int, int, str]:
    """(passed, failed, skipped, not implemented, first failure) after running and printing each check."""
    passed = failed = skipped = missing = 0
    first = ""
    for name, fn in checks:
        t0 = time.perf_counter()
        try:
            problem = fn()
        except Skip as e:
            out(f"SKIP  {name}: {e}")
            skipped += 1
            continue
        except NotImplementedError as e:
            problem, missing = f"{e}" if "not implemented yet" in str(e) else f"NotImplementedError: {e}", missing + 1
            problem += _learner_frame(e)
        except Exception as e:  # the learner's code raised: name it and where, the check fails
            problem = f"{type(e).__name__}: {e}{_learner_frame(e)}"
        dt = time.perf_counter() - t0
        if problem is None:
            out(f"PASS  {name}  ({dt:.2f} s)")
            passed += 1
        else:
            out(f"FAIL  {name}: {problem}")
            failed += 1
            first = first or f"{name}: {problem}"
    return passed, failed, skipped, missing, first


def verify(puzzle: catalog.Puzzle, impl: ModuleType, oracle: Oracle, record: bool) -> int:
    print(f"puzzle {puzzle.number:02d} · {puzzle.title}: verifying against the {oracle}")
    t0 = time.perf_counter()
    passed, failed, skipped, missing, first = run_checks(checks_module(puzzle).checks(impl, oracle))
    total = passed + failed
    if not total:
        print(f"no check of this puzzle has a counterpart in the {oracle}: verify against the engine "
              "(--oracle engine)")
        return 2
    summary = f"{passed}/{total} checks pass" + (f", {skipped} skipped" if skipped else "")
    print(f"{summary} in {time.perf_counter() - t0:.1f} s")
    outcome = "passing" if failed == 0 and passed else ("not started" if missing == failed == total else "failing")
    if record:
        status.record(puzzle, outcome, summary if not first else f"{summary}; first: {first}")
    if failed:
        print(f"first failure: {first}")
    return 0 if outcome == "passing" else 1


def run(puzzle: catalog.Puzzle, impl: ModuleType) -> int:
    print(f"puzzle {puzzle.number:02d} · {puzzle.title}: {puzzle.goal}")
    try:
        print(checks_module(puzzle).example(impl))
    except NotImplementedError as e:
        print(f"{e}{_learner_frame(e)}: fill it in, then run again")
        return 1
    return 0


@contextmanager
def _one_thread() -> Iterator[None]:
    """The checks' models are tiny: a thread pool only adds wake-ups, which cost whole seconds on a busy CPU.
    The caller's setting comes back afterwards (main() also runs inside other processes, the tests')."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def main(number: int, argv: list[str] | None = None) -> int:
    puzzle = catalog.get(number)
    parser = argparse.ArgumentParser(prog=f"python -m {puzzle.module}", description=f"{puzzle.title}: {puzzle.goal}")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--verify", action="store_true", help="compare your code with the oracle, check by check")
    mode.add_argument("--peek", action="store_true", help="print the oracle's source for this puzzle")
    parser.add_argument("--oracle", default="engine", metavar="engine|nanochat=PATH",
                        help="what to verify against: the installed engine (default) or a stock nanochat checkout")
    parser.add_argument("--solution", metavar="FILE", help="take the puzzle's names from FILE, not the puzzle module")
    args = parser.parse_args(argv)
    try:
        oracle = parse_oracle(args.oracle)
        if args.peek:
            print(oracle.peek(checks_module(puzzle).PEEK[oracle.kind]), end="")
            return 0
        impl = catalog.load_solution(args.solution) if args.solution else catalog.load_skeleton(puzzle)
        with _one_thread():
            if args.verify:
                return verify(puzzle, impl, oracle, record=not args.solution and oracle.is_engine)
            return run(puzzle, impl)
    except PuzzleError as e:
        print(f"{parser.prog}: error: {e}", file=sys.stderr)
        return 2
