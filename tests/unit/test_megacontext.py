"""MegaContext plugin: the allocator keeps the budget, the config category and engine extension register
(and roll back), runs with it off are vanilla, and the panels render recorded telemetry."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from engine.config import TrainConfig
from engine.telemetry import parse_event
from nanochat_cli.errors import AppError
from nanochat_cli.services.config.schema import to_engine_config
from nanochat_cli.services.panels import PluginView
from nanochat_cli.services.registry import REGISTRY
from nanochat_plugins.megacontext.config import MegaContextConfig
from nanochat_plugins.megacontext.panels import render_actions, render_lod, render_residency
from nanochat_plugins.megacontext.tree import GIST, GIST2, RAW, WorkingContext, allocate
from tests.helpers.plugin_helpers import plugin_registered

FIXTURE = Path(__file__).parent.parent / "fixtures" / "megacontext_telemetry.jsonl"


def test_fit_recent_keeps_newest_blocks_raw_within_budget():
    wc = WorkingContext(n_blocks=40, block_size=32, tail=64, budget=256, levels=2)
    wc.fit_recent()
    assert wc.slots() <= 256
    assert wc.lod[-1] == RAW and wc.lod[0] == GIST
    assert wc.lod_map().endswith("██")  # the tail's two blocks
    deep = WorkingContext(n_blocks=200, block_size=32, tail=64, budget=256, levels=2)
    deep.fit_recent()  # 200 gists + the tail do not fit: the oldest group folds into one level-2 gist
    assert deep.slots() <= 256 and deep.lod[0] == GIST2


@pytest.mark.parametrize("seed", range(5))
def test_allocator_never_exceeds_the_budget_and_follows_scores(seed):
    rng = random.Random(seed)
    wc = WorkingContext(n_blocks=70, block_size=32, tail=64, budget=320, levels=2)
    wc.fit_recent()
    for _ in range(10):
        scores = [rng.uniform(-1, 1) for _ in range(wc.n_blocks)]
        actions = allocate(wc, scores, expand_threshold=0.0, collapse_threshold=-0.5)
        assert wc.slots() <= wc.budget
        for a in actions:
            assert a.op in ("expand", "collapse")
            if a.op == "expand":
                assert scores[a.block] > 0.0
        before = wc.slots()
        assert not allocate(wc, [0.0] * wc.n_blocks, 0.1, -0.1) and wc.slots() == before  # nothing to gain: no churn


def test_fill_gives_the_spare_positions_to_the_newest_tokens_before_the_raw_blocks():
    wc = WorkingContext(n_blocks=30, block_size=32, tail=64, budget=256, levels=2, fill=True)
    wc.fit_recent()  # 25 gists + 5 raw blocks + the tail = 249 positions: 7 spare
    assert wc.slots() == 249 and wc.lead_block() == 24 and wc.lead() == 7 and wc.used() == 256
    assert wc.position(24) == 24 and wc.position(25) == 25 + 7  # the lead sits between block 24's gist and 25
    wc.expand(3)  # over the budget until the allocator makes room: no spare, no lead
    assert wc.lead() == 0 and wc.used() == wc.slots()
    whole = WorkingContext(n_blocks=30, block_size=32, tail=64, budget=256, levels=2)
    whole.fit_recent()
    assert whole.lead() == 0 and whole.used() == 249  # fill off: whole blocks only


def test_max_raw_caps_the_raw_blocks_and_the_allocator_swaps_within_it():
    wc = WorkingContext(n_blocks=30, block_size=32, tail=64, budget=256, levels=2, fill=True, max_raw=2)
    wc.fit_recent()  # 28 gists + 2 raw blocks + the tail: room is left, the lead fills 31 of it
    assert [b for b, lod in enumerate(wc.lod) if lod == RAW] == [28, 29] and wc.lead() == 31
    scores = [0.0] * 30
    scores[5] = 2.0  # LensNet wants block 5 raw: with the cap reached it is swapped in, not added
    actions = allocate(wc, scores, expand_threshold=0.1, collapse_threshold=-0.1)
    assert [(a.op, a.block) for a in actions] == [("collapse", 28), ("expand", 5)] and wc.resident() == 2
    free = WorkingContext(n_blocks=30, block_size=32, tail=64, budget=256, levels=2, max_raw=2)
    free.fit_recent()
    free.max_raw = None  # no cap: the same wish expands into the free room
    assert [a.op for a in allocate(free, scores, 0.1, -0.1)] == ["expand"] and free.resident() == 3


def test_keep_newest_raw_turns_the_older_raw_blocks_into_gists():
    wc = WorkingContext(n_blocks=30, block_size=32, tail=64, budget=256, levels=2)
    wc.fit_recent()
    wc.expand(3)  # a raw block far back: the oldest raw one goes first
    wc.keep_newest_raw(2)
    assert [b for b, lod in enumerate(wc.lod) if lod == RAW] == [28, 29]
    wc.keep_newest_raw(0)
    assert wc.resident() == 0 and wc.lod[3] == GIST


def test_expand_and_collapse_round_trip():
    wc = WorkingContext(n_blocks=64, block_size=32, tail=32, budget=4096, levels=2)
    wc.collapse(0)  # a gist of a whole group: level 2
    assert wc.lod[:32] == [GIST2] * 32 and wc.slots() == 32 + 1 + 32
    wc.expand(5)
    assert wc.lod[:32] == [GIST] * 32
    wc.expand(5)
    assert wc.lod[5] == RAW and wc.resident() == 1


def test_gist_input_picks_what_gistnet_pools():
    assert MegaContextConfig().states_chunk() == 0  # token embeddings: no extra forward
    assert MegaContextConfig(gist_input="states", budget=250).states_chunk() == 224  # the budget in whole blocks
    assert not MegaContextConfig(gist_input="states").states_grad()
    trained = MegaContextConfig(gist_input="trained_states")
    assert trained.states_chunk() == 256 and trained.states_grad()
    with pytest.raises(ValueError, match="gist_input"):
        MegaContextConfig(gist_input="hidden")


def test_config_rejects_a_budget_that_cannot_hold_the_tail():
    with pytest.raises(ValueError, match="budget"):
        MegaContextConfig(budget=64, tail_tokens=64)


def test_registers_extension_and_switches_the_run_config():
    from nanochat_plugins.megacontext import register

    with plugin_registered("megacontext", register):
        assert REGISTRY.get("megacontext") is not None
        assert [e.name for e in REGISTRY.engine_extensions()] == ["megacontext"]
        assert REGISTRY.layout("megacontext") is not None
        on = to_engine_config({"megacontext.enabled": True, "megacontext.budget": 512})
        assert on.extensions[0]["entry"].endswith(":MegaContextExtension")
        assert on.extensions[0]["settings"]["budget"] == 512
        off = to_engine_config({"megacontext.enabled": False})
        assert off.extensions == [] and "extensions" not in off.model_dump()
    assert REGISTRY.get("megacontext") is None and not REGISTRY.engine_extensions()  # rolled back


def test_a_failing_register_leaves_nothing_behind():
    def broken(registry):
        from nanochat_plugins.megacontext.app import register

        register(registry)
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        with plugin_registered("megacontext", broken):
            pass
    REGISTRY.remove_owned("megacontext")
    assert REGISTRY.get("megacontext") is None and REGISTRY.panel("mc_lod") is None


def test_engine_extension_needs_its_category():
    from nanochat_cli.plugin_api import EngineExtension

    with pytest.raises(AppError, match="category"):
        with plugin_registered("nocat", lambda r: r.register_engine_extension(EngineExtension("nocat", "m:C",
                                                                                               "nocat.enabled"))):
            pass


def test_vanilla_config_dump_has_no_extension_field():
    assert "extensions" not in TrainConfig().model_dump()
    cfg = TrainConfig(extensions='[{"name": "x", "entry": "m:C"}]')
    assert TrainConfig(**cfg.model_dump()).extensions == cfg.extensions


class _Store:
    def __init__(self, events):
        self.events = events

    def plugin_events(self, plugin, kind=None, last=None):
        out = [e for e in self.events if e.plugin == plugin and (kind is None or e.kind == kind)]
        return out if last is None else out[-last:]


def _view(width=60, height=12):
    events = [parse_event(line) for line in FIXTURE.read_text().splitlines()]
    return PluginView(_Store([e for e in events if e.event == "plugin"]), "megacontext", width, height)


def test_panels_render_the_recorded_telemetry():
    view = _view()
    last = view.events("context")[-1].data
    lod = render_lod(view)
    assert last["lod"] in lod and "█ raw tokens" in lod
    res = render_residency(view)
    assert f"resident {last['resident']} / {last['resident'] + last['swapped']} blocks" in res
    acts = render_actions(view)
    assert "expand" in acts and "collapse" in acts and "score" in acts
    empty = PluginView(_Store([]), "megacontext", 40, 5)
    assert "no MegaContext telemetry" in render_lod(empty)
