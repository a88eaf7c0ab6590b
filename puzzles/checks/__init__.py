"""The checks of each puzzle (pNN.py): `PEEK` (oracle source targets by oracle kind), `example(impl)` (what
`python -m puzzles.0N_name` prints) and `checks(impl, oracle)` (named checks for --verify)."""
