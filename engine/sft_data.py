"""SFT batches: conversations rendered to (ids, mask) and packed into fixed rows by best fit, with padding.

Each rank reads its own stride of the rendered conversations (rank, rank+W, …, cycling for more epochs)
into a small buffer. A row of T+1 tokens is filled by repeatedly taking the longest buffered conversation
that still fits; when none fits, the rest of the row is padding. Inputs are the row's first T tokens, targets
the last T, and a target is -1 (no loss) wherever its mask is 0: user turns, tool outputs, padding. So the
loss falls only on what the assistant writes. Conversations are cut to T+1 tokens when rendered, so every
one fits an empty row.

The state (next stride position and the positions waiting in the buffer) is a small dict saved with each
checkpoint; a loader built from it yields exactly the batches the saved run would have yielded next.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch

from engine.errors import EngineError
from engine.tasks.base import SkipReport, Task
from engine.tokenizer import Tokenizer

Doc = tuple[list[int], list[int]]  # (ids, mask) of one rendered conversation


def render_task(tokenizer: Tokenizer, task: Task, max_tokens: int, report: SkipReport | None = None) -> list[Doc]:
    """Every conversation of `task` rendered and cut to `max_tokens`; conversations that fail to render or
    keep no assistant token within the cut are counted in `report` and left out."""
    docs: list[Doc] = []
    for i in range(len(task)):
        conversation = task[i]
        try:
            ids, mask = tokenizer.render_conversation(conversation, max_tokens=max_tokens)
        except EngineError:
            if report is not None:
                report.skip("unrenderable conversation", f"{conversation.get('task', task.name)}#{i}")
            continue
        if not any(mask[1:]):
            if report is not None:
                report.skip("no assistant tokens within max_seq_len", f"{conversation.get('task', task.name)}#{i}")
            continue
        docs.append((ids, mask))
        if report is not None:
            report.kept += 1
    return docs


def pack_row(buffer: list[int], docs: list[Doc], width: int) -> list[int]:
    """Best fit: the buffered doc numbers placed in one row of `width` tokens, removed from `buffer`.
    Takes the longest doc that fits the space left (the earliest of equals) until none fits."""
    placed: list[int] = []
    room = width
    while True:
        best = -1
        for j, d in enumerate(buffer):
            n = len(docs[d][0])
            if n <= room and (best < 0 or n > len(docs[buffer[best]][0])):
                best = j
        if best < 0:
            return placed
        d = buffer.pop(best)
        placed.append(d)
        room -= len(docs[d][0])


def row_tensors(placed: list[int], docs: list[Doc], width: int, pad_id: int) -> tuple[list[int], list[int]]:
    """The ids and mask of a packed row: the docs end to end, then pad_id with mask 0."""
    ids: list[int] = []
    mask: list[int] = []
    for d in placed:
        ids += docs[d][0]
        mask += docs[d][1]
    ids += [pad_id] * (width - len(ids))
    mask += [0] * (width - len(mask))
    return ids, mask


class PackedBatches:
    """Yields (inputs [B, T], targets [B, T], state) forever (`epochs=None`) or until the docs run out.

    `docs` is the full list; this rank reads positions k = 0, 1, … as doc (rank + k·world_size) mod len.
    With `epochs` set, positions stop at epochs × (this rank's share) and the last batch is padded with
    empty rows (all targets -1)."""

    def __init__(self, docs: list[Doc], batch_size: int, seq_len: int, pad_id: int, rank: int = 0,
                 world_size: int = 1, buffer_size: int = 64, device: torch.device | str = "cpu",
                 state: dict[str, Any] | None = None, epochs: int | None = None):
        if not docs:
            raise EngineError("SFT data: no conversations to train on: add tasks or data files")
        self.docs, self.B, self.T, self.pad_id = docs, batch_size, seq_len, pad_id
        self.rank, self.world = rank, world_size
        self.buffer_size, self.device = buffer_size, device
        share = len(range(rank, len(docs), world_size)) if len(docs) > rank else 0
        self.limit = None if epochs is None else epochs * share
        self.k, self.buffer = 0, []
        if state is not None:
            if state.get("num_docs") != len(docs):
                raise EngineError(f"SFT resume: the checkpoint's data had {state.get('num_docs')} conversations, "
                                  f"this config gives {len(docs)}: use the same tasks and data, or start fresh")
            self.k, self.buffer = int(state["k"]), [int(p) for p in state["buffer"]]

    def doc_of(self, k: int) -> int:
        return (self.rank + k * self.world) % len(self.docs)

    def state(self) -> dict[str, Any]:
        return {"k": self.k, "buffer": list(self.buffer), "num_docs": len(self.docs)}

    def _fill(self) -> None:
        while len(self.buffer) < self.buffer_size and (self.limit is None or self.k < self.limit):
            self.buffer.append(self.k)
            self.k += 1

    def next_rows(self) -> list[tuple[list[int], list[int]]]:
        """B packed rows (ids, mask) of T+1 tokens; [] when a finite pass is done."""
        rows = []
        docs = self.docs
        for _ in range(self.B):
            self._fill()
            if not self.buffer:
                break
            # pack over doc numbers of the buffered positions, keeping the positions for the state
            numbers = [self.doc_of(k) for k in self.buffer]
            chosen = pack_row(list(range(len(numbers))), [docs[n] for n in numbers], self.T + 1)
            placed = [numbers[j] for j in chosen]
            taken = set(chosen)
            self.buffer = [k for j, k in enumerate(self.buffer) if j not in taken]
            rows.append(row_tensors(placed, docs, self.T + 1, self.pad_id))
        if rows:
            while len(rows) < self.B:  # the end of a finite pass: empty rows carry no loss
                rows.append(([self.pad_id] * (self.T + 1), [0] * (self.T + 1)))
        return rows

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, dict[str, Any]]]:
        return self

    def __next__(self) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
        rows = self.next_rows()
        if not rows:
            raise StopIteration
        ids = torch.tensor([r[0] for r in rows], dtype=torch.long)
        mask = torch.tensor([r[1] for r in rows], dtype=torch.bool)
        x = ids[:, :-1]
        y = ids[:, 1:].masked_fill(~mask[:, 1:], -1)
        return x.to(self.device), y.to(self.device), self.state()
