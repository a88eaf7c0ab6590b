"""Puzzles: an eight-part curriculum that rebuilds the engine's pieces and verifies them against it.

Each puzzle is a module `puzzles.0N_name` holding the learner's skeleton (the functions and classes to
fill in, each raising NotImplementedError("not implemented yet: <what>") until it is written). Run one
with `python -m puzzles.0N_name` (your code on a small example), `--verify` (compare with the oracle:
the installed engine, or `--oracle nanochat=PATH` for a stock nanochat checkout) or `--peek` (the
oracle's real source for that puzzle, read with `inspect`). The checks live in `puzzles.checks`, the
command line in `puzzles.harness`, the list of puzzles in `puzzles.catalog`.

This package imports the engine (the oracle) and never the app: `nanochat-cli puzzles` and the Puzzles
screen (the in-repo `puzzles` plugin) run these modules in a child process.
"""
