"""Completion mode: constrained samples end complete and schema-valid whatever the token budget, and the
shortest valid ending of hand-built partial documents is valid and short."""

from __future__ import annotations

import json

import pytest
from tct_helpers import tiny_tct_model

from engine.tct import encode, tokenizer
from engine.tct.complete import Completer
from engine.tct.validate import workflow_errors, workflow_validator
from engine.tct_sample import SampleResult, _Budget, _finish, sample_workflow


@pytest.fixture(scope="module")
def model():
    return tiny_tct_model()


@pytest.mark.parametrize("max_tokens", [8, 16, 32])
def test_every_constrained_sample_is_complete_and_valid_even_on_a_tiny_budget(model, max_tokens):
    import jsonschema

    from engine.tct.schema import workflow_schema

    for seed, temperature in ((0, 1.0), (1, 1.0), (2, 0.0), (3, 0.7)):
        r = sample_workflow(model, "", max_tokens=max_tokens, temperature=temperature, seed=seed, top_k=None)
        doc = json.loads(r.json)
        assert r.complete and r.valid and workflow_errors(doc) == [], (max_tokens, seed, r.json)
        jsonschema.validate(doc, workflow_schema())  # the vendored schema, plain jsonschema
        assert r.new_tokens <= max_tokens + 64, r.new_tokens  # the ending is short


def _finished(prefix: list[int]) -> tuple[dict, int]:
    tok = tokenizer()
    tokens = list(prefix)
    out = SampleResult(tokens, "", False, [], False, True, prompt_tokens=0)
    _finish(tok, Completer(tok.atoms), tokens, _Budget(0), out, workflow_validator())
    text, consumed, total = tok.decode(tokens)
    assert consumed == total == len(tokens) and tok.machine_after(tokens).done
    return json.loads(text), len(tokens) - len(prefix)


def test_shortest_valid_ending_of_hand_built_partial_documents():
    doc, n = _finished([])
    assert workflow_errors(doc) == [] and n <= 12  # on, jobs, one job with runs-on
    full = encode(json.dumps({"name": "CI", "on": {"push": {"branches": ["main"]}}, "jobs": {"build": {
        "runs-on": "ubuntu-latest", "if": "${{ github.ref }}", "steps": [
            {"uses": "actions/checkout@v4", "with": {"fetch-depth": 0}}, {"run": "make test"}]}}}))
    for cut in range(len(full)):  # every cut: inside strings, patterns, keys waiting for values, arrays
        doc, n = _finished(full[:cut])
        assert workflow_errors(doc) == [], (cut, doc)
        assert n <= 16, (cut, n, doc)
    doc, _ = _finished(full[:4])
    assert doc["name"] == "CI" and doc["on"] == {"push": {"branches": ["main"]}}


def test_completion_cost_is_what_the_machine_ending_takes():
    tok = tokenizer()
    c = Completer(tok.atoms)
    m = tok.machine_after([])
    ending = c.completion(m)
    assert ending is not None and c.cost(m) == len(ending) <= 6
    assert tok.machine_after(ending).done


def test_a_prompt_is_kept_and_finished_on_a_tiny_budget(model):
    r = sample_workflow(model, "name: Nightly\non:\n  schedule:\n  - cron: '0 3 * * *'\n", max_tokens=4, seed=5)
    doc = json.loads(r.json)
    assert r.complete and r.valid and doc["name"] == "Nightly" and doc["on"] == {"schedule": [{"cron": "0 3 * * *"}]}
