"""Tokenize documents and pack them into (inputs, targets) batches: BOS-aligned best-fit, exactly resumable.

Packing (nanochat's best-fit scheme). Every document is tokenized with BOS prepended. Each row of T+1
tokens is filled left to right: take the LARGEST buffered document that fits the space left; when none
fits, take the SHORTEST buffered document and crop it to fill the row exactly, dropping the rest of it
(the shortest, because that wastes the fewest tokens). So every row starts with BOS, is full, and holds
whole documents except possibly its last one; cropping is the only place tokens are lost. Documents
longer than T+1 tokens can only ever be cropped, so only their first T+1 tokens are kept in memory.
Ties (equal lengths) go to the document read earliest. inputs = row[:-1], targets = row[1:].

Reading. This rank's documents come from its row groups (see `engine.dataset.rank_row_groups`), read one
row group at a time and tokenized as one batch. Row group number `seq` (0, 1, 2, …) is the rank's row
group `seq % n` of epoch `seq // n`; both splits loop forever, so an evaluation asking for more tokens
than the val split holds wraps instead of failing. For identical evaluations build a FRESH val loader
each time (`make_loader(..., split="val")`): it starts from the same place and yields the same batches.
The buffer is topped up to `buffer_size` documents (at most the rank's documents per epoch) before
every choice.

Resume. The packer's whole state is (the next row group to read, the set of buffered documents), and a
buffered document is named by its position (seq, row). The state dict stores the next seq and those
positions, compressed (a few hundred bytes to a few KB); restoring re-reads and re-tokenizes just those
documents, so the loader continues with exactly the batches an uninterrupted one would have produced.
Keys: version, split, rank, world_size, data_id, seq_len (checked on resume), batches (yielded so far),
next_seq, epoch (= next_seq // n: completed passes of the reading cursor over the rank's data), buffer,
cropped_tokens (tokens dropped by crops so far). Each rank has its own state, so a multi-rank trainer
must save every rank's (e.g. all_gather_object them into the checkpoint meta as a list). The row order
does not depend on B, so B may change across a resume; T may not.
"""

from __future__ import annotations

import base64
import bisect
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engine import dataset
from engine.errors import EngineError

STATE_VERSION = 1


class _Packer:
    """Buffer of tokenized documents keyed by (seq, row), filling rows by best fit."""

    def __init__(self, tokenizer: Any, row_len: int, data_dir: Path, split: str, rank: int, world_size: int,
                 buffer_size: int, num_threads: int):
        self.tokenizer, self.row_len, self.num_threads = tokenizer, row_len, num_threads
        self.bos = tokenizer.get_bos_token_id()
        self.reader = dataset.ShardReader()
        self.groups = dataset.rank_row_groups(data_dir, split, rank, world_size, self.reader)
        docs_per_epoch = sum(self.reader.num_rows(p, i) for p, i in self.groups)
        if docs_per_epoch == 0:
            raise EngineError(f"data_dir {data_dir}: rank {rank}'s share of the {split} split has no documents: "
                              "use fewer ranks or add data")
        self.buffer_size = min(buffer_size, docs_per_epoch)
        self.next_seq = 0
        self.tokens: dict[tuple[int, int], np.ndarray] = {}  # (seq, row) -> first row_len tokens
        self.order: list[tuple[int, int, int]] = []  # sorted (length, seq, row); length is the full length
        self.cropped_tokens = 0

    @property
    def epoch(self) -> int:
        return self.next_seq // len(self.groups)

    def _texts(self, seq: int) -> list[str]:
        return self.reader.read(*self.groups[seq % len(self.groups)])

    def _add(self, keys: list[tuple[int, int]], texts: list[str]) -> None:
        for key, ids in zip(keys, self.tokenizer.encode(texts, prepend=self.bos, num_threads=self.num_threads),
                            strict=True):
            self.tokens[key] = np.asarray(ids[: self.row_len], dtype=np.int64)
            bisect.insort(self.order, (len(ids), *key))

    def _refill(self) -> None:
        while len(self.order) < self.buffer_size:
            texts = self._texts(self.next_seq)
            self._add([(self.next_seq, r) for r in range(len(texts))], texts)
            self.next_seq += 1

    def _take(self, index: int) -> np.ndarray:
        _, seq, row = self.order.pop(index)
        return self.tokens.pop((seq, row))

    def fill_row(self, out: np.ndarray) -> None:
        pos = 0
        while pos < self.row_len:
            self._refill()
            space = self.row_len - pos
            fit = bisect.bisect_left(self.order, (space + 1,)) - 1  # last entry with length <= space
            if fit >= 0:
                # the largest length that fits; among equal lengths, the earliest read
                first = bisect.bisect_left(self.order, (self.order[fit][0],))
                doc = self._take(first)
            else:
                length = self.order[0][0]
                doc = self._take(0)[:space]
                self.cropped_tokens += length - space
            out[pos: pos + len(doc)] = doc
            pos += len(doc)

    # -- resume

    def state(self) -> dict:
        return {"next_seq": self.next_seq, "epoch": self.epoch, "buffer": _encode_keys(sorted(self.tokens)),
                "cropped_tokens": self.cropped_tokens}

    def restore(self, state: dict) -> None:
        self.next_seq = int(state["next_seq"])
        self.cropped_tokens = int(state.get("cropped_tokens", 0))
        by_seq: dict[int, list[int]] = {}
        for seq, row in _decode_keys(state["buffer"]):
            if not 0 <= seq < self.next_seq:
                raise ValueError(f"buffered row group {seq} not before next_seq {self.next_seq}")
            by_seq.setdefault(seq, []).append(row)
        for seq, rows in sorted(by_seq.items()):
            texts = self._texts(seq)
            if rows[-1] >= len(texts):
                raise ValueError(f"row {rows[-1]} beyond row group {seq} ({len(texts)} rows)")
            self._add([(seq, r) for r in rows], [texts[r] for r in rows])


def _encode_keys(keys: list[tuple[int, int]]) -> str:
    """Sorted (seq, row) pairs -> zlib+base64 of their deltas: small because buffered docs cluster."""
    flat, prev_seq, prev_row = [], 0, 0
    for seq, row in keys:
        flat += [seq - prev_seq, row - prev_row if seq == prev_seq else row]
        prev_seq, prev_row = seq, row
    return base64.b64encode(zlib.compress(",".join(map(str, flat)).encode(), 9)).decode()


def _decode_keys(blob: str) -> list[tuple[int, int]]:
    text = zlib.decompress(base64.b64decode(blob)).decode()
    flat = [int(x) for x in text.split(",")] if text else []
    keys, seq, row = [], 0, 0
    for dseq, drow in zip(flat[::2], flat[1::2], strict=True):
        row = row + drow if dseq == 0 else drow
        seq += dseq
        keys.append((seq, row))
    return keys


class PackedLoader:
    """Iterator of (inputs [B,T] int64, targets [B,T] int64, state dict) on `device`. Build with `make_loader`."""

    def __init__(self, packer: _Packer, B: int, T: int, device: torch.device, header: dict, batches: int):
        self.packer, self.B, self.T, self.device = packer, B, T, device
        self.header, self.batches = header, batches
        self.pin = device.type == "cuda"

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, dict]]:
        return self

    def __next__(self) -> tuple[torch.Tensor, torch.Tensor, dict]:
        rows = np.empty((self.B, self.T + 1), dtype=np.int64)
        for b in range(self.B):
            self.packer.fill_row(rows[b])
        self.batches += 1
        inputs = torch.from_numpy(np.ascontiguousarray(rows[:, :-1]))
        targets = torch.from_numpy(np.ascontiguousarray(rows[:, 1:]))
        if self.pin:  # page-locked host memory lets the copy run asynchronously with compute
            inputs = inputs.pin_memory().to(self.device, non_blocking=True)
            targets = targets.pin_memory().to(self.device, non_blocking=True)
        elif self.device.type != "cpu":
            inputs, targets = inputs.to(self.device), targets.to(self.device)
        return inputs, targets, self.state()

    def state(self) -> dict:
        """JSON-serialisable state after the last batch: pass it to `make_loader(state=...)` to continue."""
        return {**self.header, "batches": self.batches, **self.packer.state()}

    @property
    def epoch(self) -> int:
        return self.packer.epoch


def make_loader(tokenizer: Any, B: int, T: int, split: str, data_dir: Path, rank: int = 0, world_size: int = 1,
                device: str | torch.device = "cpu", state: dict | None = None, buffer_size: int = 1000,
                num_threads: int = 4) -> PackedLoader:
    """A loader of this rank's packed batches; with `state` (from an earlier loader) it resumes exactly.

    `tokenizer` needs `.get_bos_token_id()` and `.encode(list[str], prepend=bos_id, num_threads=N)`.
    Errors (bad sizes, missing/corrupt shards, a state from another rank, split or dataset) raise
    EngineError here, before the first batch, except corrupt row groups met later while reading.
    """
    if B < 1 or T < 1:
        raise EngineError(f"dataloader B={B}, T={T}: both must be >= 1")
    if buffer_size < 1:
        raise EngineError(f"dataloader buffer_size={buffer_size}: must be >= 1")
    data_dir = Path(data_dir)
    packer = _Packer(tokenizer, T + 1, data_dir, split, rank, world_size, buffer_size, num_threads)
    header = {"version": STATE_VERSION, "split": split, "rank": rank, "world_size": world_size,
              "data_id": dataset.data_id(data_dir), "seq_len": T}
    batches = 0
    if state is not None:
        _check_state(state, header)
        try:
            packer.restore(state)
        except (KeyError, ValueError, TypeError, zlib.error) as e:
            raise EngineError(f"dataloader state: malformed ({e}): resume from another checkpoint or start fresh "
                              "(resume=False)") from None
        batches = int(state.get("batches", 0))
    return PackedLoader(packer, B, T, torch.device(device), header, batches)


def _check_state(state: dict, header: dict) -> None:
    if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
        raise EngineError(f"dataloader state: version {state.get('version') if isinstance(state, dict) else state!r}"
                          f" is not {STATE_VERSION}: resume from a checkpoint written by this version")
    for key in ("split", "rank", "world_size", "data_id", "seq_len"):
        if state.get(key) != header[key]:
            raise EngineError(f"dataloader state: {key} was {state.get(key)!r}, now {header[key]!r}: resume with "
                              "the same data, ranks and max_seq_len, or start fresh (resume=False)")
