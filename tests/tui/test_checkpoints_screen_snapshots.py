"""SVG snapshot of the Checkpoints tab over real tiny checkpoints (compatible, corrupt, incompatible), the
compatible one selected with a cached evaluation, and a plugin's checkpoint field (the MC column of a
MegaContext stand-in). Deterministic: fixed file dates in UTC, labelled dirs, a
stored eval report with fixed figures, no clock in the picture.

Update after an intended UI change: pytest tests/tui/test_checkpoints_screen_snapshots.py --snapshot-update
"""

from __future__ import annotations

import time

import pytest
from ckpt_screen_helpers import build_world, make_app, select, settle, synthetic_tokenizer
from plugin_helpers import plugin_registered, register_megacontext

from engine.checkpoint import checkpoint_dir
from nanochat_cli.services.checkpoints.registry import CheckpointRegistry
from nanochat_cli.services.checkpoints.reports import EvalReport, SampleResult


@pytest.fixture(scope="module")
def tok_src(tmp_path_factory):
    return synthetic_tokenizer(tmp_path_factory.mktemp("tok") / "tokenizer")


@pytest.fixture
def app(tmp_path, tok_src, monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    world = build_world(tmp_path / "base", tok_src, stock=False)  # the stock fixture may be absent elsewhere
    registry = CheckpointRegistry(world["base"])
    entry = registry.find(checkpoint_dir(world["base"], "tiny"))
    registry.store_eval(entry, EvalReport(
        checkpoint=str(entry.model_file), step=5, val_bpb=2.4321, eval_tokens=512, data_dir=str(world["data"]),
        samples=[SampleResult("python-function", "continue", "def fibonacci(n):", " return n", 3, 0.01),
                 SampleResult("chat-greeting", "chat", "Hello! Who are you?", "I am a tiny model.", 6, 0.02)],
        seconds=1.5, created=0.0, device="cpu"))
    with plugin_registered("megacontext", register_megacontext):
        yield make_app(tmp_path, base_dir_label="~/.cache/nanochat", config_dir_label="~/.config/nanochat-cli",
                       clock=lambda: 0.0)
    monkeypatch.undo()
    time.tzset()


def test_checkpoints_listing_with_eval(snap_compare, app):
    async def show(pilot) -> None:
        await settle(pilot)
        await select(pilot, "tiny")

    assert snap_compare(app, terminal_size=(120, 32), run_before=show)
