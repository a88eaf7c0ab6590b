"""CORE-style evaluation (engine/core_eval.py): scoring equals a per-example reference written here, the
prefix/suffix batching, the bundle loader's one-line errors, and the shipped bundle."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from engine.core_eval import (
    centered,
    common_length,
    evaluate_task,
    fewshot_examples,
    load_bundle,
    render_prompts,
    score_example,
    shipped_bundle,
    spans,
    subsample,
)
from engine.errors import EngineError
from tests.helpers.ckpt_helpers import tiny_model, train_tokenizer


@pytest.fixture(autouse=True)
def _one_thread():
    """Two BLAS threads on a loaded 2-core machine spin against each other (50x slower here)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    return train_tokenizer(tmp_path_factory.mktemp("tok"), 300)


def write_bundle(root: Path, tasks: list[tuple[str, str, int, str, list[dict]]], baselines: dict | None = None):
    (root / "eval_data").mkdir(parents=True, exist_ok=True)
    lines = ["icl_tasks:"]
    for label, kind, shots, delim, rows in tasks:
        (root / "eval_data" / f"{label}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        lines += [f"- label: {label}", f"  icl_task_type: {kind}", f"  dataset_uri: {label}.jsonl",
                  f"  num_fewshot: [{shots}]", f"  continuation_delimiter: {json.dumps(delim)}"]
    (root / "core.yaml").write_text("\n".join(lines) + "\n")
    if baselines:
        (root / "eval_meta_data.csv").write_text(
            "Eval Task,Random baseline\n" + "".join(f"{k},{v}\n" for k, v in baselines.items()))
    return root


MC = [{"query": f"Question: what is {a} plus {b}?", "choices": [str(a + b), str(a + b + 1), str(a * b), "none"],
       "gold": (a + b) % 4} for a, b in [(1, 2), (3, 4), (5, 6), (7, 8), (2, 9), (4, 4)]]
SCHEMA = [{"context_options": [f"x = [{v}", f"x = ({v}", f"x = {{{v}"], "continuation": c, "gold": g}
          for v, c, g in [("a, b", "]", 0), ("self", ")", 1), ("key", "}", 2), ("1, 2", ")", 1), ("data", "]", 0)]]
LM = [{"context": f"def {name}(self", "continuation": "):"} for name in ("run", "close", "open", "read", "write")]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    root = tmp_path_factory.mktemp("bundle")
    return write_bundle(root, [("mc", "multiple_choice", 2, " ", MC), ("schema", "schema", 1, "", SCHEMA),
                               ("lm", "language_modeling", 1, " ", LM)], {"mc": 25, "schema": 33.3333})


def reference_correct(model, tok, task, idx) -> bool:
    """One sequence at a time, no padding: the per-token log-probs of the scored span, from first principles."""
    item = task.data[idx]
    prompts = render_prompts(task.task_type, item, task.delimiter, fewshot_examples(task.data, idx, task.num_fewshot))
    seqs = [tok.encode(p, prepend=tok.get_bos_token_id()) for p in prompts]

    def token_logps(seq):
        with torch.no_grad():
            logits = model(torch.tensor([seq]))[0]
        return [torch.log_softmax(logits[p - 1].double(), -1)[seq[p]].item() for p in range(1, len(seq))], logits

    if task.task_type == "language_modeling":
        without, with_cont = seqs
        start = 0
        while start < len(without) and without[start] == with_cont[start]:
            start += 1
        _, logits = token_logps(with_cont)
        return all(int(logits[p - 1].argmax()) == with_cont[p] for p in range(start, len(with_cont)))
    if task.task_type == "multiple_choice":
        prefix = 0
        while all(len(s) > prefix for s in seqs) and len({s[prefix] for s in seqs}) == 1:
            prefix += 1
        begin = [prefix] * len(seqs)
    else:
        suffix = 0
        while all(len(s) > suffix for s in seqs) and len({s[-1 - suffix] for s in seqs}) == 1:
            suffix += 1
        begin = [len(s) - suffix for s in seqs]
    means = []
    for s, b in zip(seqs, begin, strict=True):
        lp, _ = token_logps(s)
        span = lp[b - 1:]  # lp[p-1] is the log-prob of token p
        means.append(-sum(span) / len(span))
    return min(range(len(means)), key=means.__getitem__) == item["gold"]


def test_scoring_equals_a_per_example_reference(tok, bundle):
    tasks = load_bundle(bundle)
    assert [(t.label, t.task_type, t.num_fewshot) for t in tasks] == [
        ("mc", "multiple_choice", 2), ("schema", "schema", 1), ("lm", "language_modeling", 1)]
    seen = set()
    for seed in range(3):
        model = tiny_model(tok.get_vocab_size(), seed=seed)
        for task in tasks:
            got = [score_example(model, tok, task, i, torch.device("cpu")) for i in range(len(task.data))]
            want = [reference_correct(model, tok, task, i) for i in range(len(task.data))]
            assert got == want, task.label
            seen.update(got)
            acc, n = evaluate_task(model, tok, task, torch.device("cpu"))
            assert n == len(task.data) and acc == pytest.approx(sum(want) / n)
    assert seen == {True, False}  # the fixture exercises both outcomes


def test_baselines_and_centering(bundle):
    tasks = {t.label: t for t in load_bundle(bundle)}
    assert tasks["mc"].baseline == pytest.approx(0.25)
    assert tasks["schema"].baseline == pytest.approx(1 / 3, abs=1e-5)
    assert tasks["lm"].baseline == 0.0  # no csv row: language modelling guesses nothing
    assert centered(0.25, 0.25) == 0.0 and centered(1.0, 0.25) == 1.0 and centered(0.0, 0.25) == pytest.approx(-1 / 3)


def test_prefix_and_suffix_batching():
    assert common_length([[1, 2, 3, 4], [1, 2, 5], [1, 2, 3]], "left") == 2
    assert common_length([[9, 7, 8], [6, 7, 8], [7, 8]], "right") == 2
    assert common_length([[1, 2], [1, 2]], "left") == 2
    mc = [[1, 2, 3, 4], [1, 2, 5], [1, 2, 6, 7, 8]]
    assert spans("multiple_choice", mc) == (mc, [2, 2, 2], [4, 3, 5])
    sc = [[1, 9, 7, 8], [1, 6, 6, 7, 8]]
    assert spans("schema", sc) == (sc, [2, 3], [4, 5])
    assert spans("language_modeling", [[1, 2, 3], [1, 2, 3, 4, 5]]) == ([[1, 2, 3, 4, 5]], [3], [5])


def test_few_shot_prompts_come_from_the_templates():
    data = MC[:3]
    shots = fewshot_examples(data, 0, 2)
    assert data[0] not in shots and len(shots) == 2
    prompts = render_prompts("multiple_choice", data[0], " ", shots)
    head = "".join(f"{s['query']} {s['choices'][s['gold']]}\n\n" for s in shots)
    assert prompts == [f"{head}{data[0]['query']} {c}" for c in data[0]["choices"]]
    without, with_cont = render_prompts("language_modeling", {"context": " ctx  ", "continuation": "end"}, " ", [])
    assert (without, with_cont) == ("ctx", "ctx end")


def test_subsample_is_fixed(bundle):
    task = load_bundle(bundle)[0]
    a, b = subsample(task, 3), subsample(task, 3)
    assert a.data == b.data and len(a.data) == 3 and subsample(task, -1) is task


@pytest.mark.parametrize("mutate, expect", [
    (lambda r: (r / "core.yaml").unlink(), "core.yaml not found"),
    (lambda r: (r / "core.yaml").write_text("icl_tasks: 3\n"), "no icl_tasks list"),
    (lambda r: (r / "eval_data" / "mc.jsonl").unlink(), "mc.jsonl: data file missing"),
    (lambda r: (r / "eval_data" / "mc.jsonl").write_text('{"query": "q", "choices": ["a"], "gold": 0}\n'),
     "mc.jsonl:1: options ['a'] are not a list of at least 2 strings"),
    (lambda r: (r / "eval_data" / "mc.jsonl").write_text('{"query": "q", "choices": ["a", "b"], "gold": 5}\n'
                                                          '{"query": "r", "choices": ["a", "b"], "gold": 0}\n'),
     "gold=5 is not an index"),
    (lambda r: (r / "eval_data" / "mc.jsonl").write_text("{nope\n"), "mc.jsonl:1: not JSON"),
    (lambda r: (r / "core.yaml").write_text((r / "core.yaml").read_text().replace("multiple_choice", "essay")),
     "icl_task_type 'essay' unknown"),
    (lambda r: (r / "eval_meta_data.csv").write_text("Eval Task,Random baseline\nmc,lots\n"),
     "Random baseline 'lots' is not a number"),
])
def test_bundle_errors_are_one_line(tmp_path, mutate, expect):
    root = write_bundle(tmp_path / "b", [("mc", "multiple_choice", 1, " ", MC)], {"mc": 25})
    mutate(root)
    with pytest.raises(EngineError) as e:
        load_bundle(root)
    assert expect in str(e.value) and "\n" not in str(e.value)


def test_shipped_bundle_loads_with_every_task_type():
    tasks = load_bundle(shipped_bundle())
    assert {t.task_type for t in tasks} == {"multiple_choice", "schema", "language_modeling"}
    assert all(len(t.data) >= 20 and 0 <= t.baseline < 1 for t in tasks)
    assert not math.isnan(sum(t.baseline for t in tasks))
