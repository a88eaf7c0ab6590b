"""Workflow files → TCT tokens → training windows → train/val parquet shards, plus a report.

    python -m engine.tct.prepare --input DIR [--input DIR ...] --output DIR --context-size 512

Every *.yml/*.yaml/*.json file under the inputs is read (YAML through `yaml_to_json`), encoded, and cut
into windows of `context_size` document tokens starting every `stride` tokens (default: the context
size, so every token is a target exactly once). Each window is `extract_window(tokens, start,
start + context_size)`: the position token, then up to `context_size` tokens, at most context_size + 1
in all, so a row gives inputs = row[:-1] and targets = row[1:] of up to `context_size` each. The last
window of a document is shorter. Files go to train or val by a hash of their name (stable when files
are added), so no document is split across the two.

Output folder (see docs/tct.md):
    shard_00000.parquet ... train windows; the LAST shard (by name) is the val split, as in engine.dataset
        columns: tokens (list<uint16>), doc (string: source file name), start (int32: window start)
    meta.json     format, vocab size, context size, window length, split -> shards, tokenizer digests
    report.json   files used/skipped (and why), escapes, tokens and windows per split
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from engine.errors import EngineError
from engine.shared import atomic_write, run_main, sha256_file
from engine.tct import extract_window, tokenizer
from engine.tct.corpus import load_corpus
from engine.tct.location import FORMAT, is_window_dir  # noqa: F401 - re-exported
from engine.tct.schema import SCHEMA_FILE
from engine.tct.vocab import N_POS, POS_STRIDE, VOCAB_SIZE

FORMAT_VERSION = 1
SHARD_NAME = "shard_{:05d}.parquet"
ROW_GROUP_WINDOWS = 256  # several row groups per shard, so ranks can share a split
SHARD_WINDOWS = 100_000


@dataclass
class Split:
    name: str
    docs: int = 0
    tokens: int = 0
    windows: int = 0
    rows: list[dict[str, Any]] = field(default_factory=list)


def name_hash(name: str) -> float:
    """A file name's place in [0, 1): files with a hash below the val fraction go to val."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big") / 2**64


def windows(tokens: list[int], context_size: int, stride: int) -> list[tuple[int, list[int]]]:
    """(start, window) for windows starting every `stride` tokens; an empty document gives one window."""
    return [(s, extract_window(tokens, s, s + context_size)) for s in range(0, max(len(tokens), 1), stride)]


def _write_shard(path: Path, rows: list[dict[str, Any]]) -> None:
    table = pa.table({
        "tokens": pa.array([r["tokens"] for r in rows], type=pa.list_(pa.uint16())),
        "doc": pa.array([r["doc"] for r in rows], type=pa.string()),
        "start": pa.array([r["start"] for r in rows], type=pa.int32()),
    })
    atomic_write(path, lambda f: pq.write_table(table, f, row_group_size=ROW_GROUP_WINDOWS))


def _sha256_data(name: str) -> str:
    return sha256_file(Path(__file__).resolve().parent / "data" / name)


def _check_output(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise EngineError(f"--output {out}: is a file: pass a folder")
    ours = [p for p in out.glob("*") if p.name.startswith("shard_") or p.name in ("meta.json", "report.json")] \
        if out.is_dir() else []
    if ours and not overwrite:
        raise EngineError(f"--output {out}: already holds shards or a report: pass an empty folder or --overwrite")
    for p in ours:
        p.unlink()
    out.mkdir(parents=True, exist_ok=True)


def prepare(inputs: list[str], output: str, context_size: int, stride: int | None = None,
            val_fraction: float = 0.1, overwrite: bool = False) -> dict[str, Any]:
    """Run the pipeline; returns the report (also written to OUTPUT/report.json)."""
    if context_size < 2:
        raise EngineError(f"--context-size {context_size}: must be at least 2")
    stride = context_size if stride is None else stride
    if not 1 <= stride <= context_size:
        raise EngineError(f"--stride {stride}: must be between 1 and the context size ({context_size})")
    if not 0.0 <= val_fraction < 1.0:
        raise EngineError(f"--val-fraction {val_fraction}: must be in [0, 1)")
    out = Path(output)
    t0 = time.perf_counter()
    corpus = load_corpus(inputs)
    if not corpus.docs:
        raise EngineError(f"--input {' '.join(inputs)}: no usable workflow files "
                          f"({len(corpus.skipped)} skipped): point it at workflow files")
    tok = tokenizer()
    val_names = {p.name for p, _ in corpus.docs if name_hash(p.name) < val_fraction}
    if val_fraction > 0 and not val_names and len(corpus.docs) > 1:  # tiny inputs: never an empty val split
        val_names = {min((p.name for p, _ in corpus.docs), key=name_hash)}
    splits = {"train": Split("train"), "val": Split("val")}
    docs_with_escapes = escapes = json_bytes = 0
    for path, text in corpus.docs:
        tokens = tok.encode_value(json.loads(text))
        docs_with_escapes += tok.escapes > 0
        escapes += tok.escapes
        json_bytes += len(text.encode())
        split = splits["val" if path.name in val_names else "train"]
        split.docs += 1
        split.tokens += len(tokens)
        for start, window in windows(tokens, context_size, stride):
            split.rows.append({"tokens": window, "doc": path.name, "start": start})
    _check_output(out, overwrite)
    shards: dict[str, list[str]] = {"train": [], "val": []}
    index = 0
    for name in ("train", "val"):
        rows = splits[name].rows
        splits[name].windows = len(rows)
        for i in range(0, len(rows), SHARD_WINDOWS) if rows else []:
            shard = SHARD_NAME.format(index)
            _write_shard(out / shard, rows[i:i + SHARD_WINDOWS])
            shards[name].append(shard)
            index += 1
    meta = {
        "format": FORMAT, "version": FORMAT_VERSION, "vocab_size": VOCAB_SIZE, "context_size": context_size,
        "window_len": context_size + 1, "stride": stride, "column": "tokens", "dtype": "uint16",
        "splits": shards, "val_is_last_shard": True,
        "position_tokens": {"first": tok.vocab.pos_base, "count": N_POS, "stride": POS_STRIDE,
                            "document_start": tok.vocab.position_token(0)},
        "tokenizer": {"schema_sha256": _sha256_data(SCHEMA_FILE), "merges_sha256": _sha256_data("merges.txt")},
    }
    report = {
        "inputs": inputs,
        "files": {"found": len(corpus.docs) + len(corpus.skipped), "used": len(corpus.docs),
                  "skipped": len(corpus.skipped)},
        "skipped": [{"file": str(p), "reason": r} for p, r in corpus.skipped],
        "escapes": {"docs": docs_with_escapes, "total": escapes},
        "json_bytes": json_bytes,
        "splits": {n: {"docs": s.docs, "tokens": s.tokens, "windows": s.windows, "shards": shards[n]}
                   for n, s in splits.items()},
        "seconds": round(time.perf_counter() - t0, 2),
    }
    atomic_write(out / "meta.json", json.dumps(meta, indent=2) + "\n")
    atomic_write(out / "report.json", json.dumps(report, indent=2) + "\n")
    return report


def format_report(report: dict[str, Any]) -> str:
    f = report["files"]
    lines = [f"files: {f['found']} found, {f['used']} used, {f['skipped']} skipped"]
    lines += [f"  skipped {s['file']}: {s['reason']}" for s in report["skipped"]]
    e = report["escapes"]
    lines.append(f"escapes: {e['total']} in {e['docs']} documents (parts that do not fit the schema; kept losslessly)")
    for name, s in report["splits"].items():
        lines.append(f"{name}: {s['docs']} documents, {s['tokens']:,} tokens, {s['windows']:,} windows "
                     f"in {', '.join(s['shards']) or 'no shard'}")
    lines.append(f"{report['json_bytes']:,} bytes of JSON in {report['seconds']} s")
    return "\n".join(lines)


def build_arg_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="engine.tct.prepare", description=__doc__.split("\n\n")[0])
    p.add_argument("--input", action="append", required=True, metavar="DIR",
                   help="folder of workflow files (*.yml, *.yaml, *.json); repeat for several")
    p.add_argument("--output", required=True, metavar="DIR", help="folder for the shards, meta.json, report.json")
    p.add_argument("--context-size", type=int, default=512, help="document tokens per window (default: 512)")
    p.add_argument("--stride", type=int, default=None, help="tokens between window starts (default: context size)")
    p.add_argument("--val-fraction", type=float, default=0.1, help="share of files for val (default: 0.1)")
    p.add_argument("--overwrite", action="store_true", help="replace shards/report already in --output")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_arg_parser().parse_args(argv)

    def body() -> int:
        report = prepare(args.input, args.output, args.context_size, args.stride, args.val_fraction, args.overwrite)
        print(format_report(report))
        print(f"wrote {args.output}")
        return 0

    return run_main("engine.tct.prepare", body)


if __name__ == "__main__":
    sys.exit(main())
