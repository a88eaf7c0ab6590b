"""`nanochat-cli`: the command line. `main` is the console script's entry point (see `main.py`)."""

from nanochat_cli.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
