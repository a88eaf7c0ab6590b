"""`nanochat-cli workflow sample | eval` (the tct plugin): YAML + the validation result, figures, and one-line
errors for a missing or non-TCT checkpoint and bad options."""

from __future__ import annotations

import json

import pytest
from tct_helpers import save_tct_checkpoint

from engine.tct import yaml_to_json
from engine.tct.validate import workflow_errors
from nanochat_cli.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return save_tct_checkpoint(tmp_path_factory.mktemp("tct"))


def test_sample_prints_a_valid_workflow_and_its_validation(ckpt, capsys):
    code, out, err = run(capsys, "workflow", "sample", "--checkpoint", str(ckpt), "--prompt", "Docs",
                         "--max-tokens", "32", "--seed", "0")
    assert code == 0 and err == "", err
    doc = json.loads(yaml_to_json(out))  # YAML 1.2 as GitHub reads it; the result lines are comments
    assert doc["name"] == "Docs" and workflow_errors(doc) == []
    comments = [line for line in out.splitlines() if line.startswith("# ")]
    assert comments[0].startswith("# valid: the workflow schema accepts it (constrained sampling")
    assert "ms/token" in comments[-1]
    code, out, _ = run(capsys, "workflow", "sample", "--checkpoint", str(ckpt), "--max-tokens", "16", "--json",
                       "--unconstrained")
    result = json.loads(out)
    assert code == (0 if result["valid"] else 1) and result["constrained"] is False


def test_eval_reports_the_valid_share_both_ways(ckpt, capsys):
    code, out, _ = run(capsys, "workflow", "eval", "--checkpoint", str(ckpt), "-n", "1", "--max-tokens", "24",
                       "--json")
    figures = json.loads(out)
    assert code == 0 and figures["constrained"]["valid"] == figures["constrained"]["samples"] == 1
    assert figures["unconstrained"]["samples"] == 1 and figures["constrained"]["constraint_ms_per_token"] > 0


@pytest.mark.parametrize(("argv", "message"), [
    (["--checkpoint", "/nonexistent/ckpt"], "/nonexistent/ckpt: no such checkpoint"),
    (["--checkpoint", "CKPT", "--max-tokens", "0"], "--max-tokens 0: must be at least 1"),
    (["--checkpoint", "CKPT", "--temperature", "-1"], "--temperature -1.0: must be 0 (greedy) or more"),
    (["--checkpoint", "CKPT", "--device", "tpu"], "--device 'tpu': use cpu or cuda"),
    (["--checkpoint", "PLAIN"], "not trained on TCT windows"),
])
def test_bad_input_is_one_line(ckpt, tmp_path, capsys, argv, message):
    plain = save_tct_checkpoint(tmp_path, tag="plain", kind=None)
    argv = [{"CKPT": str(ckpt), "PLAIN": str(plain)}.get(a, a) for a in argv]
    code, out, err = run(capsys, "workflow", "sample", *argv)
    assert code == 2 and out == "" and err.count("\n") == 1 and message in err, err
    assert err.startswith("nanochat-cli: error: ")
