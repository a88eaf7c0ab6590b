"""WGSL plugin: natural language -> WGSL compute shaders (the "Tiny Agent Trainer", on our engine).

It adds `nanochat-cli wgsl …` (check, list, show, init, validate, run, dataset, templates; also installed as
the `tiny-agent-trainer` script). Inside: a lossless WGSL lexer and vocabulary (`lexer`, `vocab`), one token
space with the engine's BPE for prompts (`joint`), naga validation and compute runs through wgpu (`gpu`,
`validate`, `reflect`, `runner`), template families with numpy references (`templates`), the dataset
(`dataset`, shipped in `data/`) and the TOML configs (`config`). See docs/wgsl.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nanochat_plugins.wgsl import chat_mode, cli, tui

if TYPE_CHECKING:
    from nanochat_cli.plugin_api import Registry


def register(registry: Registry) -> None:
    registry.register_cli_command("wgsl", cli.setup, help="natural language -> WGSL shaders: validate and run "
                                                          "shaders, the dataset, the TOML configs (also: "
                                                          "tiny-agent-trainer)")
    tui.register(registry)
    chat_mode.register(registry)
