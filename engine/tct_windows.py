"""Training on TCT windows: find (or prepare) a window folder, and batch its rows exactly resumably.

A folder written by `python -m engine.tct.prepare` holds one window per row: a position token, then up to
`context_size` document tokens. A row is already a training sequence, so nothing is packed: a batch is
B rows, `inputs = row[:-1]`, `targets = row[1:]`; a shorter row (the end of a document) is padded, its
padding targets set to -1 so the loss and the bits-per-byte ignore them. The run's `max_seq_len` must be
the folder's context size.

Order. The train split is read in a fresh seeded permutation each epoch (this rank's rows: every
`world_size`-th row from `rank`); the val split in file
order. Both loop forever. The whole state is (epoch, cursor), so resuming continues with exactly the
batches an uninterrupted loader would have produced.

`data_dir` may name a folder, or `tct:NAME`: the windows under `<base>/tct_data/NAME-ctx<T>`, prepared on
first use from the workflow folders in $NANOCHAT_TCT_SOURCES (os.pathsep-separated), else from
`data/workflows-real` in $NANOCHAT_SHARED or in the `shared` folder next to the repository or the
current folder (`../shared/data/workflows-real` in a checkout).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from engine.errors import EngineError
from engine.shared import one_line
from engine.tct.location import SCHEME, is_window_dir, window_dir_for

STATE_VERSION = 1
PAD_TARGET = -1
SOURCES_ENV = "NANOCHAT_TCT_SOURCES"


def read_meta(data_dir: Path) -> dict[str, Any]:
    path = Path(data_dir) / "meta.json"
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EngineError(f"{path}: missing: prepare the folder with `python -m engine.tct.prepare`") from None
    except (OSError, ValueError) as e:
        raise EngineError(f"{path}: unreadable ({one_line(e, type_name=False)}): prepare the folder again "
                          "(python -m engine.tct.prepare --overwrite)") from None
    if not isinstance(meta, dict) or meta.get("format") != "tct-windows":
        raise EngineError(f"{path}: not a TCT window folder: prepare it with `python -m engine.tct.prepare`")
    return meta


def check_tokenizer(data_dir: Path, meta: dict[str, Any]) -> None:
    """Token ids only mean what they meant when prepared under the same schema and merges."""
    from engine.tct.prepare import _sha256_data
    from engine.tct.schema import SCHEMA_FILE

    want = {"schema_sha256": _sha256_data(SCHEMA_FILE), "merges_sha256": _sha256_data("merges.txt")}
    have = meta.get("tokenizer") or {}
    for key, digest in want.items():
        if have.get(key) != digest:
            raise EngineError(f"{data_dir}: prepared with another TCT {key.split('_')[0]} than this engine's: "
                              "prepare it again (python -m engine.tct.prepare --overwrite)")


def default_sources() -> list[Path]:
    """Workflow folders a `tct:` data_dir is prepared from when it is not there yet."""
    env = os.environ.get(SOURCES_ENV)
    if env:
        return [Path(p).expanduser() for p in env.split(os.pathsep) if p]
    repo = Path(__file__).resolve().parents[1]
    shared = [Path(os.environ["NANOCHAT_SHARED"]).expanduser()] if os.environ.get("NANOCHAT_SHARED") else []
    seen: list[Path] = []
    for root in (*shared, repo.parent / "shared", Path.cwd().parent / "shared", Path.cwd() / "shared"):
        cand = root / "data" / "workflows-real"
        if cand.is_dir() and cand.resolve() not in [s.resolve() for s in seen]:
            seen.append(cand)
    return seen[:1]


def resolve_window_dir(spec: str, base: Path, context_size: int) -> Path:
    """The window folder `spec` ("tct:NAME") stands for under `base`, prepared first if it is not there."""
    name = spec[len(SCHEME):] or "workflows"
    if not name.replace("-", "").replace("_", "").isalnum():
        raise EngineError(f"data_dir {spec!r}: use tct:NAME with letters, digits, - and _ (e.g. tct:workflows)")
    out = window_dir_for(spec, base, context_size)
    if is_window_dir(out):
        return out
    sources = [s for s in default_sources() if s.is_dir()]
    if not sources:
        looked = os.environ.get(SOURCES_ENV) or "../shared/data/workflows-real"
        raise EngineError(f"data_dir {spec}: no TCT windows at {out} and no workflow folder to prepare them from "
                          f"(looked in {looked}): set {SOURCES_ENV}=DIR, or run `python -m engine.tct.prepare "
                          f"--input DIR --output {out} --context-size {context_size}`")
    from engine.tct.prepare import format_report, prepare

    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    report = prepare([str(s) for s in sources], str(tmp), context_size, overwrite=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        tmp.rename(out)
    except OSError:  # another process prepared it first: theirs is the same
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    print(f"prepared TCT windows from {', '.join(map(str, sources))} into {out}:\n{format_report(report)}",
          flush=True)
    return out


class _Rows:
    """This rank's rows of one split, in memory (window folders are small: 400k workflow tokens is 800 KB)."""

    def __init__(self, data_dir: Path, meta: dict[str, Any], split: str, rank: int, world_size: int):
        if split not in ("train", "val"):
            raise EngineError(f"split {split!r}: unknown: use 'train' or 'val'")
        names = (meta.get("splits") or {}).get(split) or []
        if not names:
            raise EngineError(f"{data_dir}: the {split} split has no shard: prepare it with more files or a "
                              "larger --val-fraction")
        groups = []
        for name in names:
            path = Path(data_dir) / name
            try:
                pf = pq.ParquetFile(path)
                groups += [(pf, i) for i in range(pf.num_row_groups)]
            except FileNotFoundError:
                raise EngineError(f"shard {path}: missing: prepare the folder again") from None
            except (pa.ArrowException, OSError) as e:
                raise EngineError(f"shard {path}: unreadable ({one_line(e, type_name=False)}): prepare the folder "
                                  "again (python -m engine.tct.prepare --overwrite)") from None
        rows: list[np.ndarray] = []
        for pf, i in groups:
            column = pf.read_row_group(i, columns=["tokens"]).column("tokens").to_pylist()
            rows += [np.asarray(r, dtype=np.int64) for r in column if len(r) >= 2]  # at least one target
        self.rows = rows[rank::world_size]  # rows, not row groups: a small val split still feeds every rank
        if not self.rows:
            raise EngineError(f"{data_dir}: rank {rank} of {world_size} gets no {split} window: use fewer ranks "
                              "or prepare more data")


class WindowLoader:
    """Iterator of (inputs [B,T] int64, targets [B,T] int64, state) on `device`, like engine.dataloader's."""

    def __init__(self, rows: _Rows, B: int, T: int, split: str, seed: int, device: torch.device, header: dict,
                 pad_input: int):
        self.rows, self.B, self.T, self.split, self.seed = rows.rows, B, T, split, seed
        self.device, self.header, self.pad_input = device, header, pad_input
        self.epoch_no, self.cursor, self.batches = 0, 0, 0
        self._order = self._permutation(0)

    def _permutation(self, epoch: int) -> np.ndarray:
        if self.split != "train":
            return np.arange(len(self.rows))
        return np.random.default_rng([self.seed, epoch]).permutation(len(self.rows))

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, dict]]:
        return self

    def __next__(self) -> tuple[torch.Tensor, torch.Tensor, dict]:
        inputs = np.full((self.B, self.T), self.pad_input, dtype=np.int64)
        targets = np.full((self.B, self.T), PAD_TARGET, dtype=np.int64)
        for b in range(self.B):
            if self.cursor >= len(self._order):
                self.epoch_no, self.cursor = self.epoch_no + 1, 0
                self._order = self._permutation(self.epoch_no)
            row = self.rows[self._order[self.cursor]][: self.T + 1]
            self.cursor += 1
            inputs[b, : len(row) - 1] = row[:-1]
            targets[b, : len(row) - 1] = row[1:]
        self.batches += 1
        x, y = torch.from_numpy(inputs), torch.from_numpy(targets)
        if self.device.type != "cpu":
            x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
        return x, y, self.state()

    def state(self) -> dict:
        return {**self.header, "batches": self.batches, "epoch": self.epoch_no, "cursor": self.cursor}

    @property
    def epoch(self) -> int:
        return self.epoch_no


def make_window_loader(data_dir: Path, B: int, T: int, split: str, rank: int = 0, world_size: int = 1,
                       device: str | torch.device = "cpu", state: dict | None = None, seed: int = 0) -> WindowLoader:
    """A loader of this rank's window batches; with `state` (from an earlier loader) it resumes exactly."""
    if B < 1 or T < 1:
        raise EngineError(f"dataloader B={B}, T={T}: both must be >= 1")
    if world_size < 1 or not 0 <= rank < world_size:
        raise EngineError(f"rank {rank} of world_size {world_size}: need 0 <= rank < world_size")
    data_dir = Path(data_dir)
    meta = read_meta(data_dir)
    context = meta.get("context_size")
    if context != T:
        raise EngineError(f"max_seq_len {T}: the TCT windows in {data_dir} hold {context} tokens: set "
                          f"max_seq_len={context}, or prepare them again with --context-size {T}")
    check_tokenizer(data_dir, meta)
    rows = _Rows(data_dir, meta, split, rank, world_size)
    from engine.tct import tokenizer

    header = {"version": STATE_VERSION, "kind": "tct-windows", "split": split, "rank": rank,
              "world_size": world_size, "data_id": window_data_id(data_dir), "seq_len": T, "seed": seed}
    loader = WindowLoader(rows, B, T, split, seed, torch.device(device), header,
                          pad_input=tokenizer().vocab.position_token(0))
    if state is not None:
        _restore(loader, state, header)
    return loader


def window_data_id(data_dir: Path) -> str:
    """Changes when the shards change (names and sizes)."""
    import hashlib

    h = hashlib.sha256()
    for p in sorted(Path(data_dir).glob("shard_*.parquet")):
        h.update(f"{p.name}\0{p.stat().st_size}\n".encode())
    return f"{Path(data_dir).name}-{h.hexdigest()[:12]}"


def _restore(loader: WindowLoader, state: dict, header: dict) -> None:
    if not isinstance(state, dict) or state.get("version") != STATE_VERSION or state.get("kind") != "tct-windows":
        raise EngineError("dataloader state: not a TCT window loader's (version "
                          f"{state.get('version') if isinstance(state, dict) else state!r}): resume a run that "
                          "trained on the same TCT windows, or start fresh (resume=False)")
    for key in ("split", "rank", "world_size", "data_id", "seq_len", "seed"):
        if state.get(key) != header[key]:
            raise EngineError(f"dataloader state: {key} was {state.get(key)!r}, now {header[key]!r}: resume with "
                              "the same data, ranks, seed and max_seq_len, or start fresh (resume=False)")
    try:
        epoch, cursor, batches = int(state["epoch"]), int(state["cursor"]), int(state["batches"])
    except (KeyError, TypeError, ValueError):
        raise EngineError("dataloader state: malformed (epoch/cursor/batches): start fresh (resume=False)") from None
    loader.epoch_no, loader.cursor, loader.batches = epoch, cursor, batches
    loader._order = loader._permutation(epoch)
