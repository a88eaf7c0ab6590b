"""What a shader declares, read from its lexer tokens: resource bindings, structs, constants, entry points,
and the memory layout of each binding's type (WGSL's alignment rules), so it can be given buffers and run.

This is not a WGSL front end: naga validates (validate.py). It reads declarations of the usual shapes,
`@group(G) @binding(B) var<storage, read> name: T;`, `struct S { a: T, ... }`, `const N: u32 = 64u;` and
`@compute @workgroup_size(X, Y, Z) fn main(...)`, and says in one line what it cannot read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from nanochat_plugins.wgsl import lexer
from nanochat_plugins.wgsl.errors import WgslError

_SCALARS = {"f32": np.float32, "i32": np.int32, "u32": np.uint32}
_SHORT = {"f": "f32", "i": "i32", "u": "u32"}
_OPEN, _CLOSE = frozenset("([{"), frozenset(")]}")


@dataclass(frozen=True)
class WgslType:
    """A host-shareable type: kind is scalar, vector, matrix, array, atomic or struct."""

    kind: str
    text: str
    align: int
    size: int  # for a runtime-sized array: the stride (size of one element, padded)
    scalar: str = ""  # leaf scalar type (f32, i32, u32) for scalar, vector, matrix, atomic
    count: int | None = None  # vector width, matrix columns, array length (None = runtime-sized)
    rows: int = 0  # matrix rows
    element: WgslType | None = None  # array element
    members: tuple[tuple[str, WgslType, int], ...] = ()  # struct: (name, type, offset)

    @property
    def runtime_sized(self) -> bool:
        return self.kind == "array" and self.count is None

    @property
    def stride(self) -> int:
        """An array's element stride."""
        assert self.element is not None
        return _round_up(self.element.align, self.element.size)

    def leaves(self) -> list[tuple[int, str, str]]:
        """(byte offset, scalar type, path) of every scalar in one value of this type (a runtime array: one
        element's worth, at offset 0)."""
        if self.kind in ("scalar", "atomic"):
            return [(0, self.scalar, "")]
        if self.kind == "vector":
            return [(4 * i, self.scalar, f".{'xyzw'[i]}") for i in range(self.count or 0)]
        if self.kind == "matrix":
            col = _round_up(_vec_align(self.rows), 4 * self.rows)
            return [(c * col + 4 * r, self.scalar, f"[{c}][{r}]") for c in range(self.count or 0)
                    for r in range(self.rows)]
        if self.kind == "array":
            assert self.element is not None
            inner = self.element.leaves()
            n = 1 if self.count is None else self.count
            return [(i * self.stride + off, s, f"[{i}]{p}") for i in range(n) for off, s, p in inner]
        out = []
        for name, t, off in self.members:
            out += [(off + o, s, f".{name}{p}") for o, s, p in t.leaves()]
        return out


def _round_up(align: int, n: int) -> int:
    return -(-n // align) * align


def _vec_align(n: int) -> int:
    return 8 if n == 2 else 16


@dataclass(frozen=True)
class Binding:
    group: int
    binding: int
    name: str
    space: str  # storage, uniform (others are not buffers: not listed)
    access: str  # read, read_write (uniform: read)
    type: WgslType
    line: int  # where it is declared (1-based)

    @property
    def writable(self) -> bool:
        return self.space == "storage" and self.access == "read_write"


@dataclass(frozen=True)
class EntryPoint:
    name: str
    stage: str  # compute, vertex, fragment
    workgroup_size: tuple[int, int, int]


@dataclass
class Reflection:
    bindings: list[Binding] = field(default_factory=list)
    entry_points: list[EntryPoint] = field(default_factory=list)
    structs: dict[str, WgslType] = field(default_factory=dict)
    consts: dict[str, int | float] = field(default_factory=dict)

    def compute_entry(self, name: str | None = None) -> EntryPoint:
        eps = [e for e in self.entry_points if e.stage == "compute" and (name is None or e.name == name)]
        if not eps:
            what = f"no @compute entry point named {name!r}" if name else "no @compute entry point"
            raise WgslError(f"shader: {what}: declare one, e.g. @compute @workgroup_size(64) fn main(...)")
        if len(eps) > 1:
            raise WgslError(f"shader: {len(eps)} @compute entry points ({', '.join(e.name for e in eps)}): "
                            f"name the one to run (--entry)")
        return eps[0]


def _line_of(src: str, offset: int) -> int:
    return src.count("\n", 0, offset) + 1


def _number(text: str) -> int | float:
    t = text.lower().rstrip("iu")
    if t.startswith("0x") and not any(c in t for c in ".p"):
        return int(t, 16)
    if re.fullmatch(r"\d+", t):
        return int(t)
    return float(t.rstrip("fh"))


def parse_type(text: str, structs: dict[str, WgslType], consts: dict[str, int | float]) -> WgslType:
    """The layout of a type written as text (whitespace ignored): f32, vec4<f32>, vec4f, mat4x4<f32>,
    array<vec4<f32>>, array<f32, 64>, atomic<u32>, or a struct declared in the shader."""
    t = "".join(text.split())
    if t in _SCALARS:
        return WgslType("scalar", t, 4, 4, scalar=t)
    if m := re.fullmatch(r"vec([234])(?:<(f32|i32|u32)>|([fiu]))", t):
        n, s = int(m.group(1)), m.group(2) or _SHORT[m.group(3)]
        return WgslType("vector", t, _vec_align(n), 4 * n, scalar=s, count=n)
    if m := re.fullmatch(r"mat([234])x([234])(?:<f32>|f)", t):
        c, r = int(m.group(1)), int(m.group(2))
        return WgslType("matrix", t, _vec_align(r), c * _round_up(_vec_align(r), 4 * r), scalar="f32", count=c,
                        rows=r)
    if m := re.fullmatch(r"atomic<(u32|i32)>", t):
        return WgslType("atomic", t, 4, 4, scalar=m.group(1))
    if t.startswith("array<") and t.endswith(">"):
        inner = t[len("array<"):-1]
        depth, cut = 0, -1
        for i, ch in enumerate(inner):  # the element type ends at the top-level comma
            depth += ch == "<"
            depth -= ch == ">"
            if ch == "," and depth == 0:
                cut = i
        elem_text, count_text = (inner, "") if cut < 0 else (inner[:cut], inner[cut + 1:].rstrip(","))
        elem = parse_type(elem_text, structs, consts)
        count: int | None = None
        if count_text:
            value = consts.get(count_text, None)
            if value is None:
                try:
                    value = _number(count_text)
                except ValueError:
                    raise WgslError(f"type {text}: array length {count_text!r} is not a number or a const this "
                                    f"reader understands: use a literal or `const N: u32 = ...;`") from None
            if not isinstance(value, int) or value < 1:
                raise WgslError(f"type {text}: array length must be a positive integer")
            count = value
        stride = _round_up(elem.align, elem.size)
        return WgslType("array", t, elem.align, stride if count is None else stride * count, count=count,
                        element=elem)
    if t in structs:
        return structs[t]
    raise WgslError(f"type {text}: not a buffer type this reader understands: use f32/i32/u32, vecN, matCxR<f32>, "
                    f"atomic, arrays of them, or a struct of them")


def _struct(name: str, members: list[tuple[str, WgslType]]) -> WgslType:
    if not members:
        raise WgslError(f"struct {name}: no members")
    offset, out = 0, []
    for mname, mtype in members:
        if mtype.runtime_sized and len(out) != len(members) - 1:
            raise WgslError(f"struct {name}: runtime-sized member {mname} must be last")
        offset = _round_up(mtype.align, offset)
        out.append((mname, mtype, offset))
        offset += mtype.size
    align = max(m.align for _, m in members)
    return WgslType("struct", name, align, _round_up(align, offset), members=tuple(out))


def _split_top(tokens: list[lexer.Token], sep: str) -> list[list[lexer.Token]]:
    parts: list[list[lexer.Token]] = [[]]
    depth = 0
    for t in tokens:
        if t.kind == lexer.TEMPLATE_START or t.text in ("(", "["):
            depth += 1
        elif t.kind == lexer.TEMPLATE_END or t.text in (")", "]"):
            depth -= 1
        if t.text == sep and depth == 0 and t.kind == lexer.PUNCT:
            parts.append([])
        else:
            parts[-1].append(t)
    return [p for p in parts if p]


def reflect(source: str) -> Reflection:
    """Bindings, structs, consts and entry points of `source` (module scope only)."""
    toks = lexer.code_tokens(lexer.lex(source))
    r = Reflection()
    n = len(toks)
    i = 0
    attrs: list[tuple[str, list[lexer.Token]]] = []

    def until(j: int, stop: str) -> int:  # index of the first `stop` outside brackets, from j (n if none)
        depth = 0
        while j < n:
            t = toks[j]
            if t.text == stop and depth == 0:
                return j
            if t.kind == lexer.PUNCT and t.text in _OPEN:
                depth += 1
            elif t.kind == lexer.PUNCT and t.text in _CLOSE:
                depth -= 1
            j += 1
        return n

    while i < n:
        t = toks[i]
        if t.kind == lexer.ATTRIBUTE:
            args: list[lexer.Token] = []
            if i + 1 < n and toks[i + 1].text == "(":
                depth = 0
                for close in range(i + 1, n):
                    depth += toks[close].text == "("
                    depth -= toks[close].text == ")"
                    if depth == 0:
                        break
                args = toks[i + 2:close]
                i = close
            attrs.append((t.text[1:], args))
            i += 1
            continue
        if t.text == "const" or t.text == "override":
            end = until(i, ";")
            decl = toks[i + 1:end]
            if len(decl) >= 3 and decl[-2].text == "=" and decl[-1].kind == lexer.NUMBER:
                try:
                    r.consts[decl[0].text] = _number(decl[-1].text)
                except ValueError:
                    pass
            attrs = []
            i = end + 1
            continue
        if t.text == "struct" and i + 2 < n:
            name = toks[i + 1].text
            close = until(i + 3, "}") if toks[i + 2].text == "{" else n
            members = []
            for part in _split_top(toks[i + 3:close], ","):
                part = [p for p in part if p.kind != lexer.ATTRIBUTE]  # @size/@align: not supported (rare)
                if len(part) >= 3 and part[1].text == ":":
                    members.append((part[0].text, parse_type("".join(p.text for p in part[2:]), r.structs,
                                                             r.consts)))
            r.structs[name] = _struct(name, members)
            attrs = []
            i = close + 1
            continue
        if t.text == "var":
            end = until(i, ";")
            decl = toks[i + 1:end]
            space, access = "", ""
            if decl and decl[0].kind == lexer.TEMPLATE_START:
                close = next(k for k, d in enumerate(decl) if d.kind == lexer.TEMPLATE_END)
                words = [d.text for d in decl[1:close] if d.text != ","]
                space = words[0] if words else ""
                access = words[1] if len(words) > 1 else ("read" if space in ("storage", "uniform") else "")
                decl = decl[close + 1:]
            named = dict(attrs)
            if space in ("storage", "uniform") and decl and len(decl) >= 3 and decl[1].text == ":":
                if "group" not in named or "binding" not in named:
                    raise WgslError(f"line {_line_of(source, t.start)}: var {decl[0].text} has no @group/@binding: "
                                    f"add both")
                try:
                    group = int(_number(named["group"][0].text))
                    binding = int(_number(named["binding"][0].text))
                except (IndexError, ValueError):
                    raise WgslError(f"line {_line_of(source, t.start)}: var {decl[0].text}: @group/@binding must "
                                    f"be integer literals here") from None
                wtype = parse_type("".join(d.text for d in decl[2:]), r.structs, r.consts)
                r.bindings.append(Binding(group, binding, decl[0].text, space, access, wtype,
                                          _line_of(source, t.start)))
            attrs = []
            i = end + 1
            continue
        if t.text == "fn" and i + 1 < n:
            named = dict(attrs)
            stage = next((s for s in ("compute", "vertex", "fragment") if s in named), "")
            if stage:
                size = [1, 1, 1]
                if stage == "compute":
                    parts = _split_top(named.get("workgroup_size", []), ",")
                    if not parts:
                        raise WgslError(f"line {_line_of(source, t.start)}: @compute fn {toks[i + 1].text} has no "
                                        f"@workgroup_size: add one, e.g. @workgroup_size(64)")
                    for k, part in enumerate(parts[:3]):
                        text = "".join(p.text for p in part)
                        value = r.consts.get(text)
                        if value is None:
                            try:
                                value = _number(text)
                            except ValueError:
                                raise WgslError(f"line {_line_of(source, t.start)}: @workgroup_size({text}): not a "
                                                f"literal or a const: use numbers") from None
                        size[k] = int(value)
                r.entry_points.append(EntryPoint(toks[i + 1].text, stage, (size[0], size[1], size[2])))
            attrs = []
            body = until(i, "{")
            i = until(body + 1, "}") + 1 if body < n else n
            continue
        attrs = [] if t.text == ";" else attrs
        i += 1
    return r
