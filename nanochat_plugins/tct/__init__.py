"""TCT plugin: sample GitHub Actions workflows from a model trained on TCT windows (docs/tct.md).

It adds the Chat tab's "workflow" mode (a TCT checkpoint opens in it: each prompt, a workflow name or a
partial YAML document, samples one workflow, shown as YAML with its schema validation) and
`nanochat-cli workflow sample | eval` (the same headless, and the share of schema-valid samples with and
without the constraints).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nanochat_plugins.tct import cli, mode

if TYPE_CHECKING:
    from nanochat_cli.plugin_api import Registry


def register(registry: Registry) -> None:
    registry.register_chat_mode(mode.WORKFLOW_MODE)
    registry.register_cli_command("workflow", cli.setup, help="sample GitHub Actions workflows from a TCT "
                                                              "checkpoint (schema-constrained), or evaluate them")
