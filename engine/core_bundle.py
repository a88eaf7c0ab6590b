"""Build the small CORE bundle shipped in the package: `python -m engine.core_bundle [--out DIR]`.

Offline and deterministic (seeded), in nanochat's bundle layout (`core.yaml`, `eval_data/*.jsonl`,
`eval_meta_data.csv`), every CORE task type, from the offline tasks (engine.tasks, held-out "val" split) and
from things a model trained on the embedded corpus (Python's standard library) can learn:

- `stdlib_def_close` (language_modeling): a method header from the stdlib cut before its `):`.
- `python_brackets` (schema): the same items opened by `[`, `(` or `{`; the shared `]` (etc.) decides.
- `offline_mc` (multiple_choice): engine.tasks.MultipleChoice's questions, scored on the option texts.
- `arithmetic_answer` (language_modeling): engine.tasks.Arithmetic's worked answers; the final number decides.
"""

from __future__ import annotations

import argparse
import json
import random
import re
from pathlib import Path
from typing import Any

from engine.shared import atomic_write

SEED = 8
PER_TASK = 60
_DEF_RE = re.compile(r"^(\s*def \w+\(self)\):\s*$")
_NAMES = ["alpha", "beta", "count", "data", "item", "key", "name", "path", "size", "value", "x", "y"]
_OPEN_CLOSE = [("[", "]"), ("(", ")"), ("{", "}")]


def def_close_examples(n: int, rng: random.Random) -> list[dict[str, Any]]:
    """Context: up to 3 lines of stdlib code and a `def m(self` header; continuation `):`."""
    from engine.corpus import documents

    found = []
    for _name, text in documents(max_docs=4000):
        lines = text.splitlines()
        for i, line in enumerate(lines):
            m = _DEF_RE.match(line)
            if m and i >= 1:
                context = "\n".join(lines[max(0, i - 3):i] + [m.group(1)])
                found.append({"context": context, "continuation": "):"})
    rng.shuffle(found)
    return found[:n]


def bracket_examples(n: int, rng: random.Random) -> list[dict[str, Any]]:
    out = []
    for _ in range(n):
        items = ", ".join(rng.sample(_NAMES, rng.randint(2, 4)))
        var = rng.choice(["values", "args", "keys", "result", "parts"])
        gold = rng.randrange(len(_OPEN_CLOSE))
        options = [f"{var} = {o}{items}" for o, _c in _OPEN_CLOSE]
        out.append({"context_options": options, "continuation": _OPEN_CLOSE[gold][1], "gold": gold})
    return out


_OPTION_RE = re.compile(r"^([A-Z])\. (.*)$")


def offline_mc_examples(n: int, rng: random.Random) -> list[dict[str, Any]]:
    """engine.tasks.MultipleChoice questions as CORE rows: the question, its option texts, the right index."""
    from engine.tasks import build_task

    task = build_task("multiple_choice", "val", n, rng.randrange(1 << 30))
    out = []
    for i in range(len(task)):
        conv = task[i]
        text = conv["messages"][0]["content"]
        choices = [m.group(2) for line in text.splitlines() if (m := _OPTION_RE.match(line))]
        gold = conv["letters"].index(conv["answer"])
        out.append({"query": f"Question: {text.split(chr(10) + chr(10))[0]}\nAnswer:", "choices": choices,
                    "gold": gold})
    return out


def arithmetic_answer_examples(n: int, rng: random.Random) -> list[dict[str, Any]]:
    """engine.tasks.Arithmetic problems as plain text (tool calls folded into the prose) up to `####`."""
    from engine.tasks import build_task

    task = build_task("arithmetic", "val", n, rng.randrange(1 << 30))
    out = []
    for i in range(len(task)):
        conv = task[i]
        question = conv["messages"][0]["content"]
        prose = "".join(p["text"] for p in conv["messages"][1]["content"] if p["type"] == "text")
        worked = prose.rsplit("####", 1)[0].strip()
        out.append({"context": f"Question: {question}\nAnswer: {worked}\n####", "continuation": conv["answer"]})
    return out


TASKS = [  # label, type, file, few-shot, delimiter, random baseline %, builder
    ("stdlib_def_close", "language_modeling", "stdlib_def_close.jsonl", 0, "", 0.0, def_close_examples),
    ("python_brackets", "schema", "python_brackets.jsonl", 2, "", 100 / 3, bracket_examples),
    ("offline_mc", "multiple_choice", "offline_mc.jsonl", 3, " ", 25.0, offline_mc_examples),
    ("arithmetic_answer", "language_modeling", "arithmetic_answer.jsonl", 2, " ", 0.0, arithmetic_answer_examples),
]


def build(out_dir: Path, per_task: int = PER_TASK, seed: int = SEED) -> Path:
    out_dir = Path(out_dir)
    yaml_lines = ["# built by `python -m engine.core_bundle`: edit that, not this", "icl_tasks:"]
    csv_lines = ["Eval Task,Random baseline"]
    for i, (label, kind, uri, shots, delim, baseline, builder) in enumerate(TASKS):
        rows = builder(per_task, random.Random(seed * 1000 + i))
        atomic_write(out_dir / "eval_data" / uri, "".join(json.dumps(r) + "\n" for r in rows))
        yaml_lines += [f"- label: {label}", f"  icl_task_type: {kind}", f"  dataset_uri: {uri}",
                       f"  num_fewshot: [{shots}]", f"  continuation_delimiter: {json.dumps(delim)}"]
        csv_lines.append(f"{label},{baseline:.6f}")
    atomic_write(out_dir / "core.yaml", "\n".join(yaml_lines) + "\n")
    atomic_write(out_dir / "eval_meta_data.csv", "\n".join(csv_lines) + "\n")
    return out_dir


def main(argv: list[str] | None = None) -> int:
    from engine.core_eval import shipped_bundle

    p = argparse.ArgumentParser(prog="engine.core_bundle", description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(shipped_bundle()), help="bundle dir to write (default: the shipped one)")
    p.add_argument("--per-task", type=int, default=PER_TASK, help="examples per task")
    args = p.parse_args(argv)
    print(f"wrote {build(Path(args.out), args.per_task)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
