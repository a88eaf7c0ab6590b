"""Measure the tokenizer's compression on held-out (val) text: bytes and characters per token.

    python -m engine.tok_eval [--tokenizer-dir DIR] [--data-dir D] [--max-chars C] [--vocab-size N]

More bytes per token means shorter sequences for the same text. GPT-2's tokenizer is shown
for reference only when tiktoken already has its files cached: this never downloads.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
from pathlib import Path

import tiktoken

from engine.config import TrainConfig
from engine.errors import EngineError
from engine.shared import base_dir, positive_int, run_main
from engine.tokenizer import DEFAULT_MAX_CHARS, Tokenizer, cache_dir, limit_chars

# The files tiktoken fetches for "gpt2", with their sha256 (as pinned in tiktoken_ext.openai_public).
_GPT2_FILES = {
    "https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/vocab.bpe":
        "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5",
    "https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/encoder.json":
        "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783",
}


def _tiktoken_cache_dir() -> Path | None:
    """The folder tiktoken caches downloads in (same rules as tiktoken.load); None if caching is off."""
    d = os.environ.get("TIKTOKEN_CACHE_DIR", os.environ.get("DATA_GYM_CACHE_DIR"))
    if d is None:
        d = os.path.join(tempfile.gettempdir(), "data-gym-cache")
    return Path(d) if d else None


def gpt2_if_cached() -> tiktoken.Encoding | None:
    """tiktoken's GPT-2 encoding if every file it needs is cached intact, else None (no network)."""
    d = _tiktoken_cache_dir()
    if d is None:
        return None
    for url, sha256 in _GPT2_FILES.items():
        path = d / hashlib.sha1(url.encode()).hexdigest()
        if not path.is_file() or hashlib.sha256(path.read_bytes()).hexdigest() != sha256:
            return None
    return tiktoken.get_encoding("gpt2")


def measure(encode_batch, texts: list[str]) -> dict[str, float]:
    """Token count and compression of `encode_batch(texts) -> list[list[int]]` over texts."""
    tokens = sum(len(ids) for ids in encode_batch(texts))
    chars = sum(len(t) for t in texts)
    nbytes = sum(len(t.encode("utf-8")) for t in texts)
    return {"tokens": tokens, "bytes_per_token": nbytes / max(tokens, 1), "chars_per_token": chars / max(tokens, 1)}


def build_arg_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="engine.tok_eval", description="Tokenizer compression on val text.")
    p.add_argument("--tokenizer-dir", default=None,
                   help="tokenizer folder (default: engine.train's cached tokenizer for --vocab-size and the data)")
    p.add_argument("--vocab-size", type=int, default=TrainConfig.model_fields["vocab_size"].default,
                   help="picks the cached tokenizer when --tokenizer-dir is not given (default: %(default)s)")
    p.add_argument("--data-dir", default=None, help="folder of parquet shards (default: the embedded corpus)")
    p.add_argument("--max-chars", type=positive_int, default=5_000_000,
                   help="evaluate on at most this many characters of val text (default: %(default)s)")
    return p


def evaluate(args: argparse.Namespace) -> int:
    from engine.corpus import resolve_data_dir
    from engine.dataset import data_id, iter_texts

    base = base_dir()
    data_dir = resolve_data_dir(args.data_dir, base)
    tok_dir = args.tokenizer_dir or cache_dir(base, args.vocab_size, data_id(data_dir), DEFAULT_MAX_CHARS)
    if not args.tokenizer_dir and not Path(tok_dir).is_dir():
        raise EngineError(f"tokenizer cache {tok_dir}: not found: pass --tokenizer-dir or train one with "
                          f"python -m engine.tok_train --vocab-size {args.vocab_size}")
    tok = Tokenizer.from_directory(tok_dir)
    texts = list(limit_chars(iter_texts(data_dir, "val"), args.max_chars, doc_cap=args.max_chars))
    if not texts:
        raise EngineError(f"data dir {data_dir}: the val split is empty: add a val shard")

    rows = [(f"ours ({tok.fingerprint})", tok.get_vocab_size(), measure(tok.enc.encode_ordinary_batch, texts))]
    gpt2 = gpt2_if_cached()
    if gpt2 is not None:
        rows.append(("gpt2", gpt2.n_vocab, measure(gpt2.encode_ordinary_batch, texts)))

    print(f"val text: {len(texts):,} docs, {sum(map(len, texts)):,} chars from {data_dir}")
    print(f"tokenizer: {tok_dir}")
    print(f"{'tokenizer':<26} {'vocab':>8} {'tokens':>12} {'bytes/token':>12} {'chars/token':>12}")
    for name, vocab, m in rows:
        print(f"{name:<26} {vocab:>8,} {m['tokens']:>12,} {m['bytes_per_token']:>12.3f} {m['chars_per_token']:>12.3f}")
    if gpt2 is None:
        print("gpt2: skipped (its files are not in tiktoken's cache and this tool never downloads)")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_arg_parser().parse_args(argv)
    return run_main("engine.tok_eval", lambda: evaluate(args))


if __name__ == "__main__":
    sys.exit(main())
