"""engine.base_eval end to end on a tiny checkpoint: eval_result events, val bpb, samples, the json beside
the checkpoint; bad input in one line."""

from __future__ import annotations

import json

import pytest
import torch

from engine.base_eval import main
from tests.helpers.ckpt_helpers import save_ours, tiny_model, train_tokenizer, write_data_dir


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_base_eval_writes_events_and_the_eval_json(tmp_path):
    tok = train_tokenizer(tmp_path / "tok", 300)
    data = write_data_dir(tmp_path / "data")
    ckpt = save_ours(tmp_path / "base", "tiny", 7, tiny_model(tok.get_vocab_size()), tok, data)
    code = main(["--base-dir", str(tmp_path / "base"), "--device-type", "cpu", "--max-per-task", "4",
                 "--bpb-tokens", "1024", "--device-batch-size", "4", "--samples", "1", "--sample-tokens", "4"])
    assert code == 0
    doc = json.loads((ckpt / "eval_core_000007.json").read_text())
    assert doc["suite"] == "core" and doc["step"] == 7 and doc["checkpoint"].endswith("model_000007.pt")
    assert {r["task"] for r in doc["results"]} == {"stdlib_def_close", "python_brackets", "offline_mc",
                                                  "arithmetic_answer"}
    for r in doc["results"]:
        assert r["n"] == 4 and r["centered"] == pytest.approx((r["value"] - r["baseline"]) / (1 - r["baseline"]))
    assert doc["score"] == pytest.approx(sum(r["centered"] for r in doc["results"]) / 4)
    assert doc["val_bpb"] > 0 and len(doc["samples"]) == 1
    events = [json.loads(x) for x in (tmp_path / "base" / "runs" / "base-eval" / "telemetry.jsonl").read_text()
              .splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "run_start" and events[0]["stage"] == "eval" and kinds[-1] == "run_end"
    assert kinds.count("eval_result") == 4 and "eval" in kinds and "sample" in kinds
    assert events[-1]["status"] == "finished"


def test_bad_bundle_and_missing_checkpoint_are_one_line(tmp_path, capsys):
    assert main(["--base-dir", str(tmp_path), "--device-type", "cpu"]) == 1
    err = capsys.readouterr().err.strip()
    assert "no base checkpoint" in err and "\n" not in err
    assert main(["--base-dir", str(tmp_path), "--bundle", str(tmp_path / "nowhere")]) == 1
    err = capsys.readouterr().err.strip()
    assert "core.yaml not found" in err and "\n" not in err
    assert main(["--max-per-task", "x"]) == 2
    assert "max_per_task" in capsys.readouterr().err
