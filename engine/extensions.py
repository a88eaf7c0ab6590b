"""Engine extensions: optional code a run loads by name from its config (`TrainConfig.extensions`).

An extension changes how a model is trained and served without the engine knowing what it is: the engine
imports the module named in the config (`"package.module:Class"`), never the app or a plugin by name. Each
entry of `extensions` is `{"name": str, "entry": "module:Class", "settings": {...}}`; the class subclasses
`Extension` and overrides the hooks it needs:

- `modules()`: extra modules (put on the run's device; their weights are the extension's checkpoint state);
- `param_groups()`: optimizer groups for them (AdamW groups of `engine.optim.MuonAdamW`);
- `train_loss(x, y, base)`: the loss of one micro-batch; `base(x, y)` is the plain model loss. An extension
  wraps the input embedding stage by passing `input_stage=` to the model (see `GPT.forward`; an input stage
  with a `value_embed(layer, idx, ve)` method also replaces the layers' value embeddings);
- `state_dict()` / `load_state_dict()`: tensors saved next to each checkpoint (`ext_<name>_<step>.pt`);
- `meta()`: JSON fields recorded in the checkpoint meta under `extensions.<name>`; the extension's settings
  are recorded in `user_config.<name>`, so the app reads them as config keys `<name>.<field>`;
- `after_step(step)`: emit `plugin` telemetry events through `self.emit(kind, data, step)`.

With no extension configured none of this runs: the loop, the loss and the checkpoints are exactly a
vanilla run's. An extension that raises stops the run with a one-line error naming it (the engine does
not go on without it: its checkpoints would claim a model it did not train).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from engine.errors import EngineError
from engine.shared import one_line


@dataclass
class ExtensionContext:
    """What an extension may use: the model, the tokenizer, where the data is, and the run's shape."""

    model: nn.Module
    tokenizer: Any
    device: torch.device
    data_dir: Path | None
    rank: int
    world_size: int
    max_seq_len: int
    seed: int
    emit: Callable[..., Any]  # the telemetry writer's emit (rank 0; a no-op writer elsewhere)


class Extension:
    """Base class: every hook is a no-op, so an extension overrides only what it changes."""

    name = "extension"

    def __init__(self, settings: dict[str, Any], ctx: ExtensionContext) -> None:
        self.settings, self.ctx = settings, ctx

    def modules(self) -> dict[str, nn.Module]:
        return {}

    def param_groups(self) -> list[dict[str, Any]]:
        return []

    def train_loss(self, x: torch.Tensor, y: torch.Tensor,
                   base: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> torch.Tensor:
        return base(x, y)

    def state_dict(self) -> dict[str, Any]:
        return {name: m.state_dict() for name, m in self.modules().items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name, m in self.modules().items():
            m.load_state_dict(state[name])

    def meta(self) -> dict[str, Any]:
        return {}

    def after_step(self, step: int) -> None:
        pass

    def emit(self, kind: str, data: dict[str, Any], step: int | None = None) -> None:
        self.ctx.emit("plugin", plugin=self.name, kind=kind, step=step, data=data)


def extension_file(ckpt_dir: Path, name: str, step: int) -> Path:
    return Path(ckpt_dir) / f"ext_{name}_{step:06d}.pt"


def load_extension(spec: dict[str, Any], ctx: ExtensionContext) -> Extension:
    """Import `spec["entry"]` and build the extension; any problem is one EngineError line naming it."""
    name, entry = spec.get("name", "?"), spec.get("entry", "")
    module_name, _, attr = str(entry).partition(":")
    if not module_name or not attr:
        raise EngineError(f"extensions: {name}: entry {entry!r} is not 'module:Class': fix the plugin's entry")
    try:
        cls = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as e:
        raise EngineError(f"extensions: {name}: cannot load {entry} ({one_line(e)}): install the plugin or turn it "
                          "off in the config") from None
    if not (isinstance(cls, type) and issubclass(cls, Extension)):
        raise EngineError(f"extensions: {name}: {entry} is not an engine.extensions.Extension subclass")
    try:
        ext = cls(dict(spec.get("settings") or {}), ctx)
    except EngineError:
        raise
    except Exception as e:
        raise EngineError(f"extensions: {name}: failed to start ({one_line(e)}): fix its settings or turn it "
                          "off in the config") from None
    ext.name = name
    return ext


def guarded(ext: Extension, hook: str, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
    """Run one hook; an exception becomes an EngineError naming the extension and hook (the run stops)."""
    try:
        return fn(*args, **kw)
    except EngineError:
        raise
    except Exception as e:
        raise EngineError(f"extension {ext.name}: {hook} failed ({one_line(e)}): the run stops rather than go on "
                          f"without it; fix the plugin or turn it off ({ext.name}.enabled=false)") from e
