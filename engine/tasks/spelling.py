"""Spelling/counting questions ("how many r are in strawberry?") answered with a python tool call.

The words come from the embedded corpus's prose (the interpreter's pydoc topic texts, see engine.corpus):
lowercase alphabetic words of 3-14 letters, in a fixed order so a seed always gives the same questions.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from engine.tasks.base import Task, example_rng, final_answer, same_number

_WORD_RE = re.compile(r"\b[a-z]{3,14}\b")
# A small fallback for an interpreter shipped without pydoc_data (some distro builds strip it)
_FALLBACK = ("strawberry banana keyboard python function variable dictionary iterator generator exception "
             "module package interpreter character mississippi bookkeeper committee occurrence parallel").split()


@lru_cache(maxsize=1)
def corpus_words() -> tuple[str, ...]:
    """Distinct words of the embedded corpus's prose, most frequent first (ties alphabetical)."""
    try:
        from pydoc_data.topics import topics
    except ImportError:
        return tuple(_FALLBACK)
    counts: dict[str, int] = {}
    for key in sorted(topics):
        for w in _WORD_RE.findall(topics[key]):
            counts[w] = counts.get(w, 0) + 1
    words = sorted((w for w, n in counts.items() if n >= 3), key=lambda w: (-counts[w], w))
    return tuple(words) or tuple(_FALLBACK)


_ASK = ["How many {l} are in {w}?", "How many times does the letter {l} appear in the word {w}?",
        "Count the letter {l} in \"{w}\".", "how many {l}s in {w}"]


class SpellCount(Task):
    """How many times a letter occurs in a corpus word, answered by a `str.count` tool call.

    Most questions ask for a letter of the word; one in five asks for a letter it lacks (answer 0)."""

    eval_type = "generative"

    def __init__(self, size: int = 2000, split: str = "train", seed: int = 0, name: str = "spellcount"):
        self.size, self.split, self.seed, self.name = size, split, seed, name

    def num_examples(self) -> int:
        return self.size

    def get_example(self, i: int) -> dict[str, Any]:
        rng = example_rng(self.seed, i, f"spellcount-{self.split}")
        words = corpus_words()
        word = words[rng.randrange(min(len(words), 3000))]
        absent = [c for c in "abcdefghijklmnopqrstuvwxyz" if c not in word]
        letter = rng.choice(absent) if absent and rng.random() < 0.2 else rng.choice(word)
        n = word.count(letter)
        question = rng.choice(_ASK).format(l=letter, w=word)
        answer = [
            {"type": "text", "text": f"I will count the letter '{letter}' in '{word}' with Python.\n\n"},
            {"type": "python", "text": f"'{word}'.count('{letter}')"},
            {"type": "python_output", "text": str(n)},
            {"type": "text", "text": f"\n\nThe letter '{letter}' appears {n} time{'s' if n != 1 else ''} in "
                                     f"'{word}'.\n#### {n}"},
        ]
        return {"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}],
                "task": self.name, "answer": str(n)}

    def evaluate(self, conversation: dict[str, Any], response: str) -> bool:
        return same_number(final_answer(response), conversation.get("answer"))
