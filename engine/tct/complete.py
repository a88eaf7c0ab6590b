"""The shortest way the schema state machine allows to finish a partial document (constrained sampling's
completion mode, when the token budget runs out).

From a `Machine` state: an open string ends (after the fewest bytes that let it match its pattern), an open
object gets its missing required keys with minimal values then closes, an open array closes, a key waiting
for its value gets the cheapest value its node allows (an enum index, a boolean, null, an int, an empty
array, an object of its required keys, a short string: whichever branch costs fewest atoms). `cost` is that
completion's length in atoms, computed per node once (memoised), so the sampler can switch in time.

The machine's shapes are a little looser than the schema (validation-only keywords such as minItems,
minProperties and the oneOf branches' own `required` are not in them), so a completion is validated by the
caller, which backs off to an outer container when it does not validate (see engine/tct_sample.py).
"""

from __future__ import annotations

from typing import Any

from engine.tct.bpe import END
from engine.tct.machine import _ARR, _KEYMODE, _OBJ, _P_KEY, _P_NUM, _STR, Atoms, Machine
from engine.tct.schema import Node

# string texts tried, shortest first, for a string that must match a pattern (`${{ ... }}` expressions,
# cron lines, ...), after the empty one
_FILLERS = ("a", "0", "}}", " }}", "a }}", "}}}", "${{ a }}", "a-a", "* * * * *", "a/a@a", "a/a", "./a",
            "docker://a", "x", "1")

# ...and their tails, shortest first: a string already part-way into a filler finishes it
_SUFFIXES = sorted({f.encode()[i:] for f in ("", *_FILLERS) for i in range(len(f) + 1)}, key=len)


class Completer:
    def __init__(self, atoms: Atoms):
        self.a = atoms
        self._value: dict[int, list[int] | None] = {}
        self._busy: set[int] = set()

    # ------------------------------------------------------------ values at a node

    def value(self, node: Node, esc: bool = False) -> list[int] | None:
        """The fewest atoms of a complete value at `node` (None: none found, e.g. a cycle)."""
        if esc:
            return [self.a.NULL]
        if node.ident in self._value:
            return self._value[node.ident]
        if node.ident in self._busy:
            return None
        self._busy.add(node.ident)
        try:
            best = min((c for c in self._candidates(node) if c is not None), key=len, default=None)
        finally:
            self._busy.discard(node.ident)
        self._value[node.ident] = best
        return best

    def _candidates(self, node: Node) -> list[list[int] | None]:
        a = self.a
        out: list[list[int] | None] = []
        if node.str is not None and node.str.values:
            out.append([a.enum_base])
        if node.bool:
            out.append([a.TRUE])
        if node.null:
            out.append([a.NULL])
        if node.num:
            out.append([a.int_base])
        if node.arr is not None:
            out.append([a.ARR_START, a.ARR_END] if node.arr_marker else [a.ARR_END])
        if node.obj is not None:
            body: list[int] | None = [a.OBJ_START] if node.obj_marker else []
            for name in node.obj.required:
                child = node.obj.props.get(name)
                v = self.value(child) if child is not None else None
                if v is None or body is None:
                    body = None
                    break
                body += [a.key_id[name], *v]
            if body is not None:
                out.append([*body, a.OBJ_END])
        if node.str is not None and node.str.open:
            head = [a.STR_START] if node.str_marker else []
            text = _filler(node.str.compiled)
            if text is not None:
                out.append([*head, *text, END])
        return out

    # ------------------------------------------------------------ from a machine state

    def completion(self, m: Machine) -> list[int] | None:
        """Atoms of the shortest completion from `m`'s state the machine allows (m is not changed), or None.
        Not validated: the schema's validation-only rules may still want more (see `choose`)."""
        c = m.clone(True)
        out: list[int] = []
        for _ in range(10_000):  # a hard cap: every step closes something or fills a required key
            if c.done:
                return out
            t = self.choose(c, None)
            if t is None or not c.step(t):
                return None
            out.append(t)
        return None

    def cost(self, m: Machine) -> int:
        """The length of `completion(m)` in atoms (1 << 20 when there is none)."""
        done = self.completion(m)
        return len(done) if done is not None else 1 << 20

    def choose(self, m: Machine, banned: set[int] | None) -> int | None:
        """The next atom of the cheapest completion from `m`, skipping `banned` atoms (a close the validator
        refused: then the cheapest addition instead: a key some branch requires, a free key, another key;
        an array item). None when every candidate is banned or refused."""
        for t in self._options(m):
            if (not banned or t not in banned) and m.clone(True).step(t):
                return t
        return None

    def _options(self, m: Machine) -> list[int]:
        a = self.a
        top = m.stack[-1]
        if top.kind == _STR:
            return self._string_options(m)
        if top.kind == _OBJ and top.mode == _KEYMODE:
            return self._key_options(top.node, top.keys)
        out = []
        if top.kind == _ARR and not top.vesc:
            out.append(a.ARR_END)
        node = a.any if top.vesc else top.vnode
        return out + self._value_options(node, top.vesc)

    def _key_options(self, node: Node, present: set[str]) -> list[int]:
        a = self.a
        shape = node.obj
        missing = [n for n in shape.required if n not in present and n in shape.props]
        if missing:
            return [a.key_id[missing[0]]]
        out = [a.OBJ_END]
        out += [a.key_id[n] for n in shape.wanted if n not in present and n in shape.props]
        if shape.patterns or shape.additional is not None:
            out += list(b"abcdefghijklmnopqrstuvwxyz_")  # a free key: the byte search goes on in the string
        rest = [n for n in shape.props if n not in present and n not in shape.wanted]
        rest.sort(key=lambda n: len(self.value(shape.props[n]) or range(1 << 10)))
        return out + [a.key_id[n] for n in rest]

    def _value_options(self, node: Node, esc: bool) -> list[int]:
        if esc:
            return [self.a.NULL]
        best = self.value(node)
        cands = sorted((c for c in self._candidates(node) if c), key=len)
        out = [best[0]] if best else []
        out += [c[0] for c in cands]
        a = self.a
        if node.str is not None:  # the other enum values, then other kinds' first atoms
            out += range(a.enum_base, a.enum_base + len(node.str.values))
        if node.num:
            out += range(a.int_base, a.int_base + 4)
        if node.bool:
            out.append(a.FALSE)
        if node.obj is not None and not node.obj_marker:  # an object opened by its first key
            out += self._key_options(node, set())
        if node.arr is not None and not node.arr_marker:  # an array opened by its first item
            out += self._value_options(node.arr.items, False) if node.arr.items is not node else []
        return list(dict.fromkeys(out))

    def _string_options(self, m: Machine) -> list[int]:
        top = m.stack[-1]
        if top.purpose == _P_NUM:
            tries = [b"", b"0"]
        else:
            tries = _SUFFIXES + ([b"a" * n for n in range(2, 5)] if top.purpose == _P_KEY else [])
        out = []
        for data in tries:
            atoms = [*data, END]
            c = m.clone(True)
            if all(map(c.step, atoms)):
                out.append(atoms[0])
        return list(dict.fromkeys(out))


def _filler(pats: tuple[Any, ...]) -> list[int] | None:
    """Bytes of the shortest filler text that matches one of `pats` (any text when there are none)."""
    if not pats:
        return []
    for text in ("", *_FILLERS):
        if any(p.search(text) for p in pats):
            return list(text.encode())
    return None
