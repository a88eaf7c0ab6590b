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
    assert {r["task"] for r in doc["results"]} == {"stdlib_next_line", "python_brackets", "offline_mc",
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


def _events(base):
    return [json.loads(x) for x in (base / "runs" / "base-eval" / "telemetry.jsonl").read_text().splitlines()]


def test_a_stop_request_ends_the_eval_stopped_without_a_results_file(tmp_path, monkeypatch):
    import engine.core_eval as core_eval
    from engine.control import send_request

    tok = train_tokenizer(tmp_path / "tok", 300)
    ckpt = save_ours(tmp_path / "base", "tiny", 7, tiny_model(tok.get_vocab_size()), tok,
                     write_data_dir(tmp_path / "data"))
    scored = []
    evaluate = core_eval.evaluate_task

    def evaluate_then_stop(*args, **kwargs):  # the stop arrives while the first task is being scored
        if not scored:
            send_request(tmp_path / "base" / "runs" / "base-eval", "stop")
        scored.append(1)
        return evaluate(*args, **kwargs)

    monkeypatch.setattr(core_eval, "evaluate_task", evaluate_then_stop)
    assert main(["--base-dir", str(tmp_path / "base"), "--device-type", "cpu", "--max-per-task", "2",
                 "--bpb-tokens", "0", "--samples", "0"]) == 0
    events = _events(tmp_path / "base")
    assert len(scored) == 1 and not list(ckpt.glob("eval_core_*.json"))
    (ack,) = [e for e in events if e["event"] == "control_ack"]
    assert ack["ok"] and "1 of 4 CORE tasks" in ack["message"]
    assert events[-1]["event"] == "run_end" and events[-1]["status"] == "stopped"


def test_save_now_and_patch_are_rejected_and_the_eval_finishes(tmp_path):
    from engine.control import send_request

    tok = train_tokenizer(tmp_path / "tok", 300)
    ckpt = save_ours(tmp_path / "base", "tiny", 7, tiny_model(tok.get_vocab_size()), tok,
                     write_data_dir(tmp_path / "data"))
    run_dir = tmp_path / "base" / "runs" / "base-eval"
    run_dir.mkdir(parents=True)
    send_request(run_dir, "save_now")
    send_request(run_dir, "patch", {"max_per_task": 1})
    assert main(["--base-dir", str(tmp_path / "base"), "--device-type", "cpu", "--max-per-task", "2",
                 "--bpb-tokens", "0", "--samples", "0"]) == 0
    events = _events(tmp_path / "base")
    acks = [(e["kind"], e["ok"]) for e in events if e["event"] == "control_ack"]
    assert acks == [("save_now", False), ("patch", False)]
    assert events[-1]["status"] == "finished" and (ckpt / "eval_core_000007.json").is_file()
