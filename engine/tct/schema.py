"""The workflow JSON Schema, compiled into the graph of "shapes" the tokenizer walks.

A compiled `Node` says, for each JSON kind (object, array, string, number, boolean, null), whether a
value of that kind is allowed there and, for containers and strings, what it looks like. Every node
holds at most one shape per kind: the `oneOf`/`anyOf` branches of the schema are distributed over
their siblings and `$ref`s, then branches of the same kind are merged (properties united, enum lists
concatenated, a string shape stays open if any branch is open). So the branch a value takes is its
kind, which the value's first token already tells the decoder; only where two kinds could start with
the same token does the encoder spend one marker token (`OBJ_START` / `ARR_START` / `STR_START`).

Validation-only keywords (`minItems`, `not`, `dependencies`, ...) do not shape the token stream;
`required` and `pattern`/`patternProperties` are kept for the decoder's strict mode (constrained
decoding). Draft-07 ignores keywords beside `$ref`; both readings are united (see `_expand`). The shapes
are therefore a little looser than the schema, never tighter: every schema-valid document has an
encoding that uses no escape.

The schema file is a pinned copy of the one `check-jsonschema` vendors (see data/PROVENANCE.md):
token ids are derived from it, so it must not change under an installed model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

import regex

from engine.errors import EngineError
from engine.tct.ecma import compiled

SCHEMA_FILE = "github-workflows.json"
_UNION_KEYS = ("oneOf", "anyOf")
_ANNOTATIONS = frozenset(("$comment", "description", "default", "examples", "title", "markdownDescription"))
_MAX_NODES = 20_000  # a runaway expansion (a schema change gone wrong) fails loudly instead of eating memory

# A schema expression: OR over conjunctions (AND) of raw sub-schemas (dicts or booleans).
Conj = tuple[Any, ...]
Dnf = tuple[Conj, ...]


@dataclass(eq=False)
class StrShape:
    values: tuple[str, ...]  # known values, each one token (their index); empty for a free string
    open: bool  # True: any other string is allowed (goes to the byte-level sub-vocabulary)
    patterns: tuple[str, ...] = ()  # an open string must match one of these; () = unrestricted
    index: dict[str, int] = field(default_factory=dict)
    compiled: tuple[regex.Pattern[str], ...] = ()

    def __post_init__(self) -> None:
        self.index = {v: i for i, v in enumerate(self.values)}
        self.compiled = tuple(compiled(p) for p in self.patterns)


@dataclass(eq=False)
class ObjShape:
    props: dict[str, Node]  # known property names (one token each), in schema order
    patterns: list[tuple[regex.Pattern[str], Node]]  # patternProperties, first match wins (`regex`: it can
    # tell whether a prefix can still match, which constrained decoding uses)
    additional: Node | None  # schema of other keys; None: closed (other keys are escapes)
    required: tuple[str, ...] = ()  # kept for constrained decoding; not used by the codec
    wanted: tuple[str, ...] = ()  # keys some branch requires (a oneOf's `runs-on` / `uses`): completion tries them

    def value_node(self, key: str) -> Node | None:
        """Node of a key that is not a known property: a matching pattern, else additionalProperties."""
        for pattern, node in self.patterns:
            if pattern.search(key):
                return node
        return self.additional


@dataclass(eq=False)
class ArrShape:
    items: Node


@dataclass(eq=False)
class Node:
    ident: int
    obj: ObjShape | None = None
    arr: ArrShape | None = None
    str: StrShape | None = None
    num: bool = False
    bool: bool = False
    null: bool = False

    @property
    def kinds(self) -> int:
        return sum((self.obj is not None, self.arr is not None, self.str is not None, self.num, self.bool,
                    self.null))

    @property
    def obj_marker(self) -> bool:
        """An object here starts with OBJ_START: a free key and a free string would both start with bytes.

        Where both are allowed, the branch the schema restricts more pays the marker: if the free string
        must match a pattern (an `${{ expression }}` in place of a mapping, as for `env:` and `with:`), the
        string gets STR_START instead (`str_marker`) and the common object form costs nothing."""
        return self.obj is not None and self.str is not None and self.str.open and not self.str.patterns

    @property
    def str_marker(self) -> bool:
        return self.obj is not None and self.str is not None and self.str.open and bool(self.str.patterns)

    @property
    def arr_marker(self) -> bool:
        """An array here starts with ARR_START unless arrays are the only kind (items may start with anything)."""
        return self.arr is not None and self.kinds > 1


@dataclass
class _Partial:
    """The shapes of one conjunction (or a union of them) before child expressions are compiled."""

    kinds: set[str]
    str_values: list[str] = field(default_factory=list)
    str_open: bool = True
    str_patterns: list[str] = field(default_factory=list)  # an open string must match one; [] = any
    props: dict[str, list[Conj]] = field(default_factory=dict)  # name -> DNF
    patterns: list[tuple[str, list[Conj]]] = field(default_factory=list)
    additional: list[Conj] | None = None  # DNF; None: closed
    items: list[Conj] = field(default_factory=lambda: [(True,)])
    required: list[str] = field(default_factory=list)
    wanted: list[str] = field(default_factory=list)  # required by at least one branch


_ALL_KINDS = ("object", "array", "string", "number", "boolean", "null")


def _kind_of(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if value is None:
        return "null"
    if isinstance(value, int | float):
        return "number"
    return {str: "string", list: "array", dict: "object"}[type(value)]


class SchemaGraph:
    """Compiles a JSON Schema (draft-07 subset used by the workflow schema) into `Node`s."""

    def __init__(self, schema: dict[str, Any]):
        self.root_schema = schema
        self._memo: dict[tuple[tuple[int, ...], ...], Node] = {}
        self._nodes: list[Node] = []
        self.any = self.compile(((True,),))
        self.root = self.compile(((schema,),))
        self.property_names = sorted(self._collect_property_names(schema))
        self.max_enum = max((len(n.str.values) for n in self._nodes if n.str), default=0)

    @property
    def nodes(self) -> list[Node]:
        return self._nodes

    # ---------------------------------------------------------------- references and expansion

    def _resolve(self, ref: str) -> Any:
        if not ref.startswith("#/"):
            raise EngineError(f"schema: $ref {ref!r} is not local: only '#/...' references are supported")
        target: Any = self.root_schema
        for part in ref[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            if not isinstance(target, dict) or part not in target:
                raise EngineError(f"schema: $ref {ref!r} points nowhere: fix the schema file")
            target = target[part]
        return target

    def _expand(self, conj: Conj, depth: int = 0) -> list[list[dict[str, Any]]]:
        """A conjunction → OR of conjunctions of atomic dicts (no $ref/allOf/oneOf/anyOf left)."""
        if depth > 50:
            raise EngineError("schema: $ref/allOf/oneOf nest more than 50 deep: the schema has a cycle")
        atoms: list[dict[str, Any]] = []
        pending = list(conj)
        while pending:
            s = pending.pop(0)
            if s is True:
                continue
            if s is False:
                return []
            if "$ref" in s:
                target = self._resolve(s["$ref"])
                siblings = {k: v for k, v in s.items() if k != "$ref" and k not in _ANNOTATIONS}
                if siblings:
                    # Draft-07 ignores keywords beside $ref, so a validator accepts whatever the target
                    # accepts; the schema's authors meant the siblings to narrow it (e.g. enum lists for
                    # event types). Both, united: the target's values never need an escape, and the
                    # narrower branch contributes its enum values as one-token known values.
                    rest = tuple(pending) + tuple(atoms)
                    return self._expand(rest + (target,), depth + 1) + self._expand(rest + (target, siblings),
                                                                                   depth + 1)
                pending.append(target)
            pending.extend(s.get("allOf", ()))
            for key in _UNION_KEYS:
                if key in s:
                    # $ref and allOf are already in `pending`; the other union key (if any) expands in the recursion
                    stripped = {k: v for k, v in s.items() if k not in (key, "$ref", "allOf")}
                    rest = tuple(pending) + tuple(atoms) + (stripped,)
                    out: list[list[dict[str, Any]]] = []
                    for branch in s[key]:
                        out += self._expand(rest + (branch,), depth + 1)
                    return out
            atoms.append({k: v for k, v in s.items() if k not in ("$ref", "allOf")} if "$ref" in s or "allOf" in s
                         else s)
        return [atoms]

    # ---------------------------------------------------------------- intersection and union

    def _intersect(self, atoms: list[dict[str, Any]]) -> _Partial | None:
        kinds = set(_ALL_KINDS)
        str_values: list[str] | None = None
        str_patterns: list[str] = []
        for a in atoms:
            if "type" in a:
                types = a["type"] if isinstance(a["type"], list) else [a["type"]]
                kinds &= {"number" if t == "integer" else t for t in types}
            values = a["enum"] if "enum" in a else [a["const"]] if "const" in a else None
            if values is not None:
                kinds &= {_kind_of(v) for v in values}
                strs = [v for v in values if isinstance(v, str)]
                str_values = strs if str_values is None else [v for v in str_values if v in strs]
            if "pattern" in a and a.get("type") == "string":
                str_patterns.append(a["pattern"])
        if not kinds:
            return None
        part = _Partial(kinds=kinds, str_values=str_values or [], str_open=str_values is None,
                        str_patterns=str_patterns[:1])  # an AND of patterns: keep the first (a hint, not a check)
        obj_atoms = [a for a in atoms if any(k in a for k in ("properties", "patternProperties",
                                                               "additionalProperties", "required"))]
        names: list[str] = []
        for a in obj_atoms:
            names += [n for n in a.get("properties", {}) if n not in names]
            part.required += [n for n in a.get("required", ()) if n not in part.required]
        part.wanted = list(part.required)
        for name in names:
            conj: list[Any] = []
            allowed = True
            for a in obj_atoms:
                sub = self._atom_key_schema(a, name)
                if sub is False:
                    allowed = False
                    break
                conj.append(sub)
            if allowed:
                part.props[name] = [tuple(conj)]
        for a in obj_atoms:
            for pat, sub in a.get("patternProperties", {}).items():
                part.patterns.append((pat, [(sub,)]))
        additional = tuple(a.get("additionalProperties", True) for a in obj_atoms)
        part.additional = None if False in additional else [additional or (True,)]
        items = tuple(a["items"] for a in atoms if "items" in a)
        if any(isinstance(i, list) for i in items):
            raise EngineError("schema: tuple-form `items` is not supported: use a single items schema")
        part.items = [items or (True,)]
        return part

    @staticmethod
    def _atom_key_schema(atom: dict[str, Any], name: str) -> Any:
        if name in atom.get("properties", {}):
            return atom["properties"][name]
        for pat, sub in atom.get("patternProperties", {}).items():
            if compiled(pat).search(name):
                return sub
        return atom.get("additionalProperties", True)

    @staticmethod
    def _union(parts: list[_Partial]) -> _Partial:
        out = _Partial(kinds=set())
        str_parts = [p for p in parts if "string" in p.kinds]
        for p in str_parts:
            out.str_values += [v for v in p.str_values if v not in out.str_values]
        open_strs = [p for p in str_parts if p.str_open]
        out.str_open = bool(open_strs)
        if open_strs and all(p.str_patterns for p in open_strs):
            out.str_patterns = [q for p in open_strs for q in p.str_patterns]
        obj_parts = [p for p in parts if "object" in p.kinds]
        names: list[str] = []
        for p in obj_parts:
            names += [n for n in p.props if n not in names]
        for name in names:
            dnf: list[Conj] = []
            for p in obj_parts:
                dnf += p.props[name] if name in p.props else _partial_key_dnf(p, name)
            out.props[name] = dnf
        for p in obj_parts:
            for pat, dnf in p.patterns:  # one entry per regex, its schemas united
                same = next((d for q, d in out.patterns if q == pat), None)
                if same is None:
                    out.patterns.append((pat, list(dnf)))
                else:
                    same += dnf
        open_parts = [p for p in obj_parts if p.additional is not None]
        out.additional = [c for p in open_parts for c in p.additional or ()] if open_parts else None
        if obj_parts:
            out.required = [n for n in obj_parts[0].required if all(n in p.required for p in obj_parts)]
            out.wanted = list(dict.fromkeys(n for p in obj_parts for n in p.wanted))
        out.items = [c for p in parts if "array" in p.kinds for c in p.items] or [(True,)]
        for p in parts:
            out.kinds |= p.kinds
        return out

    # ---------------------------------------------------------------- compilation

    @staticmethod
    def _key(dnf: Dnf) -> tuple[tuple[int, ...], ...]:
        return tuple(tuple(id(s) if isinstance(s, dict) else int(s) for s in conj) for conj in dnf)

    def compile(self, dnf: Dnf) -> Node:
        key = self._key(dnf)
        node = self._memo.get(key)
        if node is not None:
            return node
        node = Node(ident=len(self._nodes))
        if len(self._nodes) >= _MAX_NODES:
            raise EngineError(f"schema: compiles to more than {_MAX_NODES} nodes: the schema expands without end")
        self._memo[key] = node
        self._nodes.append(node)
        parts = [p for conj in dnf for atoms in self._expand(conj) if (p := self._intersect(atoms)) is not None]
        if not parts:
            raise EngineError(f"schema: a sub-schema allows no value at all (node {node.ident}): fix the schema")
        merged = self._union(parts)
        if "object" in merged.kinds:
            node.obj = ObjShape(
                props={n: self.compile(_dedupe(d)) for n, d in merged.props.items()},
                patterns=[(compiled(p), self.compile(_dedupe(d))) for p, d in merged.patterns],
                additional=None if merged.additional is None else self.compile(_dedupe(merged.additional)),
                required=tuple(merged.required),
                wanted=tuple(merged.wanted),
            )
        if "array" in merged.kinds:
            node.arr = ArrShape(items=self.compile(_dedupe(merged.items)))
        if "string" in merged.kinds:
            node.str = StrShape(values=tuple(merged.str_values), open=merged.str_open,
                                patterns=tuple(dict.fromkeys(merged.str_patterns)))
        node.num = "number" in merged.kinds
        node.bool = "boolean" in merged.kinds
        node.null = "null" in merged.kinds
        return node

    @staticmethod
    def _collect_property_names(schema: Any) -> set[str]:
        names: set[str] = set()

        def walk(x: Any) -> None:
            if isinstance(x, dict):
                for k, v in x.items():
                    if k in ("properties", "patternProperties", "definitions"):
                        if k == "properties":
                            names.update(v)
                        for sub in v.values():
                            walk(sub)
                    elif k not in ("enum", "const", "default", "examples", "required"):
                        walk(v)
            elif isinstance(x, list):
                for v in x:
                    walk(v)

        walk(schema)
        return names


def _partial_key_dnf(part: _Partial, name: str) -> list[Conj]:
    """What a union branch allows under a key it does not list: its patterns, else additionalProperties."""
    for pat, dnf in part.patterns:
        if compiled(pat).search(name):
            return dnf
    return part.additional or []


def _dedupe(dnf: list[Conj]) -> Dnf:
    """Drop repeated conjunctions and the no-op `true`s inside them (so equal expressions share a node)."""
    out: list[Conj] = []
    seen: set[tuple[int, ...]] = set()
    for conj in dnf:
        conj = tuple(s for s in conj if s is not True) or (True,)
        k = tuple(id(s) if isinstance(s, dict) else int(s) for s in conj)
        if k not in seen:
            seen.add(k)
            out.append(conj)
    return tuple(out)


@cache
def workflow_schema() -> dict[str, Any]:
    """The pinned GitHub workflow schema (package data)."""
    text = resources.files("engine.tct").joinpath("data", SCHEMA_FILE).read_text(encoding="utf-8")
    return json.loads(text)


@cache
def workflow_graph() -> SchemaGraph:
    return SchemaGraph(workflow_schema())
