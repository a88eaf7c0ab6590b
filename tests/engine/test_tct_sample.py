"""Schema-constrained sampling: even an untrained model's workflows parse and validate (our validator and
check-jsonschema agree); prompts continue a partial document; unconstrained sampling is the baseline."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading

import pytest
from tct_helpers import save_tct_checkpoint, tiny_tct_model

from engine.errors import EngineError
from engine.tct.validate import workflow_errors
from engine.tct_sample import is_tct_checkpoint, load_workflow_model, prompt_tokens, sample_workflow, to_yaml


@pytest.fixture(scope="module")
def model():
    return tiny_tct_model()


def test_constrained_samples_from_an_untrained_model_are_valid_workflows(model, tmp_path):
    files = []
    for seed, temperature in ((0, 1.0), (2, 0.0)):
        r = sample_workflow(model, "", max_tokens=48, temperature=temperature, seed=seed)
        doc = json.loads(r.json)
        assert r.complete and r.valid and r.errors == [] and workflow_errors(doc) == [], r.json
        assert {"on", "jobs"} <= set(doc) and r.constrained and r.sampled + r.finished >= r.new_tokens > 0
        assert r.mask_seconds > 0 and r.model_seconds > 0
        path = tmp_path / f"sample{seed}.yml"
        path.write_text(to_yaml(r.json), encoding="utf-8")
        files.append(str(path))
    exe = shutil.which("check-jsonschema") or (shutil.which("check-jsonschema", path=str(sys.prefix) + "/bin"))
    if exe:  # the reference checker (ECMA regexes) on the YAML we print
        done = subprocess.run([exe, "--builtin-schema", "vendor.github-workflows", *files], capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr


def test_prompts_continue_a_partial_document_or_name_it(model):
    r = sample_workflow(model, "name: Nightly\non:\n  schedule:\n  - cron: '0 3 * * *'\n", max_tokens=40, seed=3)
    doc = json.loads(r.json)
    assert r.valid and doc["name"] == "Nightly" and doc["on"] == {"schedule": [{"cron": "0 3 * * *"}]}
    assert list(doc)[:2] == ["name", "on"] and r.prompt_tokens == len(prompt_tokens("name: Nightly\non:\n  "
                                                                                    "schedule:\n  - cron: "
                                                                                    "'0 3 * * *'\n"))
    r = sample_workflow(model, "Build the docs", max_tokens=40, seed=4)
    assert r.valid and json.loads(r.json)["name"] == "Build the docs"
    assert prompt_tokens("") == [] and prompt_tokens("  ") == []
    with pytest.raises(EngineError, match="prompt: does not fit the workflow schema"):
        prompt_tokens("on: push\njobs: 3")
    with pytest.raises(EngineError, match="max_tokens 0: must be at least 1"):
        sample_workflow(model, "", max_tokens=0)


def test_unconstrained_sampling_and_stop(model):
    r = sample_workflow(model, "", max_tokens=24, seed=0, constrained=False)
    assert not r.constrained and r.mask_seconds == 0 and not r.valid  # an untrained model: not a workflow
    json.loads(r.json)  # still JSON: the decoder closes what it has
    stop = threading.Event()
    stop.set()
    r = sample_workflow(model, "", max_tokens=24, seed=0, stop=stop)
    assert r.stopped and r.new_tokens == 0 and not r.complete and not r.valid


def test_tct_checkpoints_load_and_others_are_refused_in_one_line(tmp_path):
    ckpt = save_tct_checkpoint(tmp_path)
    assert is_tct_checkpoint(ckpt) and is_tct_checkpoint(ckpt / "model_000001.pt")
    model, meta = load_workflow_model(ckpt)
    assert meta["step"] == 1 and model.config.vocab_size == 8192
    other = save_tct_checkpoint(tmp_path, tag="plain", kind=None)
    assert not is_tct_checkpoint(other) and not is_tct_checkpoint(tmp_path / "nothing")
    with pytest.raises(EngineError, match=r"not trained on TCT windows .*: pick the checkpoint of a tct-\* run"):
        load_workflow_model(other)


def test_yaml_keeps_key_order_and_writes_on_as_a_plain_key():
    text = to_yaml(json.dumps({"name": "x", "on": "push", "jobs": {"a": {"runs-on": "y", "steps": [{"run": "z"}]}}}))
    assert text.splitlines()[:2] == ["name: x", "on: push"]
    from engine.tct import yaml_to_json

    assert json.loads(yaml_to_json(text))["on"] == "push"


def test_cached_logits_after_backtracking_and_across_windows_equal_fresh_ones():
    import torch

    from engine.tct import tokenizer
    from engine.tct_sample import _Model

    model = tiny_tct_model(seq_len=16)
    seq = list(range(300, 340))
    lm = _Model(model)
    for k in (5, 12, 7, 15, 16, 20, 9):  # forward, back, across the window at 16, back into the first one
        got = lm.logits(seq[:k])
        fresh = _Model(model).logits(seq[:k])
        assert torch.allclose(got, fresh, atol=1e-5), k
    start = 20 // 16 * 16
    lm.logits(seq[:20])
    assert lm.fed == [tokenizer().vocab.position_token(start), *seq[start:20]]  # a window starts at 16
