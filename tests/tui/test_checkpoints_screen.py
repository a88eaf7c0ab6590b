"""Pilot tests of the Checkpoints tab over real tiny checkpoints: ours (compatible), a truncated one, an
incompatible one (depth 3) and stock nanochat's parity fixture; statuses, filter, remedy, delete, evaluate,
resume, chat hand-off, the palette and the eval prompts editor."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest
from ckpt_helpers import STOCK_FIXTURE, tiny_model, train_tokenizer
from ckpt_screen_helpers import (
    FIXED_TIME,
    build_world,
    make_app,
    select,
    settle,
)
from dialog_helpers import answer
from plugin_helpers import plugin_registered, register_megacontext
from textual.widgets import Input

from engine.checkpoint import checkpoint_dir
from nanochat_cli.screens.confirm import ConfirmScreen
from nanochat_cli.services import paths
from nanochat_cli.services.checkpoints.prompts import load_prompt_set
from nanochat_cli.services.checkpoints.registry import CheckpointRegistry
from nanochat_cli.widgets.checkpoints.prompts import PromptRow, PromptSetScreen, escape, unescape


@pytest.fixture(scope="module")
def tok_src(tmp_path_factory):
    return train_tokenizer(tmp_path_factory.mktemp("tok") / "tokenizer")








@pytest.fixture
def world(tmp_path, tok_src):
    assert paths.base_dir() == tmp_path / "base"  # conftest.py points the base dir here
    return build_world(tmp_path / "base", tok_src)




def listing(app) -> dict[str, tuple[str, str]]:
    """label@step -> (status, val bpb) as the table shows them."""
    table = app.screen.query_one("#ckpt-table")
    out = {}
    for i in range(table.row_count):
        cells = [str(c) for c in table.get_row_at(i)]
        out[f"{cells[0]}@{cells[2]}"] = (cells[3], cells[4])
    return out




def detail(app) -> str:
    return str(app.screen.query_one("#detail-text").content)


@pytest.fixture
def megacontext():
    """A plugin's checkpoint field (a MegaContext stand-in): the listing gets its MC column."""
    with plugin_registered("megacontext", register_megacontext):
        yield


async def test_listing_shows_each_status_and_the_filter(world, tmp_path, megacontext):
    app = make_app(tmp_path)
    async with app.run_test(size=(160, 40)) as pilot:
        await settle(pilot)
        rows = listing(app)
        ours = "2.5000 (5.2M)"  # val bpb (the tokens it covered: save_ours' eval_tokens)
        expected = {"tiny@5": ("compatible", ours), "trunc@3": ("corrupt", ours), "deep@7": ("incompatible", ours)}
        if STOCK_FIXTURE.is_dir():
            meta = json.loads((STOCK_FIXTURE / "meta_000000.json").read_text())
            bpb = f"{meta['val_bpb']:.4f}" if isinstance(meta.get("val_bpb"), float) else "-"
            expected["d4@0"] = ("incompatible", bpb)
        assert rows == expected
        table = app.screen.query_one("#ckpt-table")
        tiny = [str(c) for c in table.get_row_at(list(rows).index("tiny@5"))]
        params = f"{tiny_model(300).num_params() / 1e3:.1f}K"
        assert tiny[5:12] == [params, "2", "300", "64", "SL", world["tok"].fingerprint, "off"]
        assert tiny[12] == time.strftime("%Y-%m-%d %H:%M", time.localtime(FIXED_TIME))

        await select(pilot, "trunc")
        assert "truncated" in detail(app) and "never loaded" in detail(app)
        await pilot.press("e")  # a corrupt checkpoint is never loaded
        assert app.screen._evaluating is None
        assert any("is corrupt" in str(n.message) for n in app._notifications)
        await select(pilot, "deep")
        assert "depth 3 (config: 2)" in detail(app) and "→ set model.depth=3" in detail(app)
        if STOCK_FIXTURE.is_dir():
            await select(pilot, "d4")
            assert "stock nanochat" in detail(app) and "vocab differs: 320 tokens (config: 300)" in detail(app)

        await pilot.press("f")
        assert app.screen.filter == "loadable" and "trunc@3" not in listing(app)
        await pilot.press("f")
        assert app.screen.filter == "compatible" and list(listing(app)) == ["tiny@5"]
        where = str(app.screen.query_one("#ckpt-where").content)
        assert where.startswith(f"1 of {len(expected)} checkpoints under ") and "filter: compatible" in where
        await pilot.press("f")
        assert app.screen.filter == "all" and len(listing(app)) == len(expected)


async def test_apply_remedy_sets_the_config_and_relists(world, tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=(160, 40)) as pilot:
        await settle(pilot)
        await select(pilot, "deep")
        await pilot.press("a")
        await settle(pilot)
        assert app.session.overrides["model.depth"] == 3
        rows = listing(app)
        assert rows["deep@7"][0] == "compatible" and rows["tiny@5"][0] == "incompatible"
        await select(pilot, "deep")
        await pilot.press("a")  # nothing left to change
        assert any("no config change to apply (it fits the active config)" in str(n.message)
                   for n in app._notifications)
        assert app.session.overrides["model.depth"] == 3


async def test_delete_asks_first(world, tmp_path):
    trunc = checkpoint_dir(world["base"], "trunc")
    app = make_app(tmp_path)
    async with app.run_test(size=(160, 40)) as pilot:
        await settle(pilot)
        await select(pilot, "trunc")
        await pilot.press("x")
        assert isinstance(app.screen, ConfirmScreen)
        assert "Delete trunc step 3 (corrupt" in app.screen.question and "cannot be undone" in app.screen.question
        await pilot.press("n")
        await settle(pilot)
        assert (trunc / "meta_000003.json").exists() and "trunc@3" in listing(app)
        await pilot.press("x")
        await answer(pilot, "y")
        await settle(pilot)
        assert not trunc.exists() and "trunc@3" not in listing(app)
        assert "tiny@5" in listing(app)


async def test_evaluate_runs_in_a_worker_and_shows_val_bpb_inline(world, tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=(160, 40)) as pilot:
        await settle(pilot)
        await select(pilot, "tiny")
        assert "Not evaluated yet" in detail(app)
        app.screen.action_evaluate()  # what e does; called directly to look before the worker reports back
        assert app.screen.query_one("#eval-progress").display
        assert "evaluating tiny step 5" in str(app.screen.query_one("#eval-label").content)
        await settle(pilot)
        assert not app.screen.query_one("#eval-progress").display
        cached = {e.tag: e for e in CheckpointRegistry(world["base"]).scan()}["tiny"].eval
        assert cached is not None and cached.eval_tokens == 512
        text = detail(app)
        assert f"val bpb {cached.val_bpb:.4f} over 512 tokens of {app.show_path(world['data'])}" in text
        # beside the run's own figure, each with the tokens it covered
        assert "Training's last evaluation: val bpb 2.5000 over 5,242,880 tokens of its val split" in text
        assert "the two val bpb figures cover different token counts" in text
        assert [s.name for s in cached.samples] == [p.name for p in load_prompt_set()]
        for s in cached.samples:
            assert f"{s.name} ({s.mode}, {s.tokens} tokens)" in text
        assert any("val bpb" in str(n.message) for n in app._notifications)


async def test_resume_starts_the_run_and_shows_train(world, tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=(160, 40)) as pilot:
        await settle(pilot)
        await select(pilot, "tiny")
        await pilot.press("t")
        assert isinstance(app.screen, ConfirmScreen)
        assert app.screen.question == "Resume run tiny from step 5 (1 process on cpu)?"
        await answer(pilot, "y")
        await app.workers.wait_for_complete()
        await pilot.pause()
        run_dir = world["base"] / "runs" / "tiny"
        record = json.loads((run_dir / "run.json").read_text())
        try:
            assert record["resume"] is True and app.current_mode == "train" and app.active_run == "tiny"
            config = (run_dir / "config.yaml").read_text()
            assert "resume: true" in config and "resume_from_step: 5" in config
            assert any(str(n.message) == "Started run tiny" for n in app._notifications)
        finally:
            os.killpg(record["pgid"], signal.SIGKILL)  # the test checks the launch, not the training


async def test_chat_action_loads_the_checkpoint_in_the_chat_tab(world, tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=(160, 40)) as pilot:
        await settle(pilot)
        await select(pilot, "tiny")
        await pilot.press("c")
        await settle(pilot)
        assert app.current_mode == "chat"
        session = app.screen.session
        assert session is not None and session.info["step"] == 5
        assert session.info["checkpoint"] == str(checkpoint_dir(world["base"], "tiny").resolve() / "model_000005.pt")


async def test_palette_runs_the_screen_actions(world, tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=(160, 40)) as pilot:
        await settle(pilot)
        await pilot.press("ctrl+p")
        await pilot.press(*"Checkpoints: Filter")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await settle(pilot)
        assert app.screen.filter == "loadable"


async def test_eval_prompts_editor_saves_and_validates(world, tmp_path):
    assert unescape(escape("import os\n\\n")) == "import os\n\\n" and escape("a\nb") == "a\\nb"
    app = make_app(tmp_path)
    async with app.run_test(size=(160, 40)) as pilot:
        await settle(pilot)
        await pilot.press("p")
        await pilot.pause()
        assert isinstance(app.screen, PromptSetScreen)
        rows = list(app.screen.query(PromptRow))
        assert [r.value() for r in rows] == load_prompt_set()
        rows[0].query_one(".prompt-name", Input).value = ""
        await pilot.click("#save")
        assert "needs a name and a prompt" in str(app.screen.query_one("#prompt-set-error").content)
        rows[0].query_one(".prompt-name", Input).value = "fn"
        rows[0].query_one(".prompt-text", Input).value = "def add(a, b):\\n    return"
        for row in rows[1:]:
            await pilot.click(row.query_one(".prompt-remove"))
        await pilot.click("#save")
        await pilot.pause()
        assert not isinstance(app.screen, PromptSetScreen)
    saved = load_prompt_set()
    assert [(p.name, p.prompt, p.mode) for p in saved] == [("fn", "def add(a, b):\n    return", "continue")]


async def test_first_visit_says_it_is_scanning_until_the_listing_lands(world, tmp_path, monkeypatch):
    import threading

    release = threading.Event()
    real = CheckpointRegistry.with_compat

    def slow_scan(self, resolved):
        assert release.wait(60), "the test never released the scan"
        return real(self, resolved)

    monkeypatch.setattr(CheckpointRegistry, "with_compat", slow_scan)
    app = make_app(tmp_path)
    async with app.run_test(size=(160, 40)) as pilot:
        await pilot.pause()
        empty = app.screen.query_one("#ckpt-empty")
        title = str(empty.query_one(".empty-title").content)
        assert empty.display and title == f"Scanning checkpoints under {app.show_path(world['base'])}…"
        assert not app.screen.query_one("#ckpt-table").display  # no bare header while waiting
        release.set()
        await settle(pilot)
        assert not empty.display and app.screen.query_one("#ckpt-table").display and "tiny@5" in listing(app)
        where = str(app.screen.query_one("#ckpt-where").content)
        assert "newest first" in where and "rescanning" not in where
