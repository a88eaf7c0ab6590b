"""Test plugins: register into the global REGISTRY for one test, and leave nothing behind afterwards."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from pydantic import BaseModel, ConfigDict

from nanochat_cli.plugin_api import CheckpointField, Registry
from nanochat_cli.services.registry import REGISTRY


@contextmanager
def plugin_registered(name: str, register: Callable[[Registry], None]) -> Iterator[Registry]:
    """Run `register(REGISTRY)` as plugin `name`; on exit everything it added is unregistered again."""
    with REGISTRY.owned_by(name):
        register(REGISTRY)
    REGISTRY.plugins[name] = None
    try:
        yield REGISTRY
    finally:
        forget_plugin(name)


def forget_plugin(name: str) -> None:
    """Undo a plugin loaded into REGISTRY (by load_plugins or by hand) so the next test starts clean."""
    REGISTRY.remove_owned(name)
    REGISTRY.plugins.pop(name, None)
    for module in [m for m in sys.modules if m.endswith(f"_plugins.{name}") or f"_plugins.{name}." in m]:
        del sys.modules[module]


class MegaContextConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = False


def register_megacontext(registry: Registry) -> None:
    """A stand-in for the MegaContext plugin: an on/off field every checkpoint records and the views compare."""
    registry.register_category("megacontext", MegaContextConfig)
    registry.register_checkpoint_field(CheckpointField("megacontext.enabled", "MegaContext", column="MC"))
