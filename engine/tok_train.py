"""Train the BPE tokenizer on a dataset's training split and save it.

    python -m engine.tok_train --vocab-size 8192 [--max-chars C] [--data-dir D] [--out DIR]

Without --out it writes to the cache folder that `engine.train` looks in for the same data,
vocab size and character budget, so a later training run picks it up instead of training one.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from engine.config import TrainConfig
from engine.shared import base_dir, positive_int, run_main
from engine.tokenizer import DEFAULT_MAX_CHARS, Tokenizer, cache_dir, limit_chars


class _CharCounter:
    """Passes texts through while counting their characters (rustbpe consumes the iterator)."""

    def __init__(self, texts: Iterable[str]):
        self.texts, self.chars, self.docs = texts, 0, 0

    def __iter__(self) -> Iterator[str]:
        for text in self.texts:
            self.chars += len(text)
            self.docs += 1
            yield text


def build_arg_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="engine.tok_train", description="Train the BPE tokenizer.")
    p.add_argument("--vocab-size", type=int, default=TrainConfig.model_fields["vocab_size"].default,
                   help="total vocabulary size, special tokens included (default: %(default)s)")
    p.add_argument("--max-chars", type=positive_int, default=DEFAULT_MAX_CHARS,
                   help="train on at most this many characters (default: %(default)s)")
    p.add_argument("--data-dir", default=None, help="folder of parquet shards (default: the embedded corpus)")
    p.add_argument("--out", default=None, help="output folder (default: engine.train's tokenizer cache)")
    return p


def train(args: argparse.Namespace) -> int:
    from engine.corpus import resolve_data_dir
    from engine.dataset import data_id, iter_texts

    base = base_dir()
    data_dir = resolve_data_dir(args.data_dir, base)
    out = Path(args.out) if args.out else cache_dir(base, args.vocab_size, data_id(data_dir), args.max_chars)
    texts = _CharCounter(limit_chars(iter_texts(data_dir, "train"), args.max_chars))
    t0 = time.perf_counter()
    tok = Tokenizer.train_from_iterator(texts, args.vocab_size)
    seconds = time.perf_counter() - t0
    tok.save(out)
    print(f"trained a {tok.get_vocab_size():,}-token tokenizer on {texts.chars:,} chars ({texts.docs:,} docs) "
          f"of {data_dir} in {seconds:.1f} s")
    print(f"fingerprint {tok.fingerprint}")
    print(f"saved to {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_arg_parser().parse_args(argv)
    return run_main("engine.tok_train", lambda: train(args))


if __name__ == "__main__":
    sys.exit(main())
