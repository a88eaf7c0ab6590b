"""Workflow YAML → JSON text, the way GitHub reads a workflow file.

PyYAML implements YAML 1.1, where `on`, `yes`, `no`, `off` are booleans and `12:30` is a base-60
integer, so a plain `yaml.safe_load` turns the workflow's `on:` key into `True`. GitHub reads
workflows with YAML 1.2's core schema, so this loader resolves plain scalars by the 1.2 rules:
booleans are only true/false, integers are decimal, 0o octal or 0x hex, there are no timestamps.
Mapping keys keep their source text ("on" stays "on", `3.10:` stays "3.10"), key order is kept,
anchors and aliases (and `<<` merge keys) are resolved. One document per file, mapping root.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import yaml

from engine.errors import EngineError
from engine.shared import one_line

_BOOL = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
_NULL = re.compile(r"^(?:~|null|Null|NULL|)$")
_INT = re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")
_FLOAT = re.compile(
    r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
)


class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 core-schema scalar resolution and source-text mapping keys."""


# Start from no implicit resolvers at all, then add only the 1.2 core ones (plus merge keys).
_Loader.yaml_implicit_resolvers = {}
_Loader.add_implicit_resolver("tag:yaml.org,2002:bool", _BOOL, list("tTfF"))
_Loader.add_implicit_resolver("tag:yaml.org,2002:null", _NULL, ["~", "n", "N", ""])
_Loader.add_implicit_resolver("tag:yaml.org,2002:int", _INT, list("-+0123456789"))
_Loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))
_Loader.add_implicit_resolver("tag:yaml.org,2002:merge", re.compile(r"^<<$"), ["<"])


def _construct_int(loader: _Loader, node: yaml.ScalarNode) -> int:
    text = loader.construct_scalar(node)
    if text.startswith("0o"):
        return int(text[2:], 8)
    if text.startswith("0x"):
        return int(text[2:], 16)
    return int(text)


def _construct_float(loader: _Loader, node: yaml.ScalarNode) -> float:
    text = loader.construct_scalar(node)
    value = float(text.lower().replace(".inf", "inf").replace(".nan", "nan"))
    if not math.isfinite(value):
        mark = node.start_mark
        raise EngineError(f"line {mark.line + 1}: value {text!r} has no JSON form: quote it to make it a string")
    return value


def _construct_mapping(loader: _Loader, node: yaml.MappingNode, deep: bool = False) -> dict[str, Any]:
    loader.flatten_mapping(node)  # resolves `<<` merge keys into the node's own pairs
    out: dict[str, Any] = {}
    for key_node, value_node in node.value:
        if not isinstance(key_node, yaml.ScalarNode):
            mark = key_node.start_mark
            raise EngineError(f"line {mark.line + 1}: a mapping key is itself a mapping or list; JSON keys are "
                              "strings: make the key a plain scalar")
        key = key_node.value  # source text: `on` stays "on", `3.10` stays "3.10"
        out[key] = loader.construct_object(value_node, deep=True)  # a repeated key: the last value wins
    return out


_Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)
_Loader.add_constructor("tag:yaml.org,2002:float", _construct_float)
_Loader.add_constructor("tag:yaml.org,2002:map", _construct_mapping)


def _first_line(e: Exception) -> str:
    if isinstance(e, yaml.MarkedYAMLError) and e.problem_mark is not None:
        return f"line {e.problem_mark.line + 1}, column {e.problem_mark.column + 1}: {e.problem or e.context}"
    return one_line(e, type_name=False)


def load_workflow_yaml(text: str, name: str = "<yaml>") -> dict[str, Any]:
    """Parse one workflow's YAML text into a mapping; every failure is one EngineError line naming `name`."""
    try:
        docs = list(yaml.load_all(text, Loader=_Loader))  # noqa: S506 - _Loader derives from SafeLoader
    except EngineError as e:
        raise EngineError(f"{name}: {e}") from None
    except yaml.YAMLError as e:
        raise EngineError(f"{name}: not valid YAML ({_first_line(e)}): fix the syntax") from None
    except RecursionError:
        raise EngineError(f"{name}: nested too deeply to read: flatten it") from None
    if not docs:
        raise EngineError(f"{name}: holds no YAML document: a workflow is a mapping with `on:` and `jobs:`")
    if len(docs) > 1:
        raise EngineError(f"{name}: holds {len(docs)} YAML documents (separated by ---); a workflow file holds "
                          "exactly one: split it into one file per workflow")
    root = docs[0]
    if not isinstance(root, dict):
        kind = "empty" if root is None else f"a {_json_kind(root)}"
        raise EngineError(f"{name}: the document is {kind}, not a mapping: a workflow's top level is a mapping "
                          "with `on:` and `jobs:`")
    return root


def _json_kind(value: Any) -> str:
    if isinstance(value, list):
        return "list"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return "string" if isinstance(value, str) else type(value).__name__


def yaml_to_json(text: str | bytes, name: str = "<yaml>") -> str:
    """Workflow YAML (text, or UTF-8 bytes) → minified JSON text with the same keys in the same order."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as e:
            raise EngineError(f"{name}: not UTF-8 text (byte {e.start}): save it as UTF-8") from None
    if text.startswith("\ufeff"):
        text = text[1:]
    root = load_workflow_yaml(text, name)
    return json.dumps(root, ensure_ascii=False, separators=(",", ":"))


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def file_to_json(path: Path) -> str:
    """A workflow file (.yml/.yaml or .json) → minified JSON text; one EngineError line on any failure."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise EngineError(f"{path}: cannot read ({e.strerror or e}): check the path and its permissions") from None
    if path.suffix.lower() != ".json":
        return yaml_to_json(data, str(path))
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise EngineError(f"{path}: not UTF-8 text (byte {e.start}): save it as UTF-8") from None
    try:
        root = json.loads(text, parse_constant=_reject_constant)
    except (json.JSONDecodeError, RecursionError, ValueError) as e:
        raise EngineError(f"{path}: not valid JSON ({_first_line(e)}): fix the syntax") from None
    return json.dumps(root, ensure_ascii=False, separators=(",", ":"))
