"""The Task API: indexable sources of conversations that SFT trains on, RL rewards and chat_eval scores.

A conversation is `{"messages": [...]}` in nanochat's convention (see `Tokenizer.render_conversation`);
tasks add a few keys beside `messages` that rendering ignores: `task` (the task's name, so a mixture can
hand scoring back to the task that made the example), `answer` (the reference final answer) and, for
categorical tasks, `letters` (the answer letters offered). The last message of an example is the
reference assistant reply.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from engine.errors import EngineError

EvalType = Literal["generative", "categorical"]
LETTERS = ["A", "B", "C", "D", "E", "F", "G", "H", "I", "J"]

# the final answer line of a worked answer, GSM8K style: "#### 42"
_FINAL_RE = re.compile(r"####\s*(-?[\d,]*\.?\d+)")


def final_answer(text: str) -> str | None:
    """The number after the last `####` in `text`, commas dropped ("1,234" -> "1234"); None when absent."""
    found = _FINAL_RE.findall(text or "")
    return found[-1].replace(",", "") if found else None


def same_number(a: str | None, b: str | None) -> bool:
    """Whether two numeric strings name the same number ("3" == "3.0"); False when either is missing."""
    if a is None or b is None:
        return False
    try:
        return float(a) == float(b)
    except ValueError:
        return a.strip() == b.strip()


def render_mc(question: str, letters: Sequence[str], choices: Sequence[str]) -> str:
    """A multiple-choice prompt: the question, one `X. choice` line per option, then the instruction.
    The reply the model is trained and scored on is the letter alone."""
    if len(letters) != len(choices):
        raise EngineError(f"render_mc: {len(letters)} letters for {len(choices)} choices: give one letter per choice")
    lines = [question.strip(), ""]
    lines += [f"{letter}. {choice}" for letter, choice in zip(letters, choices, strict=True)]
    lines += ["", f"Answer with one letter: {', '.join(letters)}."]
    return "\n".join(lines)


def example_rng(seed: int, index: int, salt: str = "") -> random.Random:
    """A generator for example `index`: examples are made on demand, each the same every time."""
    return random.Random(f"{salt}:{seed}:{index}")


class Task:
    """A sized, indexable source of conversations. Subclasses set `name`, `eval_type` and implement
    `num_examples` and `get_example`; tasks with a right answer implement `evaluate` too."""

    name: str = "task"
    eval_type: EvalType = "generative"

    def num_examples(self) -> int:
        raise NotImplementedError

    def get_example(self, i: int) -> dict[str, Any]:
        raise NotImplementedError

    def evaluate(self, conversation: dict[str, Any], response: str) -> bool:
        raise EngineError(f"task {self.name}: has no right answer to score against: evaluate another task")

    def reward(self, conversation: dict[str, Any], response: str) -> float:
        """RL reward in [0, 1]: 1 for a right answer by default."""
        return float(self.evaluate(conversation, response))

    def __len__(self) -> int:
        return self.num_examples()

    def __getitem__(self, key: int | slice) -> Any:
        if isinstance(key, slice):
            return TaskSlice(self, range(len(self))[key])
        n = len(self)
        i = key + n if key < 0 else key
        if not 0 <= i < n:
            raise IndexError(f"task {self.name}: index {key} out of range for {n} examples")
        return self.get_example(i)

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, n={len(self)})"


class TaskSlice(Task):
    """Examples `indices` of another task (what `task[a:b:c]` returns); scoring goes to the parent."""

    def __init__(self, parent: Task, indices: range):
        self.parent, self.indices = parent, indices
        self.name, self.eval_type = parent.name, parent.eval_type

    def num_examples(self) -> int:
        return len(self.indices)

    def get_example(self, i: int) -> dict[str, Any]:
        return self.parent.get_example(self.indices[i])

    def evaluate(self, conversation: dict[str, Any], response: str) -> bool:
        return self.parent.evaluate(conversation, response)

    def reward(self, conversation: dict[str, Any], response: str) -> float:
        return self.parent.reward(conversation, response)

    def __getattr__(self, name: str) -> Any:  # letters and other task attributes come from the parent
        if name == "parent":
            raise AttributeError(name)
        return getattr(self.parent, name)


class ListTask(Task):
    """A task over conversations held in memory (what the loaders return)."""

    def __init__(self, conversations: list[dict[str, Any]], name: str, eval_type: EvalType = "generative"):
        self.conversations, self.name, self.eval_type = conversations, name, eval_type

    def num_examples(self) -> int:
        return len(self.conversations)

    def get_example(self, i: int) -> dict[str, Any]:
        return self.conversations[i]


class _Composite(Task):
    """Scoring for a task made of others: the example's `task` key names the task that made it."""

    tasks: list[Task]

    def _owner(self, conversation: dict[str, Any]) -> Task:
        name = conversation.get("task")
        for task in self.tasks:
            if task.name == name:
                return task
        raise EngineError(f"{self.name}: example of task {name!r} is not from this mixture: score it with its task")

    def evaluate(self, conversation: dict[str, Any], response: str) -> bool:
        return self._owner(conversation).evaluate(conversation, response)

    def reward(self, conversation: dict[str, Any], response: str) -> float:
        return self._owner(conversation).reward(conversation, response)

    @property
    def eval_type(self) -> EvalType:  # type: ignore[override]
        kinds = {t.eval_type for t in self.tasks}
        return kinds.pop() if len(kinds) == 1 else "generative"


class TaskMixture(_Composite):
    """Every example of every task, in one seeded shuffle: each task's share is its size, and a task listed
    twice is seen twice as often (repeats allowed). The same tasks and seed always give the same order."""

    def __init__(self, tasks: Sequence[Task], seed: int = 42, name: str = "mixture"):
        if not tasks:
            raise EngineError(f"{name}: no tasks to mix: pass at least one task")
        self.tasks, self.seed, self.name = list(tasks), seed, name
        self.index = [(t, i) for t, task in enumerate(self.tasks) for i in range(len(task))]
        random.Random(seed).shuffle(self.index)

    def num_examples(self) -> int:
        return len(self.index)

    def get_example(self, i: int) -> dict[str, Any]:
        t, j = self.index[i]
        return self.tasks[t].get_example(j)

    def task_of(self, i: int) -> Task:
        return self.tasks[self.index[i][0]]


class TaskSequence(_Composite):
    """Tasks one after another, in order (a curriculum): every example of the first, then the second…"""

    def __init__(self, tasks: Sequence[Task], name: str = "sequence"):
        if not tasks:
            raise EngineError(f"{name}: no tasks to chain: pass at least one task")
        self.tasks, self.name = list(tasks), name
        self.offsets = [0]
        for task in self.tasks:
            self.offsets.append(self.offsets[-1] + len(task))

    def num_examples(self) -> int:
        return self.offsets[-1]

    def get_example(self, i: int) -> dict[str, Any]:
        for t, task in enumerate(self.tasks):
            if i < self.offsets[t + 1]:
                return task.get_example(i - self.offsets[t])
        raise IndexError(i)


@dataclass
class SkipReport:
    """What a loader kept and what it skipped, by reason, with where each reason was first seen."""

    source: str
    kept: int = 0
    skipped: Counter = field(default_factory=Counter)
    first_seen: dict[str, str] = field(default_factory=dict)

    def skip(self, reason: str, where: str) -> None:
        self.skipped[reason] += 1
        self.first_seen.setdefault(reason, where)

    @property
    def total_skipped(self) -> int:
        return sum(self.skipped.values())

    def summary(self) -> str:
        """One line: `<source>: kept N, skipped M (reason: count, first at file:line; ...)`."""
        if not self.skipped:
            return f"{self.source}: kept {self.kept}, skipped 0"
        parts = "; ".join(f"{r}: {n}, first at {self.first_seen[r]}" for r, n in self.skipped.most_common())
        return f"{self.source}: kept {self.kept}, skipped {self.total_skipped} ({parts})"

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "kept": self.kept, "skipped": dict(self.skipped),
                "first_seen": dict(self.first_seen)}
