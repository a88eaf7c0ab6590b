"""Workflow files on disk → JSON texts, with the reason for every file that cannot be used."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from engine.errors import EngineError
from engine.tct.yamljson import file_to_json

SUFFIXES = (".yml", ".yaml", ".json")


@dataclass
class Corpus:
    docs: list[tuple[Path, str]] = field(default_factory=list)  # (file, minified JSON text)
    skipped: list[tuple[Path, str]] = field(default_factory=list)  # (file, one-line reason)


def list_workflow_files(dirs: Iterable[Path | str]) -> list[Path]:
    """Workflow files (*.yml, *.yaml, *.json) under each folder, recursively, sorted within each folder."""
    files: list[Path] = []
    for d in dirs:
        d = Path(d)
        if not d.is_dir():
            raise EngineError(f"--input {d}: no such folder: pass a folder of workflow files")
        files += sorted(p for p in d.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES
                        and not any(part.startswith(".") for part in p.relative_to(d).parts))
    return files


def load_corpus(dirs: Iterable[Path | str]) -> Corpus:
    corpus = Corpus()
    for path in list_workflow_files(dirs):
        try:
            corpus.docs.append((path, file_to_json(path)))
        except EngineError as e:
            reason = str(e)
            prefix = f"{path}: "
            corpus.skipped.append((path, reason[len(prefix):] if reason.startswith(prefix) else reason))
    return corpus
