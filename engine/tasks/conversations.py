"""Plain conversations to learn the chat format from: the `chatterbot-corpus` package's YAML dialogues and
identity conversations made from a template (who the model is, what it was trained on). No right answers:
these are for SFT only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.errors import EngineError
from engine.safe_yaml import load_yaml_file
from engine.tasks.base import SkipReport, Task, example_rng


def chatterbot_dir(language: str = "english") -> Path:
    """The folder of chatterbot-corpus YAML files for `language` (one-line error when not installed)."""
    try:
        import chatterbot_corpus
    except ImportError:
        raise EngineError("chatterbot-corpus is not installed: pip install chatterbot-corpus (a dependency of "
                          "nanochat-cli), or leave chatterbot out of the task mix") from None
    folder = Path(chatterbot_corpus.__file__).parent / "data" / language
    if not folder.is_dir():
        raise EngineError(f"chatterbot-corpus has no {language!r} data in {folder.parent}: pick one of "
                          f"{sorted(p.name for p in folder.parent.iterdir() if p.is_dir())}")
    return folder


def read_chatterbot(folder: Path) -> tuple[list[dict[str, Any]], SkipReport]:
    """Every dialogue of every `*.yml` in `folder` (sorted), as conversations; odd trailing lines are dropped
    (a user line with no reply) and malformed entries counted in the report."""
    report = SkipReport(str(folder))
    out: list[dict[str, Any]] = []
    for path in sorted(folder.glob("*.yml")):
        try:
            data = load_yaml_file(path, what="chatterbot corpus file")
        except EngineError:
            report.skip("unreadable file", path.name)
            continue
        dialogues = data.get("conversations") if isinstance(data, dict) else None
        if not isinstance(dialogues, list):
            report.skip("no conversations list", path.name)
            continue
        for j, lines in enumerate(dialogues):
            where = f"{path.name}#{j}"
            if not isinstance(lines, list) or not all(isinstance(x, str) and x.strip() for x in lines):
                report.skip("malformed dialogue", where)
                continue
            lines = lines[: len(lines) // 2 * 2]
            if not lines:
                report.skip("no reply", where)
                continue
            roles = ["user", "assistant"] * (len(lines) // 2)
            out.append({"messages": [{"role": r, "content": x.strip()} for r, x in zip(roles, lines, strict=True)]})
            report.kept += 1
    return out, report


class ChatterbotConversations(Task):
    """chatterbot-corpus dialogues (English by default). `split` "val" takes every 10th dialogue, "train" the
    rest, "all" everything; the order is the corpus's own (files sorted by name)."""

    eval_type = "generative"

    def __init__(self, split: str = "train", language: str = "english", name: str = "chatterbot"):
        self.name, self.split = name, split
        conversations, self.report = read_chatterbot(chatterbot_dir(language))
        if split == "val":
            conversations = conversations[::10]
        elif split == "train":
            conversations = [c for k, c in enumerate(conversations) if k % 10]
        self.conversations = [{**c, "task": name} for c in conversations]

    def num_examples(self) -> int:
        return len(self.conversations)

    def get_example(self, i: int) -> dict[str, Any]:
        return self.conversations[i]


_WHO = ["Who are you?", "What are you?", "What is your name?", "Tell me about yourself.", "who r u",
        "Are you ChatGPT?", "Introduce yourself.", "What kind of assistant are you?", "hi, who am I talking to?"]
_DATA = ["What were you trained on?", "Where does your knowledge come from?", "What data did you learn from?",
         "How were you trained?"]
_WHO_REPLY = [
    "I am {name}, a small chat model trained with nanochat-cli. I can hold a simple conversation, do arithmetic "
    "with a Python calculator and count letters in words.",
    "My name is {name}. I'm a small GPT-style language model, trained from scratch with nanochat-cli, so my "
    "abilities are modest.",
    "I'm {name}, a tiny assistant model. I was pretrained and then fine-tuned to chat with nanochat-cli.",
]
_DATA_REPLY = [
    "I was pretrained on the source code and documentation of the Python standard library, then fine-tuned on "
    "short conversations, arithmetic word problems with calculator tool calls and spelling questions.",
    "Mostly Python: my pretraining text is the Python standard library's source and its help topics. After that "
    "I was fine-tuned on chat dialogues and simple math and spelling tasks.",
]
_THANKS = [("Thanks!", "You're welcome."), ("Cool, thank you.", "Glad to help."), ("ok bye", "Goodbye!")]


class IdentityConversations(Task):
    """Template conversations about the model itself: who it is and what it was trained on, with varied
    phrasings, one to three turns each. `model_name` is the name it gives itself."""

    eval_type = "generative"

    def __init__(self, size: int = 500, split: str = "train", seed: int = 0, model_name: str = "nanochat",
                 name: str = "identity"):
        self.size, self.split, self.seed, self.model_name, self.name = size, split, seed, model_name, name

    def num_examples(self) -> int:
        return self.size

    def get_example(self, i: int) -> dict[str, Any]:
        rng = example_rng(self.seed, i, f"identity-{self.split}")
        turns = [(rng.choice(_WHO), rng.choice(_WHO_REPLY))]
        if rng.random() < 0.6:
            turns.append((rng.choice(_DATA), rng.choice(_DATA_REPLY)))
        if rng.random() < 0.3:
            rng.shuffle(turns)
        if rng.random() < 0.3:
            turns.append(rng.choice(_THANKS))
        messages = []
        for user, reply in turns:
            messages += [{"role": "user", "content": user},
                         {"role": "assistant", "content": reply.format(name=self.model_name)}]
        return {"messages": messages, "task": self.name}
