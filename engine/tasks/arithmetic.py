"""Arithmetic word problems answered with the calculator tool, and GSM8K's answer convention.

GSM8K writes each calculation of a worked answer as `<<expr=result>>` and ends with `#### answer`.
`gsm8k_parts` turns such an answer into assistant parts: the text up to a calculation, a `python` part
with the expression, a `python_output` part with its result, and the text after it. `Arithmetic` makes
word problems of its own whose worked answers are written in that convention and converted the same way,
so generated and real data teach one format. Reward: the final `####` answer is right.
"""

from __future__ import annotations

import re
from typing import Any

from engine.tasks.base import Task, example_rng, final_answer, same_number

_CALC_RE = re.compile(r"<<([^<>=]*)=([^<>]*)>>")


def gsm8k_parts(answer: str) -> list[dict[str, str]]:
    """GSM8K's worked answer as assistant parts: each `<<expr=result>>` becomes a python call and its output."""
    parts: list[dict[str, str]] = []
    pos = 0
    for m in _CALC_RE.finditer(answer):
        if m.start() > pos:
            parts.append({"type": "text", "text": answer[pos:m.start()]})
        parts.append({"type": "python", "text": m.group(1).strip()})
        parts.append({"type": "python_output", "text": m.group(2).strip()})
        pos = m.end()
    if pos < len(answer):
        parts.append({"type": "text", "text": answer[pos:]})
    return parts


def gsm8k_conversation(question: str, answer: str, task: str) -> dict[str, Any]:
    """A conversation from a GSM8K-style (question, worked answer ending in `#### n`) pair."""
    return {"messages": [{"role": "user", "content": question},
                         {"role": "assistant", "content": gsm8k_parts(answer)}],
            "task": task, "answer": final_answer(answer)}


def score_final_answer(conversation: dict[str, Any], response: str) -> bool:
    """Right when the response's last `#### n` equals the reference answer."""
    return same_number(final_answer(response), conversation.get("answer"))


_NAMES = ["Ada", "Ben", "Chloe", "Dev", "Emma", "Farid", "Grace", "Hugo", "Iris", "Jon", "Kemi", "Leo", "Maya",
          "Nia", "Omar", "Pia", "Raj", "Sara", "Tom", "Uma", "Vik", "Wen", "Yusuf", "Zoe"]
_ITEMS = ["apple", "book", "marble", "pencil", "sticker", "cookie", "card", "shell", "coin", "stamp", "egg", "toy car"]


ONE_STEP_KINDS = 4  # kinds 0-3 take one calculation, 4-5 two


def _problem(rng, top: int, kinds: int = 6) -> tuple[str, str]:
    """One word problem and its worked answer in GSM8K's convention; `kinds` 4 keeps to one calculation."""
    name, friend = rng.sample(_NAMES, 2)
    item = rng.choice(_ITEMS)
    kind = rng.randrange(kinds)
    a, b, c = rng.randint(2, top), rng.randint(2, top), rng.randint(2, 9)
    if kind == 0:
        r = a + b
        return (f"{name} has {a} {item}s and gets {b} more. How many {item}s does {name} have now?",
                f"{name} has {a} + {b} = <<{a}+{b}={r}>>{r} {item}s.\n#### {r}")
    if kind == 1:
        a, b = max(a, b), min(a, b)
        r = a - b
        return (f"{name} had {a} {item}s and gave {b} of them to {friend}. How many {item}s are left?",
                f"{name} has {a} - {b} = <<{a}-{b}={r}>>{r} {item}s left.\n#### {r}")
    if kind == 2:
        r = c * b
        return (f"{name} buys {c} boxes of {item}s with {b} {item}s in each box. How many {item}s is that?",
                f"That is {c} * {b} = <<{c}*{b}={r}>>{r} {item}s.\n#### {r}")
    if kind == 3:
        each = rng.randint(2, max(2, top // c))
        total = each * c
        return (f"{c} friends share {total} {item}s equally. How many {item}s does each friend get?",
                f"Each friend gets {total} // {c} = <<{total}//{c}={each}>>{each} {item}s.\n#### {each}")
    if kind == 4:
        r1 = c * b
        r = a + r1
        return (f"{name} has {a} {item}s and buys {c} bags with {b} {item}s each. How many {item}s does "
                f"{name} have in total?",
                f"The bags hold {c} * {b} = <<{c}*{b}={r1}>>{r1} {item}s.\n"
                f"In total {name} has {a} + {r1} = <<{a}+{r1}={r}>>{r} {item}s.\n#### {r}")
    r1 = a * c
    spend = rng.randint(1, r1)
    r = r1 - spend
    return (f"{name} earns {a} dollars an hour and works {c} hours, then spends {spend} dollars. How many "
            f"dollars does {name} have left?",
            f"{name} earns {a} * {c} = <<{a}*{c}={r1}>>{r1} dollars.\n"
            f"After spending, {name} has {r1} - {spend} = <<{r1}-{spend}={r}>>{r} dollars left.\n#### {r}")


class Arithmetic(Task):
    """Generated word problems (one or two calculations each) with calculator tool calls in the answer.

    `size` examples, each made on demand from (seed, index); `split` "val" draws from other seeds than
    "train", so held-out problems are new ones. `top` bounds the numbers in the question; `one_step` keeps
    to the four one-calculation kinds (answers half as long: a tiny model learns them in a few dozen SFT
    steps, which the slow pipeline test relies on)."""

    eval_type = "generative"

    def __init__(self, size: int = 2000, split: str = "train", seed: int = 0, top: int = 50,
                 name: str = "arithmetic", one_step: bool = False):
        self.size, self.split, self.seed, self.top, self.name = size, split, seed, top, name
        self.kinds = ONE_STEP_KINDS if one_step else 6

    def num_examples(self) -> int:
        return self.size

    def get_example(self, i: int) -> dict[str, Any]:
        question, answer = _problem(example_rng(self.seed, i, f"arithmetic-{self.split}"), self.top, self.kinds)
        return gsm8k_conversation(question, answer, self.name)

    def evaluate(self, conversation: dict[str, Any], response: str) -> bool:
        return score_final_answer(conversation, response)


class EasyArithmetic(Arithmetic):
    """The easy level, offline task `arithmetic_easy`: one calculation per problem on one-digit numbers (a
    division shares at most 9 × 2 items)."""

    def __init__(self, size: int = 2000, split: str = "train", seed: int = 0):
        super().__init__(size, split, seed, top=9, name="arithmetic_easy", one_step=True)
