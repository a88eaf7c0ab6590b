"""Puzzles plugin: `nanochat-cli puzzles list|run|verify|peek N` and a Puzzles screen (key 6 in the TUI).

The eight puzzles live in the top-level `puzzles` package (see puzzles/__init__.py); this plugin is their
front end. Puzzle code runs in a child process (`python -m puzzles.0N_name ...`), so a learner's bug or a
slow verify never blocks or crashes the app, and the app never imports torch for it.
"""

from __future__ import annotations

from nanochat_cli.plugin_api import Registry


def _screen():
    from nanochat_plugins.puzzles.screen import PuzzlesScreen  # Textual, loaded when the screen is first opened

    return PuzzlesScreen()


def register(registry: Registry) -> None:
    from nanochat_plugins.puzzles.cli import setup

    registry.register_cli_command("puzzles", setup, help="the eight puzzles: list, run, verify, peek at the oracle")
    registry.register_screen("puzzles", _screen, "Puzzles", help="the eight puzzles: status, verify, peek")
