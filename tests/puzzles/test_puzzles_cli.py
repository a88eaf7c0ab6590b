"""`nanochat-cli puzzles list|run|verify|peek N`, the statuses it lists, and the plugin screen API it uses."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from nanochat_cli.cli import main
from nanochat_cli.errors import AppError
from nanochat_cli.services.registry import Registry
from puzzles import catalog, status
from puzzles.catalog import PUZZLES

SOLUTIONS = Path(__file__).parent / "solutions"


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_list_shows_the_eight_with_their_status(capsys):
    code, out, _ = run(capsys, "puzzles", "list", "--json")
    assert code == 0
    rows = json.loads(out)
    assert [r["number"] for r in rows] == list(range(1, 9))
    assert {r["status"] for r in rows} == {"not started"}  # the shipped skeletons, nothing verified yet
    assert rows[7]["module"] == "puzzles.08_mini_gpt" and rows[7]["title"] == "MiniGPT"
    code, out, _ = run(capsys, "puzzles", "list")
    assert code == 0 and "puzzles.04_inference_engine" in out and "not started" in out


def test_bad_puzzle_number_is_one_line_exit_2(capsys):
    code, _, err = run(capsys, "puzzles", "verify", "9")
    assert code == 2
    assert err.strip() == ("nanochat-cli: error: puzzle '9': no such puzzle: use a number from 1 to 8 "
                           "(nanochat-cli puzzles list)")


def test_run_and_verify_run_the_module_and_pass_its_exit_code(capfd):
    assert main(["puzzles", "verify", "6"]) == 1  # a child process: python -m puzzles.06_evaluator --verify
    out = capfd.readouterr().out
    assert "FAIL  few-shot examples: not implemented yet: CoreEvaluator.fewshot" in out


@dataclass(frozen=True)
class Copied(catalog.Puzzle):
    """A puzzle whose learner file is a copy in a temp folder (so the test can edit it)."""

    where: Path = Path()

    @property
    def path(self) -> Path:
        return self.where


def test_status_follows_the_file_and_the_last_verify(tmp_path):
    p = PUZZLES[5]
    copy = Copied(p.number, p.slug, p.title, p.goal, where=tmp_path / p.path.name)
    shutil.copy(p.path, copy.path)
    assert status.status_of(copy)[0] == "not started"
    copy.path.write_text(copy.path.read_text().replace(
        'raise NotImplementedError("not implemented yet: CoreEvaluator.centered")',
        "return (accuracy - baseline) / (1 - baseline)"))
    assert status.status_of(copy) == ("in progress", "not verified yet")
    status.record(copy, "failing", "5/6 checks pass")
    assert status.status_of(copy) == ("failing", "5/6 checks pass")
    assert status.status_path().is_relative_to(Path(__import__("os").environ["NANOCHAT_BASE_DIR"]))
    copy.path.write_text(copy.path.read_text() + "\n# an edit after the verify\n")
    assert status.status_of(copy) == ("in progress", "edited since the last --verify")
    shutil.copy(SOLUTIONS / "s06_evaluator.py", copy.path)
    status.record(copy, "passing", "6/6 checks pass")
    assert status.status_of(copy) == ("passing", "6/6 checks pass")


def test_register_screen_checks_its_input_and_rolls_back_with_its_plugin():
    reg = Registry()

    def factory():
        return None

    with pytest.raises(AppError, match="already registered \\(built in\\)"):
        reg.register_screen("train", factory, "Train")
    with pytest.raises(AppError, match="invalid name"):
        reg.register_screen("My Screen", factory, "Mine")
    with pytest.raises(AppError, match="empty title"):
        reg.register_screen("mine", factory, " ")
    with pytest.raises(AppError, match="not callable"):
        reg.register_screen("mine", "nope", "Mine")
    with reg.owned_by("demo"):
        reg.register_screen("mine", factory, "Mine", help="a demo")
    assert [(s.name, s.title) for s in reg.screens()] == [("mine", "Mine")]
    assert reg.owned("demo") == [("screen", "mine")]
    with pytest.raises(AppError, match="already registered \\(by plugin demo\\)"):
        reg.register_screen("mine", factory, "Again")
    reg.remove_owned("demo")
    assert reg.screens() == []


def test_plugins_list_names_the_puzzles_screen_and_command(capsys):
    code, out, _ = run(capsys, "plugins", "list", "--json")
    assert code == 0
    puzzles = next(p for p in json.loads(out) if p["name"] == "puzzles")
    assert puzzles["status"] == "loaded"
    assert ["cli command", "puzzles"] in puzzles["registered"] and ["screen", "puzzles"] in puzzles["registered"]
