"""Reference solution of puzzle 03 (UniversalDataLoader): written for the tests, not a copy of the engine."""

import random
from pathlib import Path

import pyarrow.parquet as pq
import torch


class UniversalDataLoader:
    @staticmethod
    def shard_plan(data_dir, split, rank=0, world_size=1):
        shards = sorted(p for p in Path(data_dir).iterdir() if p.suffix == ".parquet" and not p.name.startswith("."))
        chosen = shards[:-1] if split == "train" else shards[-1:]
        groups = [(p, g) for p in chosen for g in range(pq.ParquetFile(p).num_row_groups)]
        return groups[rank::world_size]

    @staticmethod
    def pretrain_batches(tokenizer, data_dir, B, T, split="train", rank=0, world_size=1, buffer_size=1000,
                         num_batches=4):
        plan = UniversalDataLoader.shard_plan(data_dir, split, rank, world_size)
        per_pass = sum(pq.ParquetFile(p).metadata.row_group(g).num_rows for p, g in plan)
        target = min(buffer_size, per_pass)
        bos = tokenizer.get_bos_token_id()
        buffered = {}  # (seq, row) -> (full length, first T+1 tokens)
        seq = 0

        def refill():
            nonlocal seq
            while len(buffered) < target:
                path, group = plan[seq % len(plan)]
                texts = pq.ParquetFile(path).read_row_group(group, columns=["text"]).column("text").to_pylist()
                for row, text in enumerate(texts):
                    ids = tokenizer.encode(text, prepend=bos)
                    buffered[(seq, row)] = (len(ids), ids[:T + 1])
                seq += 1

        batches = []
        for _ in range(num_batches):
            rows = []
            for _ in range(B):
                row = []
                while len(row) < T + 1:
                    refill()
                    space = T + 1 - len(row)
                    fitting = [(n, key) for key, (n, _) in buffered.items() if n <= space]
                    if fitting:
                        best = max(n for n, _ in fitting)
                        key = min(k for n, k in fitting if n == best)
                        row += buffered.pop(key)[1]
                    else:
                        shortest = min(n for n, _ in buffered.values())
                        key = min(k for k, (n, _) in buffered.items() if n == shortest)
                        row += buffered.pop(key)[1][:space]
                rows.append(row)
            t = torch.tensor(rows, dtype=torch.int64)
            batches.append((t[:, :-1].contiguous(), t[:, 1:].contiguous()))
        return batches

    @staticmethod
    def sft_batches(docs, B, T, pad_id, rank=0, world_size=1, buffer_size=64, num_batches=3):
        buffer, k = [], 0
        out = []
        for _ in range(num_batches):
            ids_rows, mask_rows = [], []
            for _ in range(B):
                while len(buffer) < buffer_size:
                    buffer.append(docs[(rank + k * world_size) % len(docs)])
                    k += 1
                ids, mask = [], []
                while True:
                    room = T + 1 - len(ids)
                    best = None
                    for j, (d_ids, _) in enumerate(buffer):
                        if len(d_ids) <= room and (best is None or len(d_ids) > len(buffer[best][0])):
                            best = j
                    if best is None:
                        break
                    d_ids, d_mask = buffer.pop(best)
                    ids += d_ids
                    mask += d_mask
                ids += [pad_id] * (T + 1 - len(ids))
                mask += [0] * (T + 1 - len(mask))
                ids_rows.append(ids)
                mask_rows.append(mask)
            ids_t, mask_t = torch.tensor(ids_rows), torch.tensor(mask_rows)
            targets = ids_t[:, 1:].clone()
            targets[mask_t[:, 1:] == 0] = -1
            out.append((ids_t[:, :-1], targets))
        return out

    @staticmethod
    def mixture_order(sizes, seed=42):
        order = [(t, i) for t, n in enumerate(sizes) for i in range(n)]
        random.Random(seed).shuffle(order)
        return order
