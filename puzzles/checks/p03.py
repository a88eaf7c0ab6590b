"""Puzzle 03 checks: DDP shard plans, BOS-aligned pretraining batches, SFT packing and masks, mixture order."""

from __future__ import annotations

import atexit
import functools
import importlib.util
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from puzzles import compare
from puzzles.checks import fixtures
from puzzles.oracle import Oracle, Skip

PEEK = {
    "engine": ["engine.dataset:split_files", "engine.dataset:rank_row_groups", "engine.dataloader:_Packer",
               "engine.dataloader:PackedLoader.__next__", "engine.sft_data:pack_row", "engine.sft_data:PackedBatches",
               "engine.tasks.base:TaskMixture"],
    "nanochat": ["nanochat.dataset:list_parquet_files", "nanochat.dataloader"],
}


@functools.cache
def data_dir() -> Path:
    """Parquet shards of short documents (stdlib paragraphs): several shards, many small row groups."""
    from engine.dataset import convert_text_folder

    root = Path(tempfile.mkdtemp(prefix="puzzle03-"))
    atexit.register(shutil.rmtree, root, True)
    src = root / "src"
    src.mkdir()
    stdlib = Path(os.__file__).parent
    n = 0
    for name in fixtures.STDLIB_TEXTS:
        for paragraph in (stdlib / name).read_text().split("\n\n"):
            if paragraph.strip():
                (src / f"{n:05d}.txt").write_text(paragraph)
                n += 1
    convert_text_folder(src, root / "data", shard_chars=15_000, row_group_chars=2_500, val_fraction=0.2)
    return root / "data"


def sft_docs(tok, T: int) -> list[tuple[list[int], list[int]]]:
    from engine.tasks import Arithmetic, SpellCount, TaskMixture

    task = TaskMixture([Arithmetic(size=24, seed=1), SpellCount(size=16, seed=2)], seed=5)
    return [tok.render_conversation(task[i], max_tokens=T + 1) for i in range(len(task))]


def _batches_problem(label: str, got, want) -> str | None:
    if not isinstance(got, (list, tuple)) or len(got) != len(want):
        return f"{label}: {len(got) if isinstance(got, (list, tuple)) else got!r} batches, expected {len(want)}"
    for b, ((gx, gy), (wx, wy)) in enumerate(zip(got, want, strict=True)):
        problem = (compare.tensors(f"{label}: inputs of batch {b}", gx, wx)
                   or compare.tensors(f"{label}: targets of batch {b}", gy, wy))
        if problem:
            return problem
    return None


def checks(impl, oracle: Oracle) -> Iterator[tuple[str, object]]:
    loader = impl.UniversalDataLoader

    def shard_plan():
        oracle.require_engine("row-group plan (its loader iterates parquet files inline)")
        from engine.dataset import rank_row_groups

        for split in ("train", "val"):
            for world in (1, 2, 3):
                for rank in range(world):
                    got = [(Path(p), i) for p, i in loader.shard_plan(data_dir(), split, rank, world)]
                    want = [(Path(p), i) for p, i in rank_row_groups(data_dir(), split, rank, world)]
                    problem = compare.sequences(f"shard_plan({split!r}, rank {rank} of {world})", got, want)
                    if problem:
                        return problem
        return None

    def pretraining():
        oracle.require_engine("BOS-aligned best-fit loader with these arguments")
        from engine.dataloader import make_loader

        tok = fixtures.tokenizer()
        for B, T, rank, world, buffer in ((2, 64, 0, 1, 8), (3, 48, 1, 2, 5), (2, 200, 0, 1, 1000)):
            got = loader.pretrain_batches(tok, data_dir(), B, T, "train", rank, world, buffer, num_batches=4)
            it = make_loader(tok, B, T, "train", data_dir(), rank, world, buffer_size=buffer, num_threads=1)
            want = [next(it)[:2] for _ in range(4)]
            problem = _batches_problem(f"B={B} T={T} rank {rank} of {world}, buffer {buffer}", got, want)
            if problem:
                return problem
        return None

    def sft():
        oracle.require_engine("SFT packer (scripts/chat_sft.py, outside the package)")
        if importlib.util.find_spec("engine.sft_data") is None:
            raise Skip("this engine has no engine.sft_data yet (SFT packing comes with the post-training stage)")
        from engine.sft_data import PackedBatches

        tok = fixtures.tokenizer()
        pad = tok.get_bos_token_id()
        for B, T, rank, world, buffer in ((3, 96, 0, 1, 8), (2, 128, 1, 2, 4), (4, 64, 2, 3, 64)):
            docs = sft_docs(tok, T)
            got = loader.sft_batches(docs, B, T, pad, rank, world, buffer, num_batches=3)
            it = PackedBatches(docs, B, T, pad, rank=rank, world_size=world, buffer_size=buffer)
            want = [next(it)[:2] for _ in range(3)]
            problem = _batches_problem(f"SFT B={B} T={T} rank {rank} of {world}, buffer {buffer}", got, want)
            if problem:
                return problem
        return None

    def mixture():
        oracle.require_engine("TaskMixture (stock nanochat's lives in tasks/common.py, outside the package)")
        from engine.tasks import ListTask, TaskMixture

        for sizes, seed in (([5, 3, 7], 42), ([10], 0), ([4, 4, 4], 7), ([1, 20, 2], 123)):
            tasks = [ListTask([{"messages": []}] * n, name=f"t{t}") for t, n in enumerate(sizes)]
            want = TaskMixture(tasks, seed=seed).index
            problem = compare.sequences(f"mixture_order({sizes}, seed={seed})",
                                        [tuple(x) for x in loader.mixture_order(sizes, seed)], want)
            if problem:
                return problem
        return None

    yield "DDP shard plan (train and val, 1-3 ranks)", shard_plan
    yield "pretraining batches: BOS-aligned best fit", pretraining
    yield "SFT batches: best-fit packing, padding, masked targets", sft
    yield "TaskMixture order", mixture


def example(impl) -> str:
    loader = impl.UniversalDataLoader
    tok = fixtures.tokenizer()
    plan = loader.shard_plan(data_dir(), "train", 0, 2)
    first = [(Path(p).name, i) for p, i in plan[:3]]
    lines = [f"shard_plan(train, rank 0 of 2): {len(plan)} row groups, first {first}"]
    (x, y), *_ = loader.pretrain_batches(tok, data_dir(), 2, 48, num_batches=1)
    bos = tok.get_bos_token_id()
    starts = [(x[r] == bos).nonzero().view(-1).tolist() for r in range(2)]
    lines.append(f"pretraining batch [2, 48]: documents start (BOS) at positions {starts}")
    lines.append("row 0: " + repr(tok.decode(x[0].tolist())[:120]))
    lines.append(f"mixture_order([3, 2], seed 42): {loader.mixture_order([3, 2], 42)}")
    return "\n".join(lines)
