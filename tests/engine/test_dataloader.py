"""Best-fit BOS-aligned packing: row invariants, the packing rule, rank shares, exact resume, state checks."""

import json
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from engine import corpus
from engine.dataloader import _decode_keys, make_loader
from engine.errors import EngineError

BOS = 256


class ByteTokenizer:
    """Stand-in with the engine tokenizer's two methods: one token per UTF-8 byte, BOS = 256."""

    def get_bos_token_id(self) -> int:
        return BOS

    def encode(self, texts: list[str], prepend: int | None = None, num_threads: int = 1) -> list[list[int]]:
        head = [prepend] if prepend is not None else []
        return [head + list(t.encode("utf-8")) for t in texts]


TOK = ByteTokenizer()


def write_shard(path: Path, groups: list[list[str]]) -> None:
    schema = pa.schema([("text", pa.string())])
    with pq.ParquetWriter(path, schema) as w:
        for g in groups:
            w.write_table(pa.table({"text": g}, schema=schema))


def docs_of(data: Path, name: str) -> list[str]:
    return pq.read_table(data / name).column("text").to_pylist()


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """3 train shards x 4 row groups x 8 docs and a val shard; each doc is '#<id>:' plus random letters,
    lengths from 1 to ~150 tokens so some docs exceed T+1 = 65 and must be cropped."""
    rng = random.Random(0)
    n = 0
    for f in range(4):
        groups = []
        for _ in range(4):
            group = []
            for _ in range(8):
                group.append(f"#{n}:" + "".join(rng.choice("abcdefgh") for _ in range(rng.randint(0, 140))))
                n += 1
            groups.append(group)
        write_shard(tmp_path / f"shard_{f:05d}.parquet", groups)
    return tmp_path


def full_rows(inputs: torch.Tensor, targets: torch.Tensor) -> list[list[int]]:
    return torch.cat([inputs[:, :1], targets], dim=1).tolist()


def segments(row: list[int]) -> list[list[int]]:
    starts = [i for i, t in enumerate(row) if t == BOS]
    return [row[a:b] for a, b in zip(starts, starts[1:] + [len(row)], strict=True)]


def doc_id(part: list[int]) -> str:
    return bytes(part[1:]).decode(errors="replace").split(":")[0]


def test_rows_are_bos_aligned_full_and_hold_contiguous_documents(data: Path):
    groups = [pq.ParquetFile(data / f"shard_{f:05d}.parquet").read_row_group(g).column("text").to_pylist()
              for f in range(3) for g in range(4)]  # seq s of one rank of one = global row group s
    whole = {tuple([BOS, *t.encode()]) for g in groups for t in g}
    loader = make_loader(TOK, B=4, T=64, split="train", data_dir=data, buffer_size=16)
    used = []
    for _ in range(6):  # 24 rows x 65 tokens: less than one epoch (96 docs, ~7k tokens)
        inputs, targets, state = next(loader)
        assert inputs.shape == targets.shape == (4, 64) and inputs.dtype == targets.dtype == torch.int64
        assert torch.equal(inputs[:, 1:], targets[:, :-1])
        for row in full_rows(inputs, targets):
            assert row[0] == BOS and len(row) == 65
            parts = segments(row)
            for part in parts[:-1]:
                assert tuple(part) in whole  # whole documents, back to back
            assert any(doc[: len(parts[-1])] == tuple(parts[-1]) for doc in whole)  # the last may be cropped
            used += [doc_id(p) for p in parts if b":" in bytes(p[1:])]
    assert len(used) == len(set(used))  # no document twice within an epoch
    # conservation: tokens of the documents taken from the buffer = tokens placed + tokens cropped
    buffered = set(_decode_keys(state["buffer"]))
    taken = [t for s in range(state["next_seq"]) for r, t in enumerate(groups[s]) if (s, r) not in buffered]
    assert sum(len(t.encode()) + 1 for t in taken) == 24 * 65 + state["cropped_tokens"]
    assert state["cropped_tokens"] > 0 and state["epoch"] == 0


def test_best_fit_takes_largest_fitting_then_crops_shortest(tmp_path: Path):
    # row group 0: 5, 3, 4, 2 tokens with BOS; row group 1: documents too long for any row here
    write_shard(tmp_path / "shard_00000.parquet", [["aaaa", "bb", "ccc", "d"], ["e" * 40] * 4])
    write_shard(tmp_path / "shard_00001.parquet", [["val"]])
    a, b, c, d = ([BOS, *s.encode()] for s in ("aaaa", "bb", "ccc", "d"))

    def first_row(row_len: int) -> list[int]:
        return full_rows(*next(make_loader(TOK, 1, row_len - 1, "train", tmp_path, buffer_size=4))[:2])[0]

    assert first_row(8) == a + b  # the largest (5), then the largest of {3, 4, 2} that fits in 3
    assert first_row(6) == a + [BOS]  # nothing fits in 1: crop the shortest ("d") to its BOS
    assert first_row(10) == a + c + [BOS]
    assert first_row(14) == a + c + b + d  # exact fit, nothing cropped
    assert first_row(2) == d
    loader = make_loader(TOK, 1, 4, "train", tmp_path, buffer_size=4)
    rows = [full_rows(*next(loader)[:2])[0] for _ in range(4)]
    # "d" is cropped to fill row 2; in row 3 only the 41-token docs remain, so one is cropped; row 4
    # starts on epoch 1, read when the buffer fell below 4
    assert rows == [a, c + [BOS], b + [BOS, ord("e")], a]


def test_ranks_read_disjoint_documents(data: Path):
    seen = []
    for rank in range(2):
        loader = make_loader(TOK, 2, 32, "train", data, rank=rank, world_size=2, buffer_size=4)
        ids = set()
        for _ in range(5):
            inputs, targets, _ = next(loader)
            for row in full_rows(inputs, targets):
                ids |= {doc_id(p) for p in segments(row) if b":" in bytes(p[1:])}
        seen.append(ids)
    assert seen[0] and seen[1] and not seen[0] & seen[1]


@pytest.mark.parametrize("rank", [0, 1])
def test_resume_is_exact_across_epochs(data: Path, rank: int):
    kw = dict(tokenizer=TOK, B=3, T=64, split="train", data_dir=data, rank=rank, world_size=2, buffer_size=12)
    loader = make_loader(**kw)
    batches = [next(loader) for _ in range(40)]  # ~7.8k tokens, a rank's epoch is ~3.5k: wraps twice
    assert batches[-1][2]["epoch"] >= 2
    for k in (0, 5, 17, 30):
        state = json.loads(json.dumps(batches[k][2]))  # as it travels in a checkpoint's meta JSON
        assert len(json.dumps(state)) < 2000
        resumed = make_loader(**kw, state=state)
        for want in batches[k + 1: k + 8]:
            got = next(resumed)
            assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])
            assert got[2] == want[2]


def test_resume_with_other_batch_size_continues_the_same_rows(data: Path):
    loader = make_loader(TOK, 2, 64, "train", data, buffer_size=10)
    rows = [r for _ in range(6) for r in full_rows(*next(loader)[:2])]
    state = make_loader(TOK, 2, 64, "train", data, buffer_size=10)
    for _ in range(2):
        _, _, st = next(state)
    resumed = make_loader(TOK, 4, 64, "train", data, state=st, buffer_size=10)
    assert full_rows(*next(resumed)[:2]) + full_rows(*next(resumed)[:2]) == rows[4:12]


def test_fresh_val_loaders_repeat_and_use_only_val_docs(data: Path):
    val_texts = docs_of(data, "shard_00003.parquet")
    first = [next(make_loader(TOK, 2, 64, "val", data))[:2] for _ in range(2)]
    assert torch.equal(first[0][0], first[1][0]) and torch.equal(first[0][1], first[1][1])
    loader = make_loader(TOK, 2, 64, "val", data)
    for _ in range(10):  # more than the val split holds: it wraps
        inputs, targets, state = next(loader)
        for row in full_rows(inputs, targets):
            for part in segments(row):
                assert any(t.startswith(bytes(part[1:]).decode(errors="ignore")) for t in val_texts)
    assert state["epoch"] >= 1 and state["split"] == "val"


def test_bad_states_and_arguments_raise_engine_error(data: Path):
    loader = make_loader(TOK, 2, 16, "train", data, rank=0, world_size=2)
    _, _, state = next(loader)
    with pytest.raises(EngineError, match="rank was 0, now 1"):
        make_loader(TOK, 2, 16, "train", data, rank=1, world_size=2, state=state)
    with pytest.raises(EngineError, match="split was 'train', now 'val'"):
        make_loader(TOK, 2, 16, "val", data, rank=0, world_size=2, state=state)
    with pytest.raises(EngineError, match="seq_len was 16, now 32"):
        make_loader(TOK, 2, 32, "train", data, rank=0, world_size=2, state=state)
    with pytest.raises(EngineError, match="malformed"):
        make_loader(TOK, 2, 16, "train", data, rank=0, world_size=2, state={**state, "buffer": "garbage!"})
    with pytest.raises(EngineError, match="version"):
        make_loader(TOK, 2, 16, "train", data, state={"version": 99})
    write_shard(data / "shard_00001.parquet", [["the data changed"]])
    with pytest.raises(EngineError, match="data_id was"):
        make_loader(TOK, 2, 16, "train", data, rank=0, world_size=2, state=state)
    with pytest.raises(EngineError, match="B=0"):
        make_loader(TOK, 0, 16, "train", data)


def test_corrupt_shard_met_while_reading(data: Path):
    loader = make_loader(TOK, 2, 64, "train", data, buffer_size=4)
    next(loader)
    (data / "shard_00002.parquet").write_bytes(b"junk")
    with pytest.raises(EngineError, match=r"shard_00002\.parquet"):
        for _ in range(200):
            next(loader)


def test_embedded_corpus_batches(tmp_path: Path):
    d = corpus.ensure_embedded_corpus(tmp_path, max_docs=80, row_group_chars=30_000)
    loader = make_loader(TOK, 4, 128, "train", d, rank=1, world_size=2, buffer_size=32)
    for _ in range(3):
        inputs, targets, state = next(loader)
        assert (inputs[:, 0] == BOS).all() and int(targets.max()) <= BOS
    assert len(json.dumps(state)) < 4000


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_batches_match_cpu_batches(data: Path):
    cpu = make_loader(TOK, 4, 64, "train", data)
    gpu = make_loader(TOK, 4, 64, "train", data, device="cuda")
    for _ in range(5):
        (xc, yc, sc), (xg, yg, sg) = next(cpu), next(gpu)
        assert xg.device.type == "cuda" and torch.equal(xg.cpu(), xc) and torch.equal(yg.cpu(), yc) and sc == sg
