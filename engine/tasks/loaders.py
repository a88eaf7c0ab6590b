"""Loaders for real data in the formats people already have on disk, each returning (Task, SkipReport).

- SmolTalk-style conversations: `{"messages": [{"role", "content"}, ...]}` per JSONL line or parquet row;
- GSM8K: `question` and a worked `answer` ending in `#### n` (JSONL or parquet);
- MMLU / ARC multiple-choice rows: MMLU's `question, choices: [..], answer: index` and ARC's
  `question, choices: {text: [..], label: [..]}, answerKey` (JSONL, parquet, or rows already in memory).

Nothing here raises on bad data: a missing or unreadable file, a line that is not JSON, a wrong role
order, an empty or over-long conversation is counted under its reason in the report (with where it was
first seen) and skipped. The caller decides what an empty result means.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from engine.tasks.arithmetic import gsm8k_conversation, score_final_answer
from engine.tasks.base import LETTERS, ListTask, SkipReport, final_answer
from engine.tasks.multiple_choice import letter_of, mc_conversation

MAX_CHARS = 32_000  # a conversation longer than this will not fit a small model's rows anyway


def read_rows(path: str | Path, report: SkipReport) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, row) for each object row of a .jsonl or .parquet file; problems go to `report`."""
    path = Path(path).expanduser()
    if not path.is_file():
        report.skip("missing file", str(path))
        return
    if path.suffix == ".parquet":
        try:
            import pyarrow.parquet as pq

            table = pq.read_table(path)
        except Exception:  # pyarrow raises many types for a damaged file: all mean "unreadable"
            report.skip("unreadable file", str(path))
            return
        for k, row in enumerate(table.to_pylist()):
            yield f"{path.name}:row {k}", row
        return
    try:
        f = path.open("rb")
    except OSError:
        report.skip("unreadable file", str(path))
        return
    with f:
        for n, raw in enumerate(f, 1):
            where = f"{path.name}:{n}"
            if not raw.strip():
                continue
            try:
                row = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
                report.skip("not JSON", where)
                continue
            if not isinstance(row, dict):
                report.skip("not a JSON object", where)
                continue
            yield where, row


def _paths(paths: str | Path | Iterable[str | Path]) -> list[Path]:
    return [Path(paths)] if isinstance(paths, str | Path) else [Path(p) for p in paths]


def conversation_problem(messages: Any, max_chars: int = MAX_CHARS) -> str | None:
    """Why `messages` cannot be trained on (a skip reason), or None when it is a good conversation:
    an optional system message, then user/assistant turns alternating, ending with the assistant."""
    if not isinstance(messages, list) or not messages:
        return "empty conversation"
    chars = 0
    body = messages[1:] if isinstance(messages[0], dict) and messages[0].get("role") == "system" else messages
    if not body:
        return "empty conversation"
    for m in messages:
        if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant"):
            return "bad message"
        content = m.get("content")
        if isinstance(content, list) and m["role"] == "assistant":
            if not all(isinstance(p, dict) and p.get("type") in ("text", "python", "python_output")
                       and isinstance(p.get("text"), str) for p in content):
                return "bad message"
            text = "".join(p["text"] for p in content)
        elif isinstance(content, str):
            text = content
        else:
            return "bad message"
        if not text.strip():
            return "empty message"
        chars += len(text)
    for k, m in enumerate(body):
        if m["role"] != ("user" if k % 2 == 0 else "assistant"):
            return "wrong role order"
    if body[-1]["role"] != "assistant":
        return "wrong role order"
    if chars > max_chars:
        return "over-long conversation"
    return None


def load_messages(paths: str | Path | Iterable[str | Path], name: str = "messages",
                  max_chars: int = MAX_CHARS) -> tuple[ListTask, SkipReport]:
    """SmolTalk-style conversations from .jsonl and/or .parquet files."""
    files = _paths(paths)
    report = SkipReport(", ".join(str(p) for p in files))
    out = []
    for path in files:
        for where, row in read_rows(path, report):
            messages = row.get("messages")
            problem = conversation_problem(messages, max_chars)
            if problem:
                report.skip(problem, where)
                continue
            out.append({"messages": messages, "task": name})
            report.kept += 1
    return ListTask(out, name), report


load_messages_jsonl = load_messages
load_messages_parquet = load_messages


class GSM8KTask(ListTask):
    """GSM8K-style problems; scored by the final `#### n` answer."""

    def evaluate(self, conversation: dict[str, Any], response: str) -> bool:
        return score_final_answer(conversation, response)


def load_gsm8k_jsonl(paths: str | Path | Iterable[str | Path], name: str = "gsm8k") -> tuple[GSM8KTask, SkipReport]:
    """GSM8K rows (`question`, `answer` with `<<expr=result>>` calculations and a final `#### n`)."""
    files = _paths(paths)
    report = SkipReport(", ".join(str(p) for p in files))
    out = []
    for path in files:
        for where, row in read_rows(path, report):
            question, answer = row.get("question"), row.get("answer")
            if not (isinstance(question, str) and question.strip() and isinstance(answer, str)):
                report.skip("missing question or answer", where)
            elif final_answer(answer) is None:
                report.skip("no '#### n' final answer", where)
            else:
                out.append(gsm8k_conversation(question.strip(), answer, name))
                report.kept += 1
    return GSM8KTask(out, name), report


class MCTask(ListTask):
    """Multiple-choice rows; scored by the letter (categorical)."""

    def __init__(self, conversations: list[dict[str, Any]], name: str):
        super().__init__(conversations, name, "categorical")
        width = max((len(c["letters"]) for c in conversations), default=4)
        self.letters = LETTERS[:width]

    def evaluate(self, conversation: dict[str, Any], response: str) -> bool:
        return letter_of(response) == conversation.get("answer")


def mc_row(row: dict[str, Any]) -> tuple[tuple[str, list[str], int] | None, str]:
    """(question, choices, right index) of an MMLU- or ARC-style row, or (None, skip reason)."""
    question = row.get("question")
    if isinstance(question, dict):  # ARC's original JSONL nests it: {"question": {"stem", "choices"}}
        row = {**row, "choices": question.get("choices"), "question": question.get("stem")}
        question = row["question"]
    if not isinstance(question, str) or not question.strip():
        return None, "missing question"
    choices, labels = row.get("choices"), None
    if isinstance(choices, dict):  # ARC (HF): {"text": [...], "label": [...]}
        choices, labels = choices.get("text"), choices.get("label")
    elif isinstance(choices, list) and choices and all(isinstance(c, dict) for c in choices):  # ARC original
        labels, choices = [c.get("label") for c in choices], [c.get("text") for c in choices]
    if not (isinstance(choices, list) and 2 <= len(choices) <= len(LETTERS)
            and all(isinstance(c, str | int | float) and str(c).strip() for c in choices)):
        return None, "bad choices"
    answer = row.get("answerKey", row.get("answer"))
    if isinstance(answer, int) and not isinstance(answer, bool):
        index = answer
    elif isinstance(answer, str) and labels is not None and answer in labels:
        index = labels.index(answer)
    elif isinstance(answer, str) and answer.strip().upper() in LETTERS:
        index = LETTERS.index(answer.strip().upper())
    elif isinstance(answer, str) and answer.strip().isdigit():
        index = int(answer) - 1 if labels and labels[0] == "1" else int(answer)
    else:
        return None, "bad answer"
    if not 0 <= index < len(choices):
        return None, "answer out of range"
    return (question.strip(), [str(c).strip() for c in choices], index), ""


def load_mc_rows(source: str | Path | Iterable[str | Path] | Iterable[dict[str, Any]], name: str = "mc"
                 ) -> tuple[MCTask, SkipReport]:
    """MMLU/ARC-style rows from files (.jsonl/.parquet) or from dicts already in memory."""
    items = [source] if isinstance(source, str | Path) else list(source)
    report = SkipReport(name)
    out = []

    def rows() -> Iterator[tuple[str, Any]]:
        for k, item in enumerate(items):
            if isinstance(item, dict):
                yield f"row {k}", item
            elif isinstance(item, str | Path):
                yield from read_rows(item, report)
            else:
                report.skip("not a row or a file", f"item {k}")

    for where, row in rows():
        parsed, why = mc_row(row)
        if parsed is None:
            report.skip(why, where)
            continue
        question, choices, index = parsed
        letters = LETTERS[:len(choices)]
        out.append(mc_conversation(question, choices, letters[index], letters, name))
        report.kept += 1
    return MCTask(out, name), report
