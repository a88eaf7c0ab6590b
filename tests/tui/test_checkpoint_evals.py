"""The Checkpoints tab's stage column and eval tables (CORE per task, chat eval per task), read from the
eval_<suite>_<step>.json files beside a checkpoint (fixtures in tests/fixtures/evals/), and the same tables
from `nanochat-cli checkpoints show`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from ckpt_helpers import train_tokenizer
from ckpt_screen_helpers import build_world, make_app, select, settle

from nanochat_cli.cli.main import main
from nanochat_cli.services.checkpoints.stage_evals import stage_evals

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "evals"


@pytest.fixture(scope="module")
def tok_src(tmp_path_factory):
    return train_tokenizer(tmp_path_factory.mktemp("tok") / "tokenizer")


@pytest.fixture
def world(tmp_path, tok_src):
    """tiny@5 (base) with a CORE eval beside it, and tiny-sft@5 (an SFT checkpoint) with a chat eval."""
    w = build_world(tmp_path / "base", tok_src, stock=False)
    base = w["base"]
    sft = base / "chatsft_checkpoints" / "tiny-sft"
    shutil.copytree(base / "base_checkpoints" / "tiny", sft)
    shutil.copy(FIXTURES / "eval_core_000005.json", base / "base_checkpoints" / "tiny")
    shutil.copy(FIXTURES / "eval_chat_000005.json", sft)
    return {**w, "sft": sft}


def detail(app) -> str:
    return str(app.screen.query_one("#detail-text").content)


async def test_stage_column_and_eval_tables(world, tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=(160, 50)) as pilot:
        await settle(pilot)
        table = app.screen.query_one("#ckpt-table")
        assert [str(c.label) for c in table.ordered_columns][:3] == ["checkpoint", "stage", "step"]
        stages = {str(table.get_row_at(i)[0]): str(table.get_row_at(i)[1]) for i in range(table.row_count)}
        assert stages["tiny"] == "base" and stages["tiny/tiny-sft"] == "sft"  # label: run/tag (the meta names run tiny)

        await select(pilot, "tiny")
        text = detail(app)
        assert "CORE 0.0333 (mean centred accuracy) · eval_core_000005.json" in text
        assert "arithmetic_mc     accuracy  0.300     0.250   +0.067  60" in text
        assert "stdlib_def_close  accuracy  0.200     0.250   -0.067  60" in text
        assert "chat eval" not in text

        await select(pilot, "tiny/tiny-sft")
        text = detail(app)
        assert "chat eval 0.2583 (mean accuracy) · eval_chat_000005.json" in text
        assert "Arithmetic      pass@1    0.125         -        -  40" in text
        assert "CORE" not in text


def test_checkpoints_show_prints_the_tables(world, capsys):
    assert main(["checkpoints", "show", str(world["base"] / "base_checkpoints" / "tiny")]) == 0
    out = capsys.readouterr().out
    assert "tiny · step 5 · stage base · complete" in out
    assert "CORE score 0.0333 (mean centred accuracy) over 3 tasks · eval_core_000005.json" in out
    assert "python_brackets" in out and "+0.100" in out
    assert main(["checkpoints", "show", str(world["sft"]), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["stage"] == "sft" and data["evals"][0]["suite"] == "chat"
    assert [r["task"] for r in data["evals"][0]["results"]] == ["Arithmetic", "SpellCount", "MultipleChoice"]


def test_a_damaged_eval_file_is_named_and_the_others_still_show(tmp_path):
    shutil.copy(FIXTURES / "eval_core_000005.json", tmp_path)
    (tmp_path / "eval_chat_000005.json").write_text('{"suite": "chat", "results": [{"task": 1}]}')
    (tmp_path / "eval_core_000004.json").write_text("{}")  # another step: not listed
    core, chat = stage_evals(tmp_path, 5)
    assert core.suite == "core" and core.score == pytest.approx(0.0333) and len(core.tasks) == 3
    assert chat.problem.startswith("eval_chat_000005.json: unreadable (KeyError") and chat.tasks == []
