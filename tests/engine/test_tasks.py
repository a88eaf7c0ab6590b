"""Tasks: the mixture's order is seeded and proportional, slices are tasks, generated examples are right
(tool outputs are what the tool prints, references score 1), and loaders count and skip bad rows."""

import json
import os
from collections import Counter

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from engine.checkpoint import resolve_source
from engine.engine import repl_script
from engine.errors import EngineError
from engine.tasks import (
    OFFLINE_TASKS,
    ListTask,
    TaskMixture,
    TaskSequence,
    build_task,
    gsm8k_parts,
    load_gsm8k_jsonl,
    load_mc_rows,
    load_messages,
    render_mc,
)


def text_of(conversation: dict) -> str:
    content = conversation["messages"][-1]["content"]
    return content if isinstance(content, str) else "".join(p["text"] for p in content if p["type"] == "text")


def test_mixture_order_is_seeded_and_proportional():
    tasks = [ListTask([{"messages": [], "task": "a", "i": i} for i in range(300)], "a"),
             ListTask([{"messages": [], "task": "b", "i": i} for i in range(100)], "b")]
    m1, m2 = TaskMixture(tasks, seed=7), TaskMixture(tasks, seed=7)
    order = [(m1[i]["task"], m1[i]["i"]) for i in range(len(m1))]
    assert order == [(m2[i]["task"], m2[i]["i"]) for i in range(len(m2))]
    assert order != [(x["task"], x["i"]) for x in TaskMixture(tasks, seed=8)]
    assert Counter(order) == Counter((t.name, i) for t in tasks for i in range(len(t)))  # each example once
    for start in range(0, 400, 100):  # every quarter holds about 3 a's per b
        share = sum(name == "a" for name, _ in order[start:start + 100]) / 100
        assert 0.6 < share < 0.9
    repeated = TaskMixture([tasks[1], tasks[1]], seed=1)  # a task listed twice is seen twice
    assert Counter(x["i"] for x in repeated) == Counter({i: 2 for i in range(100)})


def test_slices_sequences_and_indexing():
    task = build_task("arithmetic", size=10)
    part = task[2:8:2]
    assert len(part) == 3 and part[1] == task[4] and part[-1] == task[6]
    assert part.evaluate(task[4], text_of(task[4]))
    seq = TaskSequence([task[:2], build_task("identity", size=3)])
    assert [x["task"] for x in seq] == ["arithmetic"] * 2 + ["identity"] * 3
    with pytest.raises(IndexError):
        task[10]


@pytest.mark.parametrize("name", sorted(OFFLINE_TASKS))
def test_offline_tasks_make_renderable_conversations(name):
    task = build_task(name, size=20)
    assert len(task) == 20
    val = build_task(name, "val", size=20)
    for i in range(len(task)):
        ex = task[i]
        assert ex == task[i]  # made the same every time
        roles = [m["role"] for m in ex["messages"]]
        assert roles == ["user", "assistant"] * (len(roles) // 2) and roles
        if task.eval_type == "categorical" or name in ("arithmetic", "arithmetic_easy", "spellcount"):
            assert task.evaluate(ex, text_of(ex))  # the reference answer scores
            assert not task.evaluate(ex, "no idea")
    assert all(val[i] != task[i] for i in range(5)) or name == "chatterbot"


def test_easy_arithmetic_is_one_calculation_on_small_numbers():
    import re

    task = build_task("arithmetic_easy", size=200)
    assert task.name == "arithmetic_easy" and task.eval_type == "generative"
    for ex in task:
        parts = ex["messages"][-1]["content"]
        assert [p["type"] for p in parts] == ["text", "python", "python_output", "text"] and ex["task"] == task.name
        assert max(int(n) for n in re.findall(r"\d+", parts[1]["text"])) <= 18  # 9 at most, a division's total 18
    hard = build_task("arithmetic", size=200)
    assert sum(len(ex["messages"][-1]["content"]) > 4 for ex in hard) > 20  # the full task has two-step ones


def test_tool_outputs_are_what_the_calculator_prints():
    for name in ("arithmetic", "arithmetic_easy", "spellcount"):
        task = build_task(name, size=200)
        for ex in task:
            parts = ex["messages"][-1]["content"]
            for call, out in zip(parts, parts[1:], strict=False):
                if call["type"] == "python":
                    lines: list[str] = []
                    exec(repl_script(call["text"]), {"print": lines.append})  # noqa: S102
                    assert out["type"] == "python_output" and lines == [out["text"]], call


def test_gsm8k_convention_becomes_tool_calls():
    parts = gsm8k_parts("She sold 48/2 = <<48/2=24>>24 clips.\nIn all 48+24 = <<48+24=72>>72.\n#### 72")
    assert [p["type"] for p in parts] == ["text", "python", "python_output", "text", "python", "python_output",
                                          "text"]
    assert parts[1]["text"] == "48/2" and parts[2]["text"] == "24" and parts[-1]["text"].endswith("#### 72")


def test_render_mc_lists_letters_and_choices():
    text = render_mc("Capital of France?", ["A", "B"], ["Paris", "Rome"])
    assert "A. Paris" in text and "B. Rome" in text and text.startswith("Capital of France?")
    with pytest.raises(EngineError):
        render_mc("q", ["A"], ["x", "y"])


def test_messages_loader_counts_and_skips_bad_rows(tmp_path):
    good = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
    system = {"messages": [{"role": "system", "content": "be brief"}, *good["messages"]]}
    lines = [json.dumps(good), "{not json", json.dumps([1]), json.dumps({"messages": []}),
             json.dumps({"messages": good["messages"][::-1]}),
             json.dumps({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": " "}]}),
             json.dumps({"messages": [{"role": "user", "content": "x" * 50}, {"role": "assistant", "content": "y"}]}),
             "", json.dumps(system)]
    (tmp_path / "a.jsonl").write_text("\n".join(lines))
    pq.write_table(pa.Table.from_pylist([good, {"messages": good["messages"][:1]}]), tmp_path / "b.parquet")
    (tmp_path / "c.parquet").write_bytes(b"PAR1 broken")
    task, report = load_messages([tmp_path / "a.jsonl", tmp_path / "b.parquet", tmp_path / "c.parquet",
                                  tmp_path / "missing.jsonl"], max_chars=40)
    assert len(task) == report.kept == 3
    assert dict(report.skipped) == {"not JSON": 1, "not a JSON object": 1, "empty conversation": 1,
                                    "wrong role order": 2, "empty message": 1, "over-long conversation": 1,
                                    "unreadable file": 1, "missing file": 1}
    assert report.first_seen["not JSON"] == "a.jsonl:2" and "missing file" in report.summary()


def test_gsm8k_and_mc_loaders(tmp_path):
    rows = [{"question": "2+2?", "answer": "2+2=<<2+2=4>>4\n#### 4"}, {"question": "q", "answer": "no final"},
            {"answer": "#### 1"}]
    (tmp_path / "g.jsonl").write_text("\n".join(map(json.dumps, rows)))
    task, report = load_gsm8k_jsonl(tmp_path / "g.jsonl")
    assert len(task) == 1 and task.evaluate(task[0], "... #### 4") and not task.evaluate(task[0], "#### 5")
    assert dict(report.skipped) == {"no '#### n' final answer": 1, "missing question or answer": 1}

    mmlu = {"question": "1+1?", "choices": ["1", "2", "3", "4"], "answer": 1}
    arc = {"question": "Sky?", "choices": {"text": ["red", "blue", "green"], "label": ["A", "B", "C"]},
           "answerKey": "B"}
    arc_num = {"question": "n?", "choices": {"text": ["x", "y"], "label": ["1", "2"]}, "answerKey": "2"}
    bad = [{"question": "", "choices": ["a", "b"], "answer": 0}, {"question": "q", "choices": ["a"], "answer": 0},
           {"question": "q", "choices": ["a", "b"], "answer": 5}, {"question": "q", "choices": ["a", "b"]}]
    mc, report = load_mc_rows([mmlu, arc, arc_num, *bad])
    assert [x["answer"] for x in mc] == ["B", "B", "B"] and mc.eval_type == "categorical"
    assert mc.letters == ["A", "B", "C", "D"] and mc.evaluate(mc[1], " b") and not mc.evaluate(mc[1], "A")
    assert dict(report.skipped) == {"missing question": 1, "bad choices": 1, "answer out of range": 1,
                                    "bad answer": 1}


def test_resolve_source(tmp_path):
    with pytest.raises(EngineError, match=r"no base checkpoint in .*base_checkpoints: train one first"):
        resolve_source(tmp_path, "sft")
    for tag, age in (("old", 100), ("new", 0)):
        d = tmp_path / "base_checkpoints" / tag
        d.mkdir(parents=True)
        for step in (5, 10):
            (d / f"model_{step:06d}.pt").write_bytes(b"x")
            (d / f"meta_{step:06d}.json").write_text("{}")
            os.utime(d / f"meta_{step:06d}.json", (1e9 - age, 1e9 - age))
    assert resolve_source(tmp_path, "sft") == (tmp_path / "base_checkpoints" / "new", 10)
    assert resolve_source(tmp_path, "base_eval", tmp_path / "base_checkpoints" / "old", 5)[1] == 5
    old_model = tmp_path / "base_checkpoints" / "old" / "model_000005.pt"
    assert resolve_source(tmp_path, "sft", old_model) == (old_model.parent, 5)
    with pytest.raises(EngineError, match="step 7 is not a complete checkpoint"):
        resolve_source(tmp_path, "sft", old_model.parent, 7)
    with pytest.raises(EngineError, match="no sft checkpoint"):
        resolve_source(tmp_path, "rl")
    with pytest.raises(EngineError, match="no such checkpoint"):
        resolve_source(tmp_path, "sft", tmp_path / "nope")
