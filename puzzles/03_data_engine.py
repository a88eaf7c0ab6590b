"""Puzzle 03 · Data engine (UniversalDataLoader)

Goal: every batch a nanochat run trains on. Pretraining: parquet shards split into train (all but the
last shard) and val (the last), their row groups dealt out to DDP ranks round-robin, each document
tokenized with <|bos|> in front and packed into rows by best fit so that every row starts at a document
boundary and is full. SFT: rendered conversations packed by best fit with padding, targets -1 where the
model does not learn. And the seeded order in which a TaskMixture serves its tasks' examples.
Verified against the engine (engine/dataset.py, engine/dataloader.py, engine/sft_data.py,
engine/tasks/base.py): shard plans, batches (inputs and targets), SFT masks and the mixture order.

    python -m puzzles.03_data_engine            run your UniversalDataLoader on a small example
    python -m puzzles.03_data_engine --verify   compare it with the engine, check by check
    python -m puzzles.03_data_engine --peek     read the engine's code for this puzzle

Reading parquet: pyarrow.parquet.ParquetFile(path).num_row_groups, .read_row_group(i, columns=["text"]).
"""

import sys
from pathlib import Path

import torch


class UniversalDataLoader:
    @staticmethod
    def shard_plan(data_dir: Path, split: str, rank: int = 0, world_size: int = 1) -> list[tuple[Path, int]]:
        """This rank's (shard path, row group index) pairs, in reading order.

        The shards are the folder's *.parquet files sorted by name (skip names starting with "."); "train"
        is every shard but the last, "val" the last one. Number every row group of the split in order
        (shard by shard, row group by row group) and give rank r the ones at r, r + world_size, …
        """
        raise NotImplementedError("not implemented yet: UniversalDataLoader.shard_plan")

    @staticmethod
    def pretrain_batches(tokenizer, data_dir: Path, B: int, T: int, split: str = "train", rank: int = 0,
                         world_size: int = 1, buffer_size: int = 1000, num_batches: int = 4
                         ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The first num_batches (inputs, targets) of this rank, each [B, T] int64: rows of T+1 tokens,
        inputs = row[:-1], targets = row[1:].

        Documents: read this rank's row groups (shard_plan) one at a time, all the rows of a group at once,
        looping over the plan forever; tokenize each text as tokenizer.encode(text, prepend=bos). A document
        is known by (its row group's number in the read order, its row in the group) and by its FULL token
        count, but only its first T+1 tokens are kept.
        Buffer: before choosing each document, read whole row groups until at least
        min(buffer_size, documents in one pass over the plan) documents are buffered.
        Filling a row left to right, with `space` tokens left: take the buffered document with the largest
        full length <= space (the earliest read among equal lengths). When none fits, take the one with the
        shortest full length (earliest read among equals) and keep only its first `space` tokens.
        """
        raise NotImplementedError("not implemented yet: UniversalDataLoader.pretrain_batches")

    @staticmethod
    def sft_batches(docs: list[tuple[list[int], list[int]]], B: int, T: int, pad_id: int, rank: int = 0,
                    world_size: int = 1, buffer_size: int = 64, num_batches: int = 3
                    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """SFT batches from rendered conversations (ids, mask), each at most T+1 tokens long.

        This rank reads positions k = 0, 1, 2, … as document (rank + k * world_size) % len(docs). For each
        row: top the buffer up to buffer_size positions (in order), then repeatedly place the buffered
        document with the most tokens that still fits the T+1 tokens left (the earliest buffered among
        equals), removing it from the buffer, until none fits; pad the rest with pad_id (mask 0).
        inputs = ids[:-1]; targets = ids[1:] with -1 wherever mask[1:] is 0. Each [B, T] int64.
        """
        raise NotImplementedError("not implemented yet: UniversalDataLoader.sft_batches")

    @staticmethod
    def mixture_order(sizes: list[int], seed: int = 42) -> list[tuple[int, int]]:
        """The order a TaskMixture of tasks with these sizes serves examples in, as (task, example) pairs:
        every (t, i) for t in task order and i in range(sizes[t]), shuffled with random.Random(seed)."""
        raise NotImplementedError("not implemented yet: UniversalDataLoader.mixture_order")


if __name__ == "__main__":
    from puzzles.harness import main

    sys.exit(main(3))
