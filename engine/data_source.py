"""Pluggable training data: `data_source = "package.module:factory"` in place of parquet text and the BPE.

The engine names no data source of its own here; the config names a module and a callable, imported with
importlib, so a plugin (or any installed package) can feed the GPT its own token stream, e.g. masked
prompt -> answer pairs. The factory is called once per rank (rank 0 first, so it may build caches):

    factory(options: str | None, base_dir: Path, seed: int) -> DataSource

`options` is the config's `data_source_options`, passed through as is (the source defines its meaning:
a path, key=value pairs ...). A DataSource has:

    tokenizer        get_vocab_size(), get_bos_token_id(), token_bytes() (a [vocab] tensor of byte lengths,
                     0 for tokens bpb must skip), fingerprint (equal means equal ids), directory (a folder a
                     checkpoint can name to reload it)
    description      what the checkpoint meta records as data_dir
    loader(split, B, T, rank, world_size, device, state=None)
                     an iterator of (inputs [B,T], targets [B,T], state dict) like engine.dataloader's: targets
                     of -1 are not learned; `state` (JSON-serialisable) resumes it exactly
    sample(model, step, emit)   (optional) rank 0's periodic samples: emit(event, **fields) writes telemetry
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from engine.errors import EngineError


@runtime_checkable
class DataSource(Protocol):
    tokenizer: Any
    description: str

    def loader(self, split: str, B: int, T: int, rank: int, world_size: int, device: Any,
               state: dict | None = None) -> Any: ...


def load_data_source(spec: str, options: str | None, base_dir: Path, seed: int) -> DataSource:
    """Import `module:callable` and build the source; every failure is one EngineError line."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise EngineError(f"data_source: {spec!r} is not module:callable: write e.g. mypkg.data:make_source")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise EngineError(f"data_source: cannot import {module_name} ({e}): install the package that provides "
                          "it, or clear data_source") from None
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise EngineError(f"data_source: {module_name} has no callable {attr!r}: check the name after the colon")
    source = factory(options, base_dir, seed)
    missing = [name for name in ("tokenizer", "description", "loader") if not hasattr(source, name)]
    if missing:
        raise EngineError(f"data_source: {spec} returned a {type(source).__name__} without {', '.join(missing)}: "
                          "see engine/data_source.py for what a source provides")
    return source
