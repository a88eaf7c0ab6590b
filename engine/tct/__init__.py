"""TCT: a schema-aware tokenizer for GitHub Actions workflows (torch-free; see docs/tct.md).

    encode(json_str) -> list[int]
    decode(tokens) -> (json_str, consumed, total)
    vocab_size() -> 8192
    extract_window(tokens, start, end) -> [position_token, *tokens[start:end]]

plus `yaml_to_json` (workflow YAML → JSON text, `on:` kept as "on") and `legal_next_tokens` (the
tokens a schema-constrained sampler may pick next). The default tokenizer uses the pinned workflow
schema and the merges shipped in engine/tct/data/merges.txt.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from engine.errors import EngineError
from engine.shared import one_line
from engine.tct.codec import Tokenizer
from engine.tct.schema import workflow_graph
from engine.tct.vocab import VOCAB_SIZE
from engine.tct.yamljson import file_to_json, yaml_to_json

MERGES_FILE = "merges.txt"

__all__ = ["decode", "encode", "extract_window", "file_to_json", "fingerprint", "legal_next_tokens", "load_merges",
           "parse_json", "tokenizer", "vocab_size", "yaml_to_json"]


def load_merges(text: str, name: str = MERGES_FILE) -> list[tuple[int, int]]:
    """Parse a merges file: `#` comment lines, then one merge per line as two token ids."""
    merges: list[tuple[int, int]] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 2 or not all(p.isdigit() for p in parts):
            raise EngineError(f"{name}: line {lineno}: expected two token ids, got {line[:40]!r}: "
                              "retrain it (python -m engine.tct.train_merges)")
        merges.append((int(parts[0]), int(parts[1])))
    return merges


@cache
def tokenizer() -> Tokenizer:
    """The default tokenizer (pinned schema + shipped merges), built once."""
    ref = resources.files("engine.tct").joinpath("data", MERGES_FILE)
    try:
        text = ref.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise EngineError(f"engine/tct/data/{MERGES_FILE}: missing: reinstall the package or rebuild it with "
                          "`python -m engine.tct.train_merges`") from None
    try:
        return Tokenizer(workflow_graph(), load_merges(text))
    except ValueError as e:
        raise EngineError(f"engine/tct/data/{MERGES_FILE}: {e}: rebuild it with "
                          "`python -m engine.tct.train_merges`") from None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_json(json_str: str | bytes, name: str = "json_str") -> Any:
    """json.loads with one-line EngineErrors (bytes must be UTF-8; NaN/Infinity are refused)."""
    if isinstance(json_str, bytes | bytearray):
        try:
            json_str = bytes(json_str).decode("utf-8")
        except UnicodeDecodeError as e:
            raise EngineError(f"{name}: not UTF-8 (byte {e.start}): pass UTF-8 JSON text") from None
    if not isinstance(json_str, str):
        raise EngineError(f"{name}: expected JSON text (str), got {type(json_str).__name__}")
    if not json_str.strip():
        raise EngineError(f"{name}: empty: pass a JSON document (convert YAML with yaml_to_json first)")
    try:
        return json.loads(json_str, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as e:
        raise EngineError(f"{name}: not valid JSON ({one_line(e, type_name=False)}): pass a JSON document "
                          "(convert YAML with yaml_to_json first)") from None


def encode(json_str: str | bytes) -> list[int]:
    """Tokens of one JSON document (a workflow, or any JSON: what the schema does not fit is escaped)."""
    value = parse_json(json_str)
    try:
        return tokenizer().encode_value(value)
    except RecursionError:
        raise EngineError("json_str: nested too deeply to encode: flatten it") from None


def decode(tokens: list[int]) -> tuple[str, int, int]:
    """(JSON text, tokens consumed, total tokens). A truncated or invalid list decodes as far as it can;
    `consumed` is where the last complete value ended (the rest is left out of the JSON)."""
    return tokenizer().decode([int(t) for t in tokens])


def fingerprint() -> str:
    """Changes when token ids would: the schema's property names (the key tokens) and the merges."""
    import hashlib

    tok = tokenizer()
    h = hashlib.sha256(b"tct\0")
    h.update(repr(tok.vocab.property_names).encode())
    h.update(repr(tok.merges).encode())
    return "tct-" + h.hexdigest()[:12]


def vocab_size() -> int:
    """All token kinds together: bytes, merges, and the structural tokens."""
    return VOCAB_SIZE


def extract_window(tokens: list[int], start: int, end: int) -> list[int]:
    """[position token for `start`, *tokens[start:end]]: a training window that knows where it starts."""
    if start < 0 or end < start:
        raise EngineError(f"window [{start}, {end}): needs 0 <= start <= end")
    return [tokenizer().vocab.position_token(start), *tokens[start:end]]


def legal_next_tokens(prefix_tokens: list[int], allow_escape: bool = False) -> list[int]:
    """The tokens that may follow `prefix_tokens` (a document prefix, no position token), sorted.
    Empty when the document is complete. See `codec.Machine.legal` for what is and is not checked."""
    return tokenizer().legal_next_tokens([int(t) for t in prefix_tokens], allow_escape)
