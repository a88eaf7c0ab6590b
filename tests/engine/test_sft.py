"""engine.sft end to end in this process, from a tiny base checkpoint made here: telemetry (stage, val loss
before and after), the chatsft checkpoint and its meta, exact resume, and one-line errors."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from engine.checkpoint import load_meta, load_model_state, save_model_and_meta
from engine.gpt import GPT, GPTConfig
from engine.sft import main
from engine.tokenizer import Tokenizer

TEXT = ("Who are you? I am nanochat, a small chat model. How many apples does Tom have now? 12 + 7 = 19 #### 19 "
        "Which of these is a color? A. red B. blue. Count the letter r in strawberry: 3. Thanks! Goodbye. ") * 40


@pytest.fixture(scope="module")
def base_ckpt(tmp_path_factory):
    """<root>/base_checkpoints/tiny/ step 0 of a random tiny GPT, its tokenizer in <root>/tok."""
    root = tmp_path_factory.mktemp("sftbase")
    tok = Tokenizer.train_from_iterator([TEXT], 320)
    tok.save(root / "tok")
    torch.manual_seed(0)
    config = GPTConfig(sequence_len=96, vocab_size=tok.get_vocab_size(), n_layer=2, n_head=2, n_kv_head=2,
                       n_embd=64, window_pattern="L")
    model = GPT(config)
    model.init_weights()
    meta = {"model_config": config.to_dict(), "tokenizer_hash": tok.fingerprint, "tokenizer_dir": str(root / "tok")}
    save_model_and_meta(root / "base_checkpoints" / "tiny", 0, model.state_dict(), meta)
    return root


FLAGS = ["--device-type", "cpu", "--tasks", "arithmetic,spellcount,multiple_choice,identity", "--task-size", "12",
         "--val-size", "4", "--device-batch-size", "2", "--eval-every", "-1", "--log-every", "1"]


def run_sft(root, run, *flags):
    return main([*FLAGS, "--base-dir", str(root), "--run", run, *flags])


def events(root, run):
    lines = (root / "runs" / run / "telemetry.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_sft_trains_from_the_base_checkpoint_and_records_it(base_ckpt):
    good = {"messages": [{"role": "user", "content": "Who are you?"}, {"role": "assistant", "content": "nanochat"}]}
    data = base_ckpt / "chats.jsonl"
    data.write_text("\n".join([json.dumps(good)] * 20 + ["{oops", json.dumps({"messages": good["messages"][::-1]})]))
    assert run_sft(base_ckpt, "s1", "--num-iterations", "4", "--matrix-lr", "0.05", "--data", str(data)) == 0
    ev = events(base_ckpt, "s1")
    warnings = [e["message"] for e in ev if e["event"] == "warning"]
    assert warnings == [f"SFT data: {data}: kept 20, skipped 2 (not JSON: 1, first at chats.jsonl:21; wrong role "
                        "order: 1, first at chats.jsonl:22)"]
    start = next(e for e in ev if e["event"] == "run_start")
    evals = [e for e in ev if e["event"] == "eval"]
    assert start["stage"] == "sft" and start["num_iterations"] == 4
    assert [e["step"] for e in evals] == [0, 4] and all(e["val_loss"] > 0 for e in evals)
    assert evals[1]["val_loss"] < evals[0]["val_loss"]  # four steps on the same kind of data help
    assert [e["step"] for e in ev if e["event"] == "step"] == [1, 2, 3, 4]
    assert ev[-1]["event"] == "run_end" and ev[-1]["status"] == "finished"
    ckpt = base_ckpt / "chatsft_checkpoints" / "s1"
    meta = load_meta(ckpt, 4)
    assert meta["stage"] == "sft" and meta["source"].endswith("base_checkpoints/tiny/model_000000.pt")
    assert meta["val_loss"] == evals[1]["val_loss"] and meta["model_config"]["n_layer"] == 2


@pytest.mark.slow
def test_sft_resumes_exactly(base_ckpt):
    assert run_sft(base_ckpt, "whole", "--num-iterations", "4") == 0
    assert run_sft(base_ckpt, "parts", "--num-iterations", "4", "--save-every", "2") == 0
    # drop the final step, as if the run had been killed after its step-2 save, and resume from there
    for p in (base_ckpt / "chatsft_checkpoints" / "parts").glob("*000004*"):
        p.unlink()
    # a newer base checkpoint of another shape appeared meanwhile: resume keeps the source it started from
    newer = base_ckpt / "base_checkpoints" / "newer"
    meta = load_meta(base_ckpt / "base_checkpoints" / "tiny", 0)
    config = GPTConfig(**{**meta["model_config"], "n_layer": 1})
    save_model_and_meta(newer, 0, GPT(config).state_dict(), {**meta, "model_config": config.to_dict()})
    try:
        assert run_sft(base_ckpt, "parts", "--num-iterations", "4", "--resume") == 0
    finally:
        shutil.rmtree(newer)
    whole = load_model_state(base_ckpt / "chatsft_checkpoints" / "whole", 4)
    parts = load_model_state(base_ckpt / "chatsft_checkpoints" / "parts", 4)
    assert all(torch.equal(whole[k], parts[k]) for k in whole)


def test_one_line_errors(base_ckpt, tmp_path, capsys):
    def error(*args):
        code = main(list(args))
        lines = capsys.readouterr().err.strip().splitlines()
        assert code != 0 and len(lines) == 1, lines
        return lines[0]

    assert error("--base-dir", str(tmp_path), "--device-type", "cpu") == (
        f"engine.sft: error: no base checkpoint in {tmp_path}/base_checkpoints: train one first with nanochat-cli "
        "train --prefab cpu-tiny")
    other = Tokenizer.train_from_iterator([TEXT[::-1]], 320)
    other.save(tmp_path / "other")
    line = error(*FLAGS, "--base-dir", str(base_ckpt), "--run", "e1", "--tokenizer-dir", str(tmp_path / "other"))
    assert "tokenizer fingerprint" in line and "differs from the checkpoint's" in line
    line = error(*FLAGS, "--base-dir", str(base_ckpt), "--run", "e2", "--data", str(tmp_path / "missing.jsonl"))
    assert line.endswith("missing.jsonl: no such file: fix the path or drop it from data")
    assert "unknown task(s) nope" in error("--tasks", "nope")
    line = error(*FLAGS, "--base-dir", str(base_ckpt), "--run", "e3", "--max-seq-len", "500")
    assert "longer than the source model's sequence_len=96" in line


ROOT = Path(__file__).resolve().parents[2]


def torchrun(module: str, *flags: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", module, "--",
           *flags]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=ROOT)


@pytest.mark.slow
def test_sft_then_chat_eval_under_torchrun(base_ckpt):
    """Two ranks (gloo): SFT's val loss falls, then chat_eval scores the result and writes its json."""
    done = torchrun("engine.sft", *FLAGS, "--base-dir", str(base_ckpt), "--run", "ddp", "--num-iterations", "6",
                    "--matrix-lr", "0.05")
    assert done.returncode == 0, done.stderr[-3000:]
    ev = events(base_ckpt, "ddp")
    assert next(e for e in ev if e["event"] == "run_start")["world_size"] == 2
    losses = [e["val_loss"] for e in ev if e["event"] == "eval"]
    assert len(losses) == 2 and losses[1] < losses[0]

    done = torchrun("engine.chat_eval", "--base-dir", str(base_ckpt), "--run", "ddp-eval", "--device-type", "cpu",
                    "--num-examples", "4", "--max-new-tokens", "16")
    assert done.returncode == 0, done.stderr[-3000:]
    ev = events(base_ckpt, "ddp-eval")
    results = [e for e in ev if e["event"] == "eval_result"]
    assert [r["task"] for r in results] == ["arithmetic", "spellcount", "multiple_choice"]
    assert all(r["n"] == 4 and 0 <= r["value"] <= 1 and r["suite"] == "chat" for r in results)
    doc = json.loads((base_ckpt / "chatsft_checkpoints" / "ddp" / "eval_chat_000006.json").read_text())
    assert [r["value"] for r in doc["results"]] == [r["value"] for r in results]
