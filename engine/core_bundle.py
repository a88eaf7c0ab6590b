"""Build the small CORE bundle shipped in the package: `python -m engine.core_bundle [--out DIR]`.

Offline and deterministic (seeded), in nanochat's bundle layout (`core.yaml`, `eval_data/*.jsonl`,
`eval_meta_data.csv`), one task per CORE task type, from things a model trained on the embedded corpus
(Python's standard library) can learn:

- `stdlib_def_close` (language_modeling): a method header from the stdlib cut before its `):`.
- `python_brackets` (schema): the same items opened by `[`, `(` or `{`; the shared `]` (etc.) decides.
- `arithmetic_mc` (multiple_choice): a sum with 4 numeric options.
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


def arithmetic_examples(n: int, rng: random.Random) -> list[dict[str, Any]]:
    out = []
    for _ in range(n):
        a, b = rng.randint(1, 50), rng.randint(1, 50)
        answer = a + b
        wrong = set()
        while len(wrong) < 3:
            w = answer + rng.choice([-10, -2, -1, 1, 2, 10, 11])
            if w > 0 and w != answer:
                wrong.add(w)
        choices = [str(c) for c in [answer, *sorted(wrong)]]
        rng.shuffle(choices)
        out.append({"query": f"{a} + {b} =", "choices": choices, "gold": choices.index(str(answer))})
    return out


TASKS = [  # label, type, file, few-shot, delimiter, random baseline %, builder
    ("stdlib_def_close", "language_modeling", "stdlib_def_close.jsonl", 0, "", 0.0, def_close_examples),
    ("python_brackets", "schema", "python_brackets.jsonl", 2, "", 100 / 3, bracket_examples),
    ("arithmetic_mc", "multiple_choice", "arithmetic_mc.jsonl", 3, " ", 25.0, arithmetic_examples),
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
        csv_lines.append(f"{label},{baseline:.4f}")
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
