"""Pretraining text as parquet shards: list, read by rank, convert text folders, download nanochat's shards.

The format is nanochat's: a folder of `shard_00000.parquet`, `shard_00001.parquet`, … each with a `text`
column holding one document per row. The last shard (sorted by name) is the validation split, all others
are train. Readers walk ROW GROUPS, strided across ranks over the concatenation of a split's files
(rank r reads row groups r, r + world_size, …), so the ranks read disjoint shares that together cover
the split. Nothing is tokenized here (that is the dataloader's job) and nothing is held in memory beyond
one row group at a time.

CLI:
    python -m engine.dataset convert SRC DST [--shard-chars N] [--val-fraction F]
    python -m engine.dataset download -n N [--dir DST] [--base-url URL]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import time
import urllib.request
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from engine.errors import EngineError
from engine.shared import base_dir, one_line

TEXT_COLUMN = "text"
SHARD_NAME = "shard_{:05d}.parquet"
MANIFEST = "manifest.json"

# nanochat's pretraining data: FineWeb-Edu 100B, shuffled, repackaged as ~250M-char shards 0..1822.
NANOCHAT_BASE_URL = "https://huggingface.co/datasets/karpathy/fineweb-edu-100b-shuffle/resolve/main"
NANOCHAT_MAX_SHARD = 1822

# Converter defaults: ~100 MB of text per shard (tens of MB compressed), row groups small enough that
# a modest folder still gives several row groups to share between ranks.
SHARD_CHARS = 100_000_000
ROW_GROUP_CHARS = 1_000_000
VAL_FRACTION = 0.01

_FIX = ("delete it and re-download it (python -m engine.dataset download) or re-run the conversion; "
        "for the embedded corpus delete its folder to rebuild it")


# ---------------------------------------------------------------------------------------------- reading

def list_parquet_files(data_dir: Path) -> list[Path]:
    """The shards of a data folder, sorted by name (the last one is the validation split)."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise EngineError(f"data_dir {data_dir}: no such folder: run `python -m engine.dataset download -n 8` "
                          "or `python -m engine.dataset convert SRC DST`, or leave data_dir unset for the "
                          "embedded corpus")
    files = sorted(p for p in data_dir.iterdir() if p.suffix == ".parquet" and not p.name.startswith("."))
    if not files:
        raise EngineError(f"data_dir {data_dir}: holds no *.parquet shards: download or convert data into it "
                          "(python -m engine.dataset --help)")
    return files


def split_files(data_dir: Path, split: str) -> list[Path]:
    """train = every shard but the last, val = the last one."""
    if split not in ("train", "val"):
        raise EngineError(f"split {split!r}: unknown: use 'train' or 'val'")
    files = list_parquet_files(data_dir)
    if len(files) < 2:
        raise EngineError(f"data_dir {data_dir}: has {len(files)} shard; needs at least 2 (the last one is the "
                          "validation split): add shards or re-run the conversion")
    return files[:-1] if split == "train" else files[-1:]


class ShardReader:
    """Reads shards' metadata and row groups; every failure names the file and the fix.

    Metadata is cached for every shard, but only the few most recently read files stay open, so a run
    over all 1823 of nanochat's shards does not exhaust the process's file handles.
    """

    def __init__(self, max_open: int = 4) -> None:
        self.max_open = max_open
        self._meta: dict[Path, pq.FileMetaData] = {}
        self._open: OrderedDict[Path, pq.ParquetFile] = OrderedDict()

    def file(self, path: Path) -> pq.ParquetFile:
        pf = self._open.pop(path, None)
        if pf is None:
            try:
                pf = pq.ParquetFile(path)
            except FileNotFoundError:
                raise EngineError(f"shard {path}: missing: restore it or re-run the download/conversion") from None
            except (pa.ArrowException, OSError) as e:
                why = one_line(e, type_name=False)
                raise EngineError(f"shard {path}: not a readable parquet file ({why}): {_FIX}") from None
            if TEXT_COLUMN not in pf.schema_arrow.names:
                pf.close()
                raise EngineError(f"shard {path}: has no '{TEXT_COLUMN}' column (columns: "
                                  f"{', '.join(pf.schema_arrow.names)}): convert the data with "
                                  "`python -m engine.dataset convert`")
            self._meta[path] = pf.metadata
        self._open[path] = pf  # most recently used last
        while len(self._open) > self.max_open:
            self._open.popitem(last=False)[1].close()
        return pf

    def metadata(self, path: Path) -> pq.FileMetaData:
        return self._meta[path] if path in self._meta else self.file(path).metadata

    def num_row_groups(self, path: Path) -> int:
        return self.metadata(path).num_row_groups

    def num_rows(self, path: Path, index: int) -> int:
        return self.metadata(path).row_group(index).num_rows

    def read(self, path: Path, index: int) -> list[str]:
        try:
            column = self.file(path).read_row_group(index, columns=[TEXT_COLUMN]).column(TEXT_COLUMN)
        except (pa.ArrowException, OSError) as e:
            why = one_line(e, type_name=False)
            raise EngineError(f"shard {path}: row group {index} is corrupt ({why}): {_FIX}") from None
        return [t if t is not None else "" for t in column.to_pylist()]


def rank_row_groups(data_dir: Path, split: str, rank: int = 0, world_size: int = 1,
                    reader: ShardReader | None = None) -> list[tuple[Path, int]]:
    """This rank's (shard, row group) pairs in read order: r, r + world_size, … over all the split's row groups."""
    if world_size < 1 or not 0 <= rank < world_size:
        raise EngineError(f"rank {rank} of world_size {world_size}: need 0 <= rank < world_size")
    reader = reader or ShardReader()
    everything = [(p, i) for p in split_files(data_dir, split) for i in range(reader.num_row_groups(p))]
    mine = everything[rank::world_size]
    if not mine:
        raise EngineError(f"data_dir {data_dir}: the {split} split has {len(everything)} row groups, fewer than "
                          f"world_size={world_size}: use fewer ranks or re-convert with smaller row groups")
    return mine


def iter_texts(data_dir: Path, split: str, rank: int = 0, world_size: int = 1) -> Iterator[str]:
    """One pass over this rank's documents of a split, in a fixed order."""
    reader = ShardReader()
    for path, index in rank_row_groups(data_dir, split, rank, world_size, reader):
        yield from reader.read(path, index)


def data_id(data_dir: Path) -> str:
    """A short id that changes when the shards change (names and sizes): a cache key for tokenizers."""
    files = list_parquet_files(data_dir)
    h = hashlib.sha256()
    for p in files:
        h.update(f"{p.name}\0{p.stat().st_size}\n".encode())
    return f"{Path(data_dir).name}-{h.hexdigest()[:12]}"


# ---------------------------------------------------------------------------------------------- writing

def write_dataset(docs: Iterable[tuple[str, str]], out_dir: Path, val_fraction: float = VAL_FRACTION,
                  shard_chars: int = SHARD_CHARS, row_group_chars: int = ROW_GROUP_CHARS) -> dict:
    """Write (name, text) documents as shards into the empty folder `out_dir`; returns counts.

    A document goes to validation when a hash of its name falls under `val_fraction` (deterministic and
    spread over the whole input, not just its tail); if that picks none, the last train document moves
    to validation, and if it picks all, the first one moves to train. Train fills shards of about
    `shard_chars` characters; validation is always the one last shard. Row groups hold about
    `row_group_chars` characters (at least one document). Callers publish `out_dir` with one rename, so a
    crash never leaves a half-written dataset where a reader looks.
    """
    if not 0 < val_fraction < 1:
        raise EngineError(f"val_fraction={val_fraction}: must be between 0 and 1 (exclusive): e.g. 0.01")
    if shard_chars < 1 or row_group_chars < 1:
        raise EngineError(f"shard_chars={shard_chars}, row_group_chars={row_group_chars}: must be positive")
    val: list[str] = []
    counts = {"train_documents": 0, "val_documents": 0, "chars": 0}

    def train_docs() -> Iterator[str]:
        held = None  # one train document is held back in case validation ends up empty
        for name, text in docs:
            counts["chars"] += len(text)
            if _hash_fraction(name) < val_fraction:
                val.append(text)
                continue
            if held is not None:
                yield held
            held = text
        if held is not None and not val:
            val.append(held)
        elif held is not None:
            yield held
        elif len(val) > 1:
            yield val.pop(0)

    writer = _ShardWriter(out_dir, shard_chars, row_group_chars)
    for text in train_docs():
        writer.add(text)
        counts["train_documents"] += 1
    writer.finish_shard()
    if counts["train_documents"] == 0 or not val:
        raise EngineError(f"{out_dir}: got {counts['train_documents'] + len(val)} document(s); need at least 2 "
                          "(one train, one validation): add more text")
    writer.shard_chars = sys.maxsize  # validation is always exactly one shard, the last
    for text in val:
        writer.add(text)
    writer.finish_shard()
    counts["val_documents"] = len(val)
    counts["shards"] = [p.name for p in writer.paths]
    return counts


class _ShardWriter:
    def __init__(self, out_dir: Path, shard_chars: int, row_group_chars: int):
        self.out_dir, self.shard_chars, self.row_group_chars = out_dir, shard_chars, row_group_chars
        self.paths: list[Path] = []
        self.groups: list[list[str]] = []
        self.group: list[str] = []
        self.group_chars = self.shard_total = 0

    def add(self, text: str) -> None:
        self.group.append(text)
        self.group_chars += len(text)
        self.shard_total += len(text)
        if self.group_chars >= self.row_group_chars:
            self._close_group()
            if self.shard_total >= self.shard_chars:
                self.finish_shard()

    def _close_group(self) -> None:
        if self.group:
            self.groups.append(self.group)
        self.group, self.group_chars = [], 0

    def finish_shard(self) -> None:
        self._close_group()
        if not self.groups:
            return
        path = self.out_dir / SHARD_NAME.format(len(self.paths))
        schema = pa.schema([(TEXT_COLUMN, pa.string())])
        with pq.ParquetWriter(path, schema, compression="zstd") as w:
            for group in self.groups:
                w.write_table(pa.table({TEXT_COLUMN: group}, schema=schema), row_group_size=len(group))
        self.paths.append(path)
        self.groups, self.shard_total = [], 0


def _hash_fraction(name: str) -> float:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big") / 2**64


def publish_dir(tmp: Path, dst: Path) -> bool:
    """Rename a finished temp folder into place; False (and tmp removed) when `dst` already holds one."""
    try:
        os.rename(tmp, dst)
        return True
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if dst.is_dir() and any(dst.iterdir()):
            return False
        raise


def write_manifest(out_dir: Path, info: dict) -> None:
    (out_dir / MANIFEST).write_text(json.dumps(info, indent=2) + "\n")


def _text_files(src: Path) -> Iterator[tuple[str, Path]]:
    """Regular files under src, recursive, sorted by relative path; hidden files and folders are skipped."""
    for root, dirs, files in os.walk(src):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith("."):
                path = Path(root) / name
                yield path.relative_to(src).as_posix(), path


def convert_text_folder(src: Path, dst: Path, shard_chars: int = SHARD_CHARS, val_fraction: float = VAL_FRACTION,
                        row_group_chars: int = ROW_GROUP_CHARS) -> list[Path]:
    """Turn a folder of UTF-8 text files (one document per file) into shards in `dst`.

    Files are read in sorted path order; binary files (a NUL byte) and files that are not valid UTF-8 are
    skipped and counted, empty files are skipped. `dst` must be missing or empty; the shards are written
    into a temp folder beside it and published with one rename. `dst/manifest.json` records the counts.
    """
    src, dst = Path(src), Path(dst)
    if not src.is_dir():
        raise EngineError(f"convert source {src}: no such folder: give a folder of text files")
    if dst.exists() and (not dst.is_dir() or any(dst.iterdir())):
        raise EngineError(f"convert destination {dst}: exists and is not empty: choose a new folder or delete it")
    skipped = {"binary": 0, "not_utf8": 0, "empty": 0}

    def docs() -> Iterator[tuple[str, str]]:
        for rel, path in _text_files(src):
            data = path.read_bytes()
            if not data.strip():
                skipped["empty"] += 1
            elif b"\0" in data:
                skipped["binary"] += 1
            else:
                try:
                    yield rel, data.decode("utf-8")
                except UnicodeDecodeError:
                    skipped["not_utf8"] += 1

    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        t0 = time.time()
        counts = write_dataset(docs(), tmp, val_fraction, shard_chars, row_group_chars)
        write_manifest(tmp, {"kind": "converted-text-folder", "source": str(src.resolve()), **counts,
                             "skipped": skipped, "build_seconds": round(time.time() - t0, 2)})
        if dst.is_dir():
            dst.rmdir()  # empty (checked above); rename needs the name free
        if not publish_dir(tmp, dst):
            raise EngineError(f"convert destination {dst}: another process filled it meanwhile: choose a new folder")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return list_parquet_files(dst)


# ---------------------------------------------------------------------------------------------- download

def download_shards(indices: Iterable[int], dst: Path, base_url: str = NANOCHAT_BASE_URL, retries: int = 5,
                    backoff: float = 2.0, timeout: float = 60.0, workers: int = 4) -> list[Path]:
    """Fetch shards `shard_{i:05d}.parquet` from `base_url` into `dst`; skips ones already present and valid.

    Each file streams into a temp file, must open as parquet with a text column, then is renamed into place.
    A failure is retried `retries` times with exponential backoff, then raises EngineError naming the URL.
    """
    dst = Path(dst)
    dst.mkdir(parents=True, exist_ok=True)
    indices = list(indices)
    for i in indices:
        if not 0 <= i <= NANOCHAT_MAX_SHARD:
            raise EngineError(f"shard index {i}: out of range: nanochat's shards are 0..{NANOCHAT_MAX_SHARD}")
    with ThreadPoolExecutor(max(1, workers)) as pool:
        return list(pool.map(lambda i: _download_one(i, dst, base_url, retries, backoff, timeout), indices))


def _download_one(index: int, dst: Path, base_url: str, retries: int, backoff: float, timeout: float) -> Path:
    name = SHARD_NAME.format(index)
    path = dst / name
    if path.exists() and _is_valid_shard(path):
        return path
    url = f"{base_url.rstrip('/')}/{name}"
    tmp = dst / f".{name}.{os.getpid()}.tmp"
    error = ""
    for attempt in range(retries + 1):
        try:
            with urllib.request.urlopen(url, timeout=timeout) as r, open(tmp, "wb") as f:
                shutil.copyfileobj(r, f, 1 << 20)
            if not _is_valid_shard(tmp):
                raise ValueError("downloaded file is not a parquet shard with a text column")
            os.replace(tmp, path)
            return path
        except (OSError, ValueError) as e:
            error = one_line(e, type_name=False)
            tmp.unlink(missing_ok=True)
            if attempt < retries:
                time.sleep(backoff * 2**attempt)
    raise EngineError(f"download {url}: failed after {retries + 1} attempts ({error}): check the network "
                      "and the URL, then re-run the download")


def _is_valid_shard(path: Path) -> bool:
    try:
        return TEXT_COLUMN in pq.ParquetFile(path).schema_arrow.names
    except (pa.ArrowException, OSError):
        return False


# ---------------------------------------------------------------------------------------------- CLI

def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m engine.dataset", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("convert", help="turn a folder of text files into parquet shards")
    c.add_argument("src", type=Path)
    c.add_argument("dst", type=Path)
    c.add_argument("--shard-chars", type=int, default=SHARD_CHARS)
    c.add_argument("--row-group-chars", type=int, default=ROW_GROUP_CHARS)
    c.add_argument("--val-fraction", type=float, default=VAL_FRACTION)
    d = sub.add_parser("download", help="download nanochat's FineWeb-Edu pretraining shards")
    d.add_argument("-n", "--num-shards", type=int, required=True, help="shards 0..N-1 (the last is validation)")
    d.add_argument("--dir", type=Path, default=None, help="destination (default <base>/base_data)")
    d.add_argument("--base-url", default=NANOCHAT_BASE_URL)
    d.add_argument("--workers", type=int, default=4)
    args = p.parse_args(argv)
    try:
        if args.cmd == "convert":
            files = convert_text_folder(args.src, args.dst, args.shard_chars, args.val_fraction, args.row_group_chars)
            info = json.loads((args.dst / MANIFEST).read_text())
            print(f"wrote {len(files)} shards to {args.dst}: {info['train_documents']} train + "
                  f"{info['val_documents']} val documents, {info['chars']:,} chars; skipped {info['skipped']}")
        else:
            if not 1 <= args.num_shards <= NANOCHAT_MAX_SHARD + 1:
                raise EngineError(f"-n {args.num_shards}: must be 1..{NANOCHAT_MAX_SHARD + 1}")
            if args.dir is None:
                args.dir = base_dir() / "base_data"
            files = download_shards(range(args.num_shards), args.dir, args.base_url, workers=args.workers)
            print(f"{len(files)} shards in {args.dir}")
    except EngineError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
