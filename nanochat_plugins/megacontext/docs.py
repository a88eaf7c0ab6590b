"""Long documents for MegaContext: token windows of `doc_tokens` from documents longer than that."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable

import torch


class LongDocs:
    """Samples windows of `length` tokens from the documents (of a split) that are at least that long.

    The first pass over the texts tokenizes and keeps up to `keep` long documents; later samples draw from
    them, so a step never waits on the tokenizer once the pool is full."""

    def __init__(self, texts: Callable[[], Iterable[str]], encode: Callable[[str], list[int]], length: int,
                 seed: int = 0, keep: int = 256) -> None:
        self.texts, self.encode, self.length, self.keep = texts, encode, length, keep
        self.rng = random.Random(seed)
        self.pool: list[list[int]] = []
        self._iter = None
        self.exhausted = False

    def _fill(self, want: int) -> None:
        if self._iter is None:
            self._iter = iter(self.texts())
        while len(self.pool) < min(want, self.keep) and not self.exhausted:
            text = next(self._iter, None)
            if text is None:
                self.exhausted = True
                break
            if len(text) < self.length:  # a token is at least one character: too short, skip the tokenizer
                continue
            ids = self.encode(text)
            if len(ids) >= self.length:
                self.pool.append(ids)

    def sample(self) -> torch.Tensor:
        self._fill(len(self.pool) + 1)
        if not self.pool:
            raise ValueError(f"no document is {self.length} tokens long: lower megacontext.doc_tokens "
                             "or train on longer documents")
        ids = self.pool[self.rng.randrange(len(self.pool))]
        start = self.rng.randrange(len(ids) - self.length + 1)
        return torch.tensor(ids[start:start + self.length], dtype=torch.long)

    def all(self, limit: int) -> list[torch.Tensor]:
        """Up to `limit` windows, one per document, from each one's start (deterministic: for evaluation)."""
        self._fill(limit)
        return [torch.tensor(ids[:self.length], dtype=torch.long) for ids in self.pool[:limit]]

    def windows(self, limit: int, per_doc: int) -> list[tuple[int, torch.Tensor]]:
        """(document number, window) pairs: up to `per_doc` back-to-back windows from the start of each of up to
        `limit` documents (deterministic: for evaluation; more windows per document, less noise per document)."""
        self._fill(limit)
        return [(i, torch.tensor(ids[k * self.length:(k + 1) * self.length], dtype=torch.long))
                for i, ids in enumerate(self.pool[:limit]) for k in range(min(per_doc, len(ids) // self.length))]
