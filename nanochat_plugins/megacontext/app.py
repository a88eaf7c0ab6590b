"""The app side of MegaContext: what `register(registry)` adds to nanochat-cli."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nanochat_cli.plugin_api import CheckpointField, EngineExtension, Layout, PanelSpec, Registry
from nanochat_plugins.megacontext.cli import setup_cli
from nanochat_plugins.megacontext.config import MegaContextConfig
from nanochat_plugins.megacontext.panels import render_actions, render_lod, render_residency

ENTRY = "nanochat_plugins.megacontext.extension:MegaContextExtension"

PANELS = [
    PanelSpec(id="mc_lod", title="MegaContext LOD", kind="plugin", plugin="megacontext", render=render_lod,
              refresh_hz=2, help="the working context's level of detail, one character per 32-token block"),
    PanelSpec(id="mc_residency", title="Residency", kind="plugin", plugin="megacontext", render=render_residency,
              refresh_hz=2, help="resident (raw) vs swapped (gist) blocks, budget use, swap-in/out over time"),
    PanelSpec(id="mc_actions", title="Allocator", kind="plugin", plugin="megacontext", render=render_actions,
              refresh_hz=2, help="the focus allocator's expand/collapse actions with LensNet's scores"),
]

LAYOUT = {
    "name": "megacontext",
    "description": "MegaContext: working-context LOD, residency and allocator actions next to the loss",
    "screens": [{"id": "megacontext", "title": "MegaContext", "columns": 2, "panels": [
        {"panel": "progress", "width": 2},
        {"panel": "mc_lod", "width": 2},
        {"panel": "mc_residency"},
        {"panel": "mc_actions"},
        {"panel": "loss", "width": 2},
    ]}],
}


def chat_context(ckpt_dir: Path, step: int, model: Any, tokenizer: Any, meta: dict[str, Any]) -> Any:
    """Chat through MegaContext for checkpoints trained with it (None for the others: the plain engine)."""
    settings = (meta.get("user_config") or {}).get("megacontext")
    if not (isinstance(settings, dict) and settings.get("enabled")):
        return None
    from nanochat_plugins.megacontext.session import MegaContextModel  # torch: only when such a model loads

    return MegaContextModel(model, tokenizer, meta, Path(ckpt_dir), step, str(next(model.parameters()).device))


def register(registry: Registry) -> None:
    registry.register_category("megacontext", MegaContextConfig, "MegaContext: gist tree and focus allocator")
    registry.register_checkpoint_field(CheckpointField("megacontext.enabled", "MegaContext", column="MC"))
    registry.register_engine_extension(EngineExtension("megacontext", ENTRY, "megacontext.enabled"))
    for spec in PANELS:
        registry.register_panel(spec)
    registry.register_layout("megacontext", Layout.parse(LAYOUT, registry))
    registry.register_prefab_dir(Path(__file__).parent / "prefabs")  # cpu-tiny-mc
    registry.register_chat_context("megacontext", chat_context, "long documents through the working context")
    registry.register_cli_command("megacontext", setup_cli, "MegaContext: read a long document and answer")
