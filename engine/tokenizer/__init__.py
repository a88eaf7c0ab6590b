"""The engine's tokenizer: `Tokenizer` (bpe.py) and `ensure_tokenizer`, which gives a training run
its tokenizer: the one the user named, else one trained once on the run's data and cached.

The cache lives at `<base>/tokenizer/<key>/`, the key naming everything the result depends on
(vocab size, data id, character budget, split pattern and specials), so a change in any of
them trains a new tokenizer instead of silently reusing a stale one.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

from engine.errors import EngineError
from engine.tokenizer.bpe import SPECIAL_TOKENS, SPLIT_PATTERN, TOKENIZER_FILE, Tokenizer, limit_chars

__all__ = ["Tokenizer", "SPECIAL_TOKENS", "SPLIT_PATTERN", "DEFAULT_MAX_CHARS", "limit_chars", "cache_dir",
           "ensure_tokenizer"]

# Training reads at most this many characters. rustbpe on 2 CPU cores learns 8k-32k tokens from
# 100M characters of Python source in 6-8 s; compression gains past ~25M chars are under 1%.
DEFAULT_MAX_CHARS = 100_000_000


def cache_dir(base: Path, vocab_size: int, data_id: str, max_chars: int = DEFAULT_MAX_CHARS) -> Path:
    """Where `ensure_tokenizer` caches the tokenizer for these inputs."""
    recipe = "\0".join([data_id, str(max_chars), SPLIT_PATTERN, *SPECIAL_TOKENS])
    digest = hashlib.sha256(recipe.encode()).hexdigest()[:12]
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(data_id).name or data_id)[:32]
    return Path(base) / "tokenizer" / f"v{vocab_size}-{name}-{digest}"


def ensure_tokenizer(tokenizer_dir: str | None, base: Path, vocab_size: int,
                     text_iter_factory: Callable[[], Iterator[str]], data_id: str,
                     max_chars: int = DEFAULT_MAX_CHARS, log: Callable[[str], None] | None = None) -> Tokenizer:
    """Load `tokenizer_dir` if given; else load the cached tokenizer for (vocab_size, data_id,
    max_chars), training and caching it first if there is none. `data_id` must change whenever the
    text changes (e.g. the resolved data dir path). Concurrent callers (DDP ranks) may all train,
    but the first to finish publishes the dir and everyone loads that one."""
    if tokenizer_dir:
        return Tokenizer.from_directory(tokenizer_dir)
    if max_chars < 1:
        raise EngineError(f"tokenizer max_chars={max_chars}: must be positive: raise it")
    target = cache_dir(base, vocab_size, data_id, max_chars)
    if (target / TOKENIZER_FILE).is_file():
        return Tokenizer.from_directory(target)

    if log:
        log(f"training a {vocab_size}-token tokenizer on up to {max_chars:,} chars of {data_id}")
    tok = Tokenizer.train_from_iterator(limit_chars(text_iter_factory(), max_chars), vocab_size)
    # Save into a private dir, then publish it with one rename: the cache is never half-written.
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tok.save(tmp)
    try:
        os.rename(tmp, target)
    except OSError:  # another process published first (or a stale empty dir is in the way)
        shutil.rmtree(tmp, ignore_errors=True)
        if not (target / TOKENIZER_FILE).is_file():
            raise EngineError(f"tokenizer cache {target}: exists but holds no {TOKENIZER_FILE}: delete it") from None
    if log:
        log(f"tokenizer saved to {target}")
    return Tokenizer.from_directory(target)
