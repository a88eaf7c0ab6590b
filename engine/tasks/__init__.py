"""Tasks: sources of conversations for SFT, RL and chat evaluation (see base.py for the API).

Offline tasks need no network: `Arithmetic` (and its easy level `EasyArithmetic`), `SpellCount`,
`MultipleChoice`, `ChatterbotConversations`,
`IdentityConversations`. Loaders read real data already on disk (loaders.py). `build_task(name, ...)`
makes an offline task by its name, as the stage configs list them.
"""

from __future__ import annotations

from engine.errors import EngineError
from engine.tasks.arithmetic import Arithmetic, EasyArithmetic, gsm8k_conversation, gsm8k_parts
from engine.tasks.base import (
    LETTERS,
    ListTask,
    SkipReport,
    Task,
    TaskMixture,
    TaskSequence,
    TaskSlice,
    final_answer,
    render_mc,
)
from engine.tasks.conversations import ChatterbotConversations, IdentityConversations
from engine.tasks.loaders import (
    load_gsm8k_jsonl,
    load_mc_rows,
    load_messages,
    load_messages_jsonl,
    load_messages_parquet,
)
from engine.tasks.multiple_choice import MultipleChoice
from engine.tasks.spelling import SpellCount

__all__ = ["Task", "TaskSlice", "ListTask", "TaskMixture", "TaskSequence", "SkipReport", "render_mc", "LETTERS",
           "final_answer", "gsm8k_parts", "gsm8k_conversation", "Arithmetic", "EasyArithmetic", "SpellCount",
           "MultipleChoice",
           "ChatterbotConversations", "IdentityConversations", "load_messages", "load_messages_jsonl",
           "load_messages_parquet", "load_gsm8k_jsonl", "load_mc_rows", "OFFLINE_TASKS", "build_task"]

# name -> (class, takes a size): the names configs use (sft_tasks, eval tasks, rl task)
OFFLINE_TASKS = {
    "arithmetic": (Arithmetic, True),
    "arithmetic_easy": (EasyArithmetic, True),
    "spellcount": (SpellCount, True),
    "multiple_choice": (MultipleChoice, True),
    "chatterbot": (ChatterbotConversations, False),
    "identity": (IdentityConversations, True),
}


def build_task(name: str, split: str = "train", size: int | None = None, seed: int = 0) -> Task:
    """An offline task by name. `size` caps the example count (generated tasks make exactly that many);
    split "train" and "val" never share generated examples."""
    if name not in OFFLINE_TASKS:
        raise EngineError(f"task {name!r}: unknown: use one of {', '.join(OFFLINE_TASKS)}")
    cls, sized = OFFLINE_TASKS[name]
    if sized:
        return cls(size=size, split=split, seed=seed) if size is not None else cls(split=split, seed=seed)
    task = cls(split=split)
    return task[:size] if size is not None else task
