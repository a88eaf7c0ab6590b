"""Train TCT's BPE merges and write them as package data.

    python -m engine.tct.train_merges --input ../shared/data/workflows-real --input ../shared/data/workflows-starter

Each workflow is walked against the schema into its atom stream (free-string bytes with END, and the
structural tokens); the merges are greedy BPE over those streams (see bpe.py), so they cover both the
strings the schema leaves free and the structural runs that repeat. The schema's own descriptions join
the training text (see `schema_text_streams`). Training is deterministic: the same
files give the same merges. The output starts with `#` lines recording how it was made (the command,
file counts, a digest of the files' contents).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any

from engine.errors import EngineError
from engine.shared import atomic_write, run_main
from engine.tct import bpe
from engine.tct.corpus import Corpus, load_corpus
from engine.tct.schema import workflow_graph, workflow_schema
from engine.tct.vocab import Vocab
from engine.tct.walk import Walker

DEFAULT_OUTPUT = Path(__file__).resolve().parent / "data" / "merges.txt"


def atom_streams(docs: list[Any]) -> list[list[int]]:
    """The atom stream of each parsed document (what the merges are trained on)."""
    walker = Walker(workflow_graph(), Vocab(tuple(workflow_graph().property_names)))
    return [walker.atoms(doc) for doc in docs]


def schema_text_streams() -> list[list[int]]:
    """The schema's own prose (`description`, `$comment`), each text as a string's atoms (bytes + END).

    Always at hand and about exactly this domain (event names, keys, actions vocabulary), it gives the
    string merges some English to generalize from when the workflow corpus is small."""
    texts: list[str] = []

    def walk(x: Any) -> None:
        if isinstance(x, dict):
            for k, v in x.items():
                if k in ("description", "$comment") and isinstance(v, str):
                    texts.append(v)
                else:
                    walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)

    walk(workflow_schema())
    return [[*t.encode("utf-8"), bpe.END] for t in texts]


def train_on(corpus: Corpus, n_merges: int | None = None) -> list[tuple[int, int]]:
    """Merges trained on a corpus's documents (plus the schema's prose); all that fit unless `n_merges`."""
    room = Vocab(tuple(workflow_graph().property_names)).n_merges
    limit = room if n_merges is None else n_merges
    if not 0 <= limit <= room:
        raise EngineError(f"--merges {n_merges}: must be between 0 and {room}")
    streams = atom_streams([json.loads(text) for _, text in corpus.docs]) + schema_text_streams()
    return bpe.train(streams, limit)


def corpus_digest(corpus: Corpus) -> str:
    h = hashlib.sha256()
    for path, text in corpus.docs:
        h.update(path.name.encode() + b"\0" + hashlib.sha256(text.encode()).digest())
    return h.hexdigest()


def write_merges(path: Path, merges: list[tuple[int, int]], header: list[str]) -> None:
    body = "".join(f"# {line}\n" for line in header) + "".join(f"{a} {b}\n" for a, b in merges)
    atomic_write(path, body)


def build_arg_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="engine.tct.train_merges", description=__doc__.split("\n\n")[0])
    p.add_argument("--input", action="append", required=True, metavar="DIR",
                   help="folder of workflow files (*.yml, *.yaml, *.json); repeat for several")
    p.add_argument("--output", default=str(DEFAULT_OUTPUT), help="merges file to write (default: the package's)")
    p.add_argument("--merges", type=int, default=None, help="how many merges (default: all that fit)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_arg_parser().parse_args(argv)

    def body() -> int:
        t0 = time.perf_counter()
        corpus = load_corpus(args.input)
        if not corpus.docs:
            raise EngineError(f"--input {' '.join(args.input)}: no usable workflow files: point it at workflows")
        merges = train_on(corpus, args.merges)
        header = [
            "TCT BPE merges over schema-walk atom streams: one per line, `a b` -> token 256 + line index",
            "made by: python -m engine.tct.train_merges " + " ".join(f"--input {d}" for d in args.input)
            + (f" --merges {args.merges}" if args.merges is not None else ""),
            f"files: {len(corpus.docs)} used, {len(corpus.skipped)} skipped; content sha256 {corpus_digest(corpus)}",
            f"merges: {len(merges)}",
        ]
        write_merges(Path(args.output), merges, header)
        for path, reason in corpus.skipped:
            print(f"skipped {path}: {reason}")
        print(f"trained {len(merges)} merges on {len(corpus.docs)} workflows in {time.perf_counter() - t0:.1f} s; "
              f"wrote {args.output}")
        return 0

    return run_main("engine.tct.train_merges", body)


if __name__ == "__main__":
    sys.exit(main())
