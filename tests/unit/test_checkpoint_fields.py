"""Checkpoint fields: a plugin names a config value every checkpoint records; the views show it and the
compatibility check compares it with the active config (no field is hard-coded in the app)."""

from pathlib import Path

import pytest
from plugin_helpers import forget_plugin, plugin_registered, register_megacontext
from pydantic import BaseModel, ConfigDict

import nanochat_cli.services.config.schema  # noqa: F401  (registers the core config categories)
from nanochat_cli.errors import AppError
from nanochat_cli.plugin_api import CheckpointField
from nanochat_cli.services.checkpoints.compat import ActiveConfig, compatibility
from nanochat_cli.services.checkpoints.entries import CheckpointEntry
from nanochat_cli.services.plugins import load_plugins
from nanochat_cli.services.registry import REGISTRY

MC = "megacontext.enabled"
SHAPE = {"sequence_len": 64, "vocab_size": 300, "n_layer": 2, "n_head": 1, "n_kv_head": 1, "n_embd": 64,
         "window_pattern": "SL"}


def entry(user_config=None) -> CheckpointEntry:
    """A complete, resumable base checkpoint of SHAPE (no files needed: compatibility reads the entry only)."""
    return CheckpointEntry(ckpt_dir="/ckpts/base_checkpoints/t", phase="base", tag="t", step=1, status="complete",
                           model_config=dict(SHAPE), user_config=user_config, tokenizer_hash="abc", world_size=1,
                           optim_ranks=[0])


def active(**resolved) -> ActiveConfig:
    return ActiveConfig(resolved=resolved, base=Path("/ckpts"), model_config=dict(SHAPE), tokenizer_dir=None,
                        tokenizer_hash="abc", tokenizer_note="", explicit_tokenizer=False, data_dir=None)


def test_no_field_is_compared_without_a_plugin():
    assert REGISTRY.checkpoint_fields() == []
    assert compatibility(entry({"megacontext": {"enabled": True}}), active()).reasons == []


def test_a_plugin_field_is_read_flat_nested_or_defaulted_and_compared():
    with plugin_registered("megacontext", register_megacontext):
        assert entry({MC: True}).setting(MC) is True
        assert entry({"megacontext": {"enabled": True}}).setting(MC) is True
        assert entry(None).setting(MC) is False  # stock nanochat records nothing: the field's default
        compat = compatibility(entry({"megacontext": {"enabled": True}}), active(**{MC: False}))
        assert compat.level == "warnings"
        (reason,) = compat.reasons
        assert (reason.message, reason.remedy) == ("MegaContext is on in the checkpoint, off in the config",
                                                   "set megacontext.enabled=true")
        assert reason.overrides == {MC: True}
        assert compatibility(entry(None), active()).level == "compatible"  # both default to off
    assert REGISTRY.checkpoint_fields() == []  # rolled back with its plugin


class CtxConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    window: int = 1024


def register_ctx(registry):
    registry.register_category("ctx", CtxConfig)
    registry.register_checkpoint_field(CheckpointField("ctx.window", "Context window", level="error"))


def test_an_error_level_field_makes_a_checkpoint_incompatible():
    with plugin_registered("ctx", register_ctx):
        compat = compatibility(entry({"ctx": {"window": 4096}}), active(**{"ctx.window": 1024}))
        assert compat.level == "incompatible"
        assert compat.reasons[0].message == "Context window is 4096 in the checkpoint, 1024 in the config"
        assert compat.reasons[0].remedy == "set ctx.window=4096"


@pytest.mark.parametrize("field, error", [
    (CheckpointField("nodot", "X"), "checkpoint field 'nodot': not a config key: use 'category.field'"),
    (CheckpointField("nosuch.field", "X"), "checkpoint field 'nosuch.field': no registered category has this field"),
    (CheckpointField("model.depth", "Depth", level="fatal"), "level 'fatal': use 'warn' or 'error'"),
    (CheckpointField("model.depth", ""), "empty title"),
])
def test_bad_checkpoint_fields_are_refused(field, error):
    with pytest.raises(AppError, match=error.replace("(", r"\(").replace(")", r"\)")):
        REGISTRY.register_checkpoint_field(field)


def test_a_plugin_failing_after_adding_a_field_leaves_none_behind(tmp_path):
    plugin = tmp_path / "p" / "halfmc"
    plugin.mkdir(parents=True)
    (plugin / "__init__.py").write_text(
        "from nanochat_cli.plugin_api import CheckpointField\n"
        "def register(registry):\n"
        "    registry.register_checkpoint_field(CheckpointField('model.depth', 'Depth'))\n"
        "    raise RuntimeError('halfway')\n")
    report = load_plugins(REGISTRY, [tmp_path / "p"], repo=False, entry_points=False)
    try:
        assert report.failed == [("halfmc", "RuntimeError: halfway")]
        assert REGISTRY.checkpoint_fields() == []
    finally:
        forget_plugin("halfmc")
