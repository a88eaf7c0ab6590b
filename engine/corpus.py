"""The embedded default corpus: pretraining text that every Python installation already carries.

A fresh machine has no data and may have no network, yet `engine.train` with no `data_dir` must run.
So the default corpus is built from this interpreter's standard library: every `.py` file under
`sysconfig.get_paths()["stdlib"]` (sorted walk; site-packages, __pycache__ and pydoc_data skipped) and
the help topics of `pydoc_data.topics` (the text `help("topics")` shows). That is some 30 MB of Python
source and reference prose: plenty for smoke tests and CPU demos, although a model trained on it writes
Python, not chat.

Documents. A whole file is a poor document here: the median file is ~6k characters (~2k tokens), and the
best-fit packer keeps only the first T+1 tokens of a document longer than a row, so one document per file
would throw away most of the corpus at any sequence length. Each file or topic is therefore cut into
documents of at most `DOC_CHARS` characters at its most natural boundaries (a blank line before an
unindented line, i.e. between top-level definitions; else any blank line; else any line end), greedily
merging neighbours up to the limit. The pieces concatenate back to the file exactly; all pieces of one
file land in the same split (train/val is chosen by a hash of the file name).

It is built once per (format, Python version, source listing) into `<base>/data/embedded-<id>/` with a
README.md and manifest.json saying what it is. Concurrent builders (DDP ranks) each build into a private
temp folder and publish it with one rename; whoever loses the race deletes theirs and uses the winner's.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import sys
import sysconfig
import time
from collections.abc import Iterator
from pathlib import Path

from engine import dataset
from engine.errors import EngineError

FORMAT = 2
SHARD_CHARS = 4_000_000  # a few MB per shard
ROW_GROUP_CHARS = 128_000  # ~250 train and ~12 val row groups: enough to stride over 8 ranks
VAL_FRACTION = 0.05
DOC_CHARS = 2000  # ~600 tokens of Python: a function or two
_SKIP_DIRS = {"site-packages", "dist-packages", "__pycache__", "pydoc_data"}


def stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def _source_files(root: Path) -> Iterator[tuple[str, Path]]:
    for dirpath, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS)
        for name in sorted(files):
            if name.endswith(".py"):
                path = Path(dirpath) / name
                yield path.relative_to(root).as_posix(), path


def _topics() -> dict[str, str]:
    from pydoc_data.topics import topics
    return topics


def documents(max_docs: int | None = None, skipped: list[str] | None = None,
              doc_chars: int = DOC_CHARS) -> Iterator[tuple[str, str]]:
    """(file name, text) of every document in order: stdlib sources, then pydoc topics, each cut by
    `split_text`. Files that are not valid UTF-8 (the stdlib test suite keeps a few on purpose) or are
    empty are skipped and their names appended to `skipped`."""
    n = 0
    sources = ((f"stdlib/{rel}", path) for rel, path in _source_files(stdlib_root()))
    topics = ((f"pydoc_topics/{key}", key) for key in sorted(_topics()))
    for name, where in (*sources, *topics):
        if isinstance(where, Path):
            try:
                text = where.read_bytes().decode("utf-8")
            except (UnicodeDecodeError, OSError):
                text = ""
        else:
            text = _topics()[where]
        if not text.strip():
            if skipped is not None:
                skipped.append(name)
            continue
        for piece in split_text(text, doc_chars):
            if max_docs is not None and n >= max_docs:
                return
            n += 1
            yield name, piece


def _top_level(lines: list[str], i: int) -> bool:
    return not lines[i - 1].strip() and lines[i][:1] not in " \t)]}" and bool(lines[i].strip())


def _after_blank(lines: list[str], i: int) -> bool:
    return not lines[i - 1].strip() and bool(lines[i].strip())


def split_text(text: str, max_chars: int) -> list[str]:
    """Cut `text` into consecutive pieces of at most `max_chars` characters (a single longer line stays
    whole) at the most natural boundaries available; "".join(pieces) == text."""
    if len(text) <= max_chars:
        return [text]
    lines = text.splitlines(keepends=True)
    for rule in (_top_level, _after_blank, None):
        cuts = [i for i in range(1, len(lines)) if rule is None or rule(lines, i)]
        if cuts:
            break
    else:
        return [text]
    pieces, current = [], ""
    for a, b in zip([0, *cuts], [*cuts, len(lines)], strict=True):
        part = "".join(lines[a:b])
        if len(current) + len(part) <= max_chars:
            current += part
            continue
        if current:
            pieces.append(current)
        if len(part) > max_chars:
            pieces += split_text(part, max_chars)  # no boundary of this kind inside: try finer ones
            current = ""
        else:
            current = part
    if current:
        pieces.append(current)
    return pieces


def corpus_id(max_docs: int | None = None, shard_chars: int = SHARD_CHARS,
              row_group_chars: int = ROW_GROUP_CHARS) -> str:
    """Changes with anything the shards depend on: the format and its constants, the Python build, the
    source listing (names and sizes) and the build arguments."""
    recipe = [FORMAT, DOC_CHARS, VAL_FRACTION, platform.python_implementation(), sys.version, max_docs, shard_chars,
              row_group_chars]
    h = hashlib.sha256("\0".join(map(str, recipe)).encode() + b"\n")
    for rel, path in _source_files(stdlib_root()):
        h.update(f"{rel}\0{path.stat().st_size}\n".encode())
    for key, text in sorted(_topics().items()):
        h.update(f"{key}\0{len(text)}\n".encode())
    return h.hexdigest()[:12]


def corpus_dir(base: Path, max_docs: int | None = None, shard_chars: int = SHARD_CHARS,
               row_group_chars: int = ROW_GROUP_CHARS) -> Path:
    return Path(base) / "data" / f"embedded-{corpus_id(max_docs, shard_chars, row_group_chars)}"


def resolve_data_dir(data_dir: str | None, base: Path) -> Path:
    """The folder a run reads: the one given (checked), or the embedded corpus, built on first use."""
    if data_dir is None:
        return ensure_embedded_corpus(Path(base))
    path = Path(data_dir).expanduser()
    dataset.split_files(path, "val")  # raises with the fix if the folder is missing, empty or a single shard
    return path


def ensure_embedded_corpus(base: Path, max_docs: int | None = None, shard_chars: int = SHARD_CHARS,
                           row_group_chars: int = ROW_GROUP_CHARS) -> Path:
    """The embedded corpus folder under `base`, built first if absent. `max_docs` builds a small one (tests)."""
    final = corpus_dir(base, max_docs, shard_chars, row_group_chars)
    if final.is_dir():
        if not (final / dataset.MANIFEST).is_file():
            raise EngineError(f"embedded corpus {final}: incomplete (no {dataset.MANIFEST}): delete the folder "
                              "to rebuild it")
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        build(tmp, max_docs, shard_chars, row_group_chars)
        dataset.publish_dir(tmp, final)  # False: another process won the race; its corpus is identical
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def build(out_dir: Path, max_docs: int | None = None, shard_chars: int = SHARD_CHARS,
          row_group_chars: int = ROW_GROUP_CHARS) -> dict:
    """Write the shards, manifest.json and README.md into the empty folder `out_dir`; returns the manifest."""
    t0 = time.time()
    skipped: list[str] = []
    files: set[str] = set()

    def docs() -> Iterator[tuple[str, str]]:
        for name, text in documents(max_docs, skipped):
            files.add(name)
            yield name, text

    counts = dataset.write_dataset(docs(), out_dir, VAL_FRACTION, shard_chars, row_group_chars)
    info = {
        "kind": "embedded-python-stdlib",
        "format": FORMAT,
        "id": corpus_id(max_docs, shard_chars, row_group_chars),
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "stdlib": str(stdlib_root()),
        "sources": "*.py under the stdlib folder (site-packages, __pycache__, pydoc_data skipped) + "
                   "pydoc_data.topics",
        "document": f"a piece of at most {DOC_CHARS} characters of one file or topic, cut between top-level "
                    "blocks",
        "max_docs": max_docs,
        "files": len(files),
        "documents": counts["train_documents"] + counts["val_documents"],
        **counts,
        "skipped": skipped,
        "bytes_on_disk": sum((out_dir / s).stat().st_size for s in counts["shards"]),
        "build_seconds": round(time.time() - t0, 2),
    }
    dataset.write_manifest(out_dir, info)
    (out_dir / "README.md").write_text(_readme(info))
    return info


def _readme(info: dict) -> str:
    return f"""# Embedded default corpus

Built by nanochat-cli's engine (`engine/corpus.py`) because no `data_dir` was given. It is NOT web
text: it is the source code of this Python installation's standard library plus its pydoc help topics,
so a model trained on it learns to write Python-ish text. Use it for smoke tests and CPU demos; for a
real model download nanochat's FineWeb-Edu shards (`python -m engine.dataset download -n 8`).

- Python {info['implementation']} {info['python']}, stdlib at `{info['stdlib']}`
- sources: {info['sources']}
- {info['files']:,} files and topics cut into {info['documents']:,} documents ({info['train_documents']:,} train,
  {info['val_documents']:,} validation, chosen by a hash of the file name), {info['chars']:,} characters;
  {len(info['skipped'])} files skipped (empty or not UTF-8)
- a document is {info['document']}
- {len(info['shards'])} parquet shards (`text` column, one document per row; the last shard is validation),
  {info['bytes_on_disk']:,} bytes
- licence of the text: the Python Software Foundation License, like the interpreter it came from

Delete this folder to rebuild it; it is rebuilt automatically when the Python version changes.
"""
