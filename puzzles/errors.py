"""One error type for bad input to the puzzles' command line, printed as one line."""


class PuzzleError(Exception):
    """Bad input (puzzle number, oracle path, solution file): the message says what and how to fix it."""
