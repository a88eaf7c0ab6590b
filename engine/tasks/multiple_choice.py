"""Generated 4-option multiple-choice questions with letter answers, so categorical evaluation (chat_eval
scores the logits of the answer letters) and the MC path of CORE-style eval have real data offline."""

from __future__ import annotations

from typing import Any

from engine.tasks.base import LETTERS, Task, example_rng, render_mc

_CATEGORIES = {
    "fruit": ["apple", "banana", "cherry", "grape", "mango", "pear", "plum", "lemon", "peach", "melon"],
    "animal": ["dog", "cat", "horse", "tiger", "rabbit", "eagle", "shark", "mouse", "zebra", "wolf"],
    "color": ["red", "blue", "green", "yellow", "purple", "orange", "black", "white", "brown", "pink"],
    "tool": ["hammer", "saw", "wrench", "drill", "chisel", "pliers", "shovel", "ladder", "axe", "rake"],
    "programming language": ["Python", "Rust", "Java", "Haskell", "Go", "Ruby", "Perl", "Kotlin", "Swift", "Lua"],
}
_OPPOSITES = [("hot", "cold"), ("big", "small"), ("up", "down"), ("open", "closed"), ("fast", "slow"),
              ("early", "late"), ("light", "dark"), ("full", "empty"), ("old", "new"), ("happy", "sad"),
              ("inside", "outside"), ("true", "false"), ("first", "last"), ("win", "lose"), ("push", "pull")]


def _question(rng) -> tuple[str, str, list[str]]:
    """(question, right choice, three wrong choices)."""
    kind = rng.randrange(5)
    if kind == 0:
        a, b = rng.randint(2, 40), rng.randint(2, 40)
        right = a + b
        wrong = rng.sample([d for d in range(right - 6, right + 7) if d != right and d > 0], 3)
        return f"What is {a} + {b}?", str(right), [str(w) for w in wrong]
    if kind == 1:
        nums = rng.sample(range(1, 200), 4)
        return "Which number is the largest?", str(max(nums)), [str(n) for n in nums if n != max(nums)]
    if kind == 2:
        category = rng.choice(sorted(_CATEGORIES))
        others = [w for c, ws in sorted(_CATEGORIES.items()) if c != category for w in ws]
        return f"Which of these is a {category}?", rng.choice(_CATEGORIES[category]), rng.sample(others, 3)
    if kind == 3:
        word, opposite = rng.choice(_OPPOSITES)
        if rng.random() < 0.5:
            word, opposite = opposite, word
        pool = [w for pair in _OPPOSITES for w in pair if w not in (word, opposite)]
        return f"What is the opposite of \"{word}\"?", opposite, rng.sample(pool, 3)
    words = rng.sample([w for ws in _CATEGORIES.values() for w in ws], 4)
    lengths = [len(w) for w in words]
    if lengths.count(max(lengths)) > 1:  # keep one right answer: make the longest strictly longest
        words[lengths.index(max(lengths))] += "s"
    longest = max(words, key=len)
    return "Which word has the most letters?", longest, [w for w in words if w != longest]


class MultipleChoice(Task):
    """Generated questions (arithmetic, largest number, category membership, opposites, longest word),
    four options each, the right one at a random letter; the reference reply is that letter."""

    eval_type = "categorical"
    letters = LETTERS[:4]

    def __init__(self, size: int = 1000, split: str = "train", seed: int = 0, name: str = "multiple_choice"):
        self.size, self.split, self.seed, self.name = size, split, seed, name

    def num_examples(self) -> int:
        return self.size

    def get_example(self, i: int) -> dict[str, Any]:
        rng = example_rng(self.seed, i, f"mc-{self.split}")
        question, right, wrong = _question(rng)
        choices = [right, *wrong]
        rng.shuffle(choices)
        letter = self.letters[choices.index(right)]
        return mc_conversation(question, choices, letter, self.letters, self.name)

    def evaluate(self, conversation: dict[str, Any], response: str) -> bool:
        return letter_of(response) == conversation.get("answer")


def mc_conversation(question: str, choices: list[str], letter: str, letters: list[str], task: str) -> dict[str, Any]:
    """The conversation of one MC question: render_mc prompt, the letter as the reply."""
    return {"messages": [{"role": "user", "content": render_mc(question, letters, choices)},
                         {"role": "assistant", "content": letter}],
            "task": task, "answer": letter, "letters": list(letters)}


def letter_of(response: str) -> str | None:
    """The answer letter a reply gives: its first non-space character, upper-cased."""
    text = (response or "").strip()
    return text[0].upper() if text else None
