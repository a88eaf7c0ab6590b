"""engine.train with a `data_source` (engine/data_source.py): a module's tokenizer and batches instead of parquet
text, masked targets, its sample hook on sample steps, checkpoints and an exact resume of its loader state."""

import json

import pytest

from engine.data_source import load_data_source
from engine.errors import EngineError
from engine.train import main

FLAGS = ["--depth", "1", "--aspect-ratio", "32", "--head-dim", "32", "--max-seq-len", "16", "--device-batch-size",
         "2", "--total-batch-size", "32", "--eval-tokens", "32", "--eval-every", "2", "--sample-every", "2",
         "--warmup-iters", "0", "--device-type", "cpu", "--data-source", "toy_source:make",
         "--data-source-options", "hello"]


def events(base, run):
    lines = (base / "runs" / run / "telemetry.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_training_uses_the_source_and_resumes_its_loader(tmp_path):
    assert main([*FLAGS, "--base-dir", str(tmp_path), "--run", "toy", "--num-iterations", "2"]) == 0
    ev = events(tmp_path, "toy")
    assert [e["data"] for e in ev if e["event"] == "plugin"] == [{"options": "hello"}]
    evals = [e for e in ev if e["event"] == "eval"]
    assert evals and all(e["val_bpb"] > 0 for e in evals)
    meta = json.loads((tmp_path / "base_checkpoints" / "toy" / "meta_000002.json").read_text())
    assert meta["data_dir"] == "toy pairs" and meta["tokenizer_hash"] == "toy-tokenizer-v1"
    assert meta["dataloader_state_dict"] == {"batches": 2, "split": "train"}
    assert main([*FLAGS, "--base-dir", str(tmp_path), "--run", "toy", "--num-iterations", "4", "--resume"]) == 0
    steps = [e["step"] for e in events(tmp_path, "toy") if e["event"] == "step"]
    assert steps == [1, 2, 3, 4]
    meta = json.loads((tmp_path / "base_checkpoints" / "toy" / "meta_000004.json").read_text())
    assert meta["dataloader_state_dict"]["batches"] == 4


@pytest.mark.parametrize("spec,words", [
    ("toy_source", "is not module:callable"),
    ("no_such_module_xyz:make", "cannot import no_such_module_xyz"),
    ("toy_source:nothing", "has no callable 'nothing'"),
    ("toy_source:BOS", "has no callable 'BOS'"),
])
def test_bad_data_source_is_one_line(tmp_path, spec, words):
    with pytest.raises(EngineError, match=words) as e:
        load_data_source(spec, None, tmp_path, 0)
    assert "\n" not in str(e.value)


def test_bad_data_source_flag_fails_the_run_in_one_line(tmp_path, capsys):
    flags = [f if f != "toy_source:make" else "no_such_module_xyz:make" for f in FLAGS]
    assert main([*flags, "--base-dir", str(tmp_path), "--run", "bad", "--num-iterations", "1"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["engine.train: error: data_source: cannot import no_such_module_xyz (No module named "
                   "'no_such_module_xyz'): install the package that provides it, or clear data_source"]
