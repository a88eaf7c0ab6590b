"""The decoder's pushdown automaton over atoms (see walk.py for the stream it reads).

One `step` per atom, so decoding can stop anywhere (truncated or invalid input) and still report what
it has, and the automaton can say which atoms are acceptable next (`legal_atoms`): the schema state
that constrained sampling walks. A stack of frames: the root, open objects and arrays, and a string
being read. A value is expected by the root, by an object after a key, and by an array between items.

Partial output (when `build` is on). A scalar enters the output when it completes; a container enters
it as soon as one of its members/items (or its closing atom) completes, so open containers show what
they hold so far; a member whose value has not completed is left out. `unit` tells the caller that the
last step completed something (that is where its `consumed` count moves).

`strict` refuses what the walker only emits for documents that do not fit the schema: ESC, keys a
closed object does not know, and closing an object before its required keys.
"""

from __future__ import annotations

import codecs
import json
import math
import re
from dataclasses import dataclass
from typing import Any

from engine.tct.bpe import END
from engine.tct.schema import Node, ObjShape, SchemaGraph
from engine.tct.vocab import N_ENUM, N_INT, SPECIALS, Vocab

_ROOT, _OBJ, _ARR, _STR = range(4)
_KEYMODE, _VALMODE = 0, 1
_P_VALUE, _P_KEY, _P_NUM = range(3)
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?")
_NUM_BYTES = frozenset(b"0123456789.-+eE")
# what a JSON number's text can start with (strict mode keeps a number's bytes on this path; 40 bytes hold
# any finite float's repr)
_NUMBER_PREFIX = re.compile(rb"-?(?:(?:0|[1-9][0-9]*)(?:\.[0-9]*|(?:\.[0-9]+)?[eE][-+]?[0-9]*)?)?")
_NUMBER_MAX = 40
# bytes that can start a string's UTF-8 (or end an empty string: END)
_START_BYTES = frozenset([*range(0x80), *range(0xC2, 0xF5), END])
_start_cache: dict[tuple[Any, ...], frozenset[int]] = {}


@dataclass
class StrCtx:
    purpose: int
    pats: tuple[Any, ...]
    buf: bytes
    shape: ObjShape | None  # keys: the object the key belongs to
    keys: set[str]  # keys: those already present


def _key_pats(shape: ObjShape) -> tuple[Any, ...]:
    return tuple(p for p, _ in shape.patterns) if shape.additional is None else ()


def prefix_ok(buf: bytes | bytearray, data: bytes, pats: tuple[Any, ...]) -> bool:
    """Whether string bytes `buf` + `data` are still a valid UTF-8 prefix that can still match `pats`."""
    start = len(buf)
    while start > 0 and len(buf) - start < 3 and 0x80 <= buf[start - 1] < 0xC0:
        start -= 1
    if start > 0 and buf[start - 1] >= 0xC0:
        start -= 1  # the lead byte of a character still being completed
    try:
        codecs.utf_8_decode(bytes(buf[start:]) + data, "surrogatepass", False)
    except UnicodeDecodeError:
        return False
    return not pats or _can_match(pats, bytes(buf) + data)


def _start_bytes(pats: tuple[Any, ...]) -> frozenset[int]:
    """First atoms of a string that must match one of `pats` (END: the empty string matches)."""
    if not pats:
        return _START_BYTES
    out = _start_cache.get(pats)
    if out is None:
        ok = {b for b in _START_BYTES if b != END and _can_match(pats, bytes((b,)))}
        if any(p.search("") for p in pats):
            ok.add(END)
        out = _start_cache[pats] = frozenset(ok)
    return out


def _can_match(pats: tuple[Any, ...], data: bytes) -> bool:
    """Whether UTF-8 `data` (valid so far) can still be extended into a text one of `pats` matches.
    An unfinished last character is tried with the lowest and highest characters it can become."""
    text, used = codecs.utf_8_decode(data, "surrogatepass", False)
    tail = data[used:]
    if not tail:
        return any(p.search(text, partial=True) for p in pats)
    need = 2 if tail[0] < 0xE0 else 3 if tail[0] < 0xF0 else 4
    for fill in (b"\x80", b"\x90", b"\xa0", b"\xbf"):
        for last in (b"\x80", b"\xbf"):
            cand = (tail + fill + last * 2)[:need] if len(tail) == 1 else (tail + last * 3)[:need]
            try:
                char = cand.decode("utf-8", "surrogatepass")
            except UnicodeDecodeError:
                continue
            if any(p.search(text + char, partial=True) for p in pats):
                return True
    return False


class Frame:
    __slots__ = ("kind", "node", "box", "keys", "parent", "pkey", "visible", "mode", "vnode", "vesc", "cur_key",
                 "buf", "purpose", "pats")

    def __init__(self, kind: int, parent: Frame | None, node: Node | None = None):
        self.kind, self.parent, self.node = kind, parent, node
        self.box: Any = None  # the container being built (build mode only)
        self.keys: set[str] = set()  # keys already present (objects)
        self.pkey: str | None = None  # this container's key in its parent object
        self.visible = False
        self.mode = _KEYMODE
        self.vnode: Node | None = None  # node of the value expected next
        self.vesc = False  # the value expected next follows an ESC
        self.cur_key: str | None = None
        self.buf = bytearray()
        self.purpose = _P_VALUE
        self.pats: tuple[Any, ...] = ()  # strings: the text must match one of these (strict mode)


class Atoms:
    """Atom ids of one vocabulary, looked up once."""

    def __init__(self, graph: SchemaGraph, vocab: Vocab):
        self.graph, self.vocab = graph, vocab
        (self.ESC, self.OBJ_START, self.OBJ_END, self.ARR_START, self.ARR_END, self.STR_START, self.TRUE,
         self.FALSE, self.NULL, self.NUM) = (vocab.special(name) for name in SPECIALS)
        self.enum_base, self.int_base, self.key_base = vocab.enum_base, vocab.int_base, vocab.key_base
        self.key_id = {name: vocab.key_base + i for i, name in enumerate(vocab.property_names)}
        self.key_names = vocab.property_names
        self.any = graph.any


class Machine:
    def __init__(self, atoms: Atoms, build: bool = True, strict: bool = False):
        self.a = atoms
        self.build, self.strict = build, strict
        root = Frame(_ROOT, None)
        root.vnode = atoms.graph.root
        root.box = [None]
        self.root = root
        self.stack: list[Frame] = [root]
        self.done = False
        self.unit = False

    def clone(self, strict: bool) -> Machine:
        """A copy for trying atoms out (no output building); the original is not affected."""
        m = Machine.__new__(Machine)
        m.a, m.build, m.strict, m.done, m.unit = self.a, False, strict, self.done, False
        stack: list[Frame] = []
        parent = None
        for f in self.stack:  # each frame's parent is the frame below it
            g = Frame.__new__(Frame)
            g.kind, g.node, g.box, g.keys, g.parent, g.pkey = f.kind, f.node, None, set(f.keys), parent, f.pkey
            g.visible, g.mode, g.vnode, g.vesc, g.cur_key = f.visible, f.mode, f.vnode, f.vesc, f.cur_key
            g.buf, g.purpose, g.pats = bytearray(f.buf), f.purpose, f.pats
            stack.append(g)
            parent = g
        m.root, m.stack = stack[0], stack
        return m

    @property
    def in_string(self) -> bool:
        return self.stack[-1].kind == _STR

    # ---------------------------------------------------------------- output

    def output(self) -> str:
        if not self.root.visible:
            return "{}"
        return json.dumps(self.root.box[0], ensure_ascii=False, separators=(",", ":"))

    def _show(self, f: Frame) -> None:
        while f.kind != _ROOT and not f.visible:
            self._put(f.parent, f.box, f.pkey)
            f.visible = True
            f = f.parent

    @staticmethod
    def _put(parent: Frame, value: Any, key: str | None) -> None:
        if parent.kind == _OBJ:
            parent.box[key] = value
        elif parent.kind == _ARR:
            parent.box.append(value)
        else:
            parent.box[0] = value
            parent.visible = True

    def _complete(self, parent: Frame, value: Any, already_shown: bool) -> None:
        """A value for `parent` is complete: record it, reset what the parent expects, show the path."""
        if self.build and not already_shown:
            self._put(parent, value, parent.cur_key)
        if parent.kind == _OBJ:
            parent.keys.add(parent.cur_key)
            parent.mode = _KEYMODE
        elif parent.kind == _ROOT:
            self.done = True
        parent.vesc = False
        if self.build:
            self._show(parent)
        self.unit = True

    # ---------------------------------------------------------------- stepping

    def step(self, t: int) -> bool:
        """Consume one atom; False (and no change) if it is not acceptable here."""
        if self.done:
            return False
        depth = len(self.stack)
        ok = self._step(t)
        if not ok:
            del self.stack[depth:]
        return ok

    def feed_bytes(self, data: bytes) -> None:
        """Fast path for string bytes without END while a string is open (decoding checks UTF-8 at END)."""
        self.stack[-1].buf += data

    def string_context(self) -> StrCtx | None:
        """What string bytes would be part of next: the open string, or a string value or free key that a
        byte would start. None where that is not simple (a number's text, an implicit array). Within one
        context, whether a token whose string ends early is accepted depends on its text only through
        `end_key`, which lets `Tokenizer.legal_tokens` try each continuation once, not once per token."""
        top = self.stack[-1]
        strict = self.strict
        if top.kind == _STR:
            if top.purpose == _P_NUM:
                return None
            obj = top.parent if top.purpose == _P_KEY else None
            return StrCtx(top.purpose, top.pats, bytes(top.buf), obj.node.obj if obj else None,
                          obj.keys if obj else set())
        if top.kind == _OBJ and top.mode == _KEYMODE:
            shape = top.node.obj
            if strict and not self._free_keys_allowed(top.node):
                return None
            return StrCtx(_P_KEY, _key_pats(shape) if strict else (), b"", shape, top.keys)
        node = self.a.any if top.vesc else top.vnode
        if node.arr is not None and not node.arr_marker:
            return None
        if node.str is not None and node.str.open and not node.str_marker:
            return StrCtx(_P_VALUE, node.str.compiled if strict else (), b"", None, set())
        if node.obj is not None and not node.obj_marker and (not strict or self._free_keys_allowed(node)):
            return StrCtx(_P_KEY, _key_pats(node.obj) if strict else (), b"", node.obj, set())
        return None

    def end_key(self, ctx: StrCtx, data: bytes) -> Any:
        """If the context's string could end after `data`: what the continuation depends on (a hashable),
        else None."""
        try:
            text = (ctx.buf + data).decode("utf-8", "surrogatepass")
        except UnicodeDecodeError:
            return None
        if ctx.pats and not any(p.search(text) for p in ctx.pats):
            return None
        if ctx.purpose == _P_VALUE:
            return 0
        shape = ctx.shape
        if text in shape.props or text in ctx.keys:
            return None
        node = shape.value_node(text)
        if node is None:
            if self.strict:
                return None
            node = self.a.any
        return node.ident

    def bytes_ok(self, data: bytes) -> bool:
        """Whether the open string's bytes followed by `data` can still become a valid string here."""
        top = self.stack[-1]
        return prefix_ok(top.buf, data, top.pats)

    def _step(self, t: int) -> bool:
        a = self.a
        top = self.stack[-1]
        if top.kind == _STR:
            return self._str_atom(top, t)
        if top.kind == _OBJ and top.mode == _KEYMODE:
            return self._key_atom(top, t)
        if top.kind == _ARR and t == a.ARR_END and not top.vesc:
            self.stack.pop()
            self._complete(top.parent, top.box, top.visible)
            return True
        node = a.any if top.vesc else top.vnode
        return self._value_atom(top, node, t)

    def _open(self, parent: Frame, kind: int, node: Node) -> Frame:
        f = Frame(kind, parent, node)
        f.pkey = parent.cur_key if parent.kind == _OBJ else None
        if kind == _OBJ:
            f.box = {} if self.build else None
        else:
            f.box = [] if self.build else None
            f.vnode = node.arr.items
        self.stack.append(f)
        return f

    def _open_str(self, parent: Frame, purpose: int, node: Node | None = None) -> Frame:
        f = Frame(_STR, parent)
        f.purpose = purpose
        if self.strict:
            if purpose == _P_VALUE and node is not None:
                f.pats = node.str.compiled
            elif purpose == _P_KEY and parent.node.obj.additional is None:
                f.pats = tuple(p for p, _ in parent.node.obj.patterns)
        self.stack.append(f)
        return f

    def _value_atom(self, parent: Frame, node: Node, t: int) -> bool:
        a = self.a
        if t == a.ESC:
            if parent.vesc or node is a.any or self.strict:
                return False
            parent.vesc = True
            return True
        if node.arr is not None and not node.arr_marker:  # arrays are the only kind here: opened implicitly
            f = self._open(parent, _ARR, node)
            if t == a.ARR_START:  # ...or explicitly, when the first item starts with ESC or ARR_START
                return True
            if t == a.ARR_END:
                self.stack.pop()
                self._complete(parent, f.box, False)
                return True
            return self._value_atom(f, f.vnode, t)
        if t < 256:
            st = node.str
            if st is not None and st.open and not node.str_marker:
                return self._str_atom(self._open_str(parent, _P_VALUE, node), t)
            if node.obj is not None and not node.obj_marker:
                return self._key_atom(self._open(parent, _OBJ, node), t)
            return False
        scalar = self._scalar(node, t)
        if scalar is not None:  # a one-atom value
            allowed, value = scalar
            if allowed:
                self._complete(parent, value, False)
            return allowed
        if t == a.NUM or t == a.STR_START:  # a number's text / a marked string value follows
            allowed = node.num if t == a.NUM else node.str_marker
            if allowed:
                self._open_str(parent, *((_P_NUM, None) if t == a.NUM else (_P_VALUE, node)))
            return allowed
        if t == a.OBJ_START or t == a.ARR_START:
            allowed = node.obj_marker if t == a.OBJ_START else node.arr_marker
            if allowed:
                self._open(parent, _OBJ if t == a.OBJ_START else _ARR, node)
            return allowed
        if node.obj is not None and not node.obj_marker and (t == a.OBJ_END or t >= a.key_base):
            return self._key_atom(self._open(parent, _OBJ, node), t)
        return False

    def _scalar(self, node: Node, t: int) -> tuple[bool, Any] | None:
        """For an atom that is a whole value (ENUM_i, INT_n, TRUE, FALSE, NULL): (allowed at `node`, value)."""
        a = self.a
        off = t - a.enum_base
        if 0 <= off < N_ENUM:
            ok = node.str is not None and off < len(node.str.values)
            return ok, node.str.values[off] if ok else None
        off = t - a.int_base
        if 0 <= off < N_INT:
            return node.num, off
        if t == a.TRUE or t == a.FALSE:
            return node.bool, t == a.TRUE
        if t == a.NULL:
            return node.null, None
        return None

    def _key_atom(self, f: Frame, t: int) -> bool:
        a = self.a
        if t == a.OBJ_END:
            if self.strict and not all(k in f.keys for k in f.node.obj.required):
                return False
            self.stack.pop()
            self._complete(f.parent, f.box, f.visible)
            return True
        if t >= a.key_base:
            name = a.key_names[t - a.key_base]
            child = f.node.obj.props.get(name)
            if child is None or name in f.keys:
                return False
            f.cur_key, f.vnode, f.vesc, f.mode = name, child, False, _VALMODE
            return True
        if t < 256:
            if self.strict and not self._free_keys_allowed(f.node):
                return False
            return self._str_atom(self._open_str(f, _P_KEY), t)
        return False

    def _byte_ok(self, f: Frame, t: int) -> bool:
        if f.purpose == _P_NUM:
            return t in _NUM_BYTES and len(f.buf) < _NUMBER_MAX and \
                _NUMBER_PREFIX.fullmatch(bytes(f.buf) + bytes((t,))) is not None
        return self.stack[-1] is f and self.bytes_ok(bytes((t,)))

    @staticmethod
    def _free_keys_allowed(node: Node) -> bool:
        return bool(node.obj.patterns) or node.obj.additional is not None

    def _str_atom(self, f: Frame, t: int) -> bool:
        if t != END:
            if 0 <= t < END and (not self.strict or self._byte_ok(f, t)):
                f.buf.append(t)
                return True
            return False
        try:
            text = f.buf.decode("utf-8", "surrogatepass")
        except UnicodeDecodeError:
            return False
        parent = f.parent
        if f.pats and not any(p.search(text) for p in f.pats):
            return False
        if f.purpose == _P_VALUE:
            self.stack.pop()
            self._complete(parent, text, False)
            return True
        if f.purpose == _P_NUM:
            if not _NUMBER.fullmatch(text):
                return False
            value: int | float = int(text) if text.lstrip("-").isdigit() else float(text)
            if isinstance(value, float) and not math.isfinite(value):
                return False
            self.stack.pop()
            self._complete(parent, value, False)
            return True
        shape = parent.node.obj
        if text in shape.props or text in parent.keys:
            return False
        child = shape.value_node(text)
        if child is None and self.strict:
            return False
        self.stack.pop()
        parent.cur_key, parent.vnode, parent.vesc, parent.mode = text, child or self.a.any, False, _VALMODE
        return True

    # ---------------------------------------------------------------- acceptable next atoms

    def legal_atoms(self) -> set[int]:
        """Atoms acceptable next (inside a string: every byte and END; the UTF-8 check happens at END)."""
        a = self.a
        if self.done:
            return set()
        top = self.stack[-1]
        if top.kind == _STR:
            if not self.strict:
                return set(range(256))
            if top.purpose == _P_NUM:
                return {b for b in _NUM_BYTES if self._byte_ok(top, b)} | (
                    {END} if self.clone(strict=True).step(END) else set())
            out = {b for b in range(END) if self.bytes_ok(bytes((b,)))}
            if self.clone(strict=True).step(END):  # the string may end here (valid UTF-8, allowed key, ...)
                out.add(END)
            return out
        if top.kind == _OBJ and top.mode == _KEYMODE:
            return self._key_first(top.node, top.keys)
        out: set[int] = set()
        if top.kind == _ARR and not top.vesc:
            out.add(a.ARR_END)
        node = a.any if top.vesc else top.vnode
        return out | self._value_first(node, not self.strict and not top.vesc, 0)

    def _key_first(self, node: Node, present: set[str]) -> set[int]:
        a = self.a
        shape = node.obj
        out = {a.key_id[n] for n in shape.props if n not in present}
        if not self.strict or all(n in present for n in shape.required):
            out.add(a.OBJ_END)
        if not self.strict:
            out.update(range(256))
        elif self._free_keys_allowed(node):
            pats = tuple(p for p, _ in shape.patterns) if shape.additional is None else ()
            out |= _start_bytes(pats) - {END}
            if "" not in present and shape.value_node("") is not None:
                out.add(END)  # the empty key
        return out

    def _value_first(self, node: Node, esc_ok: bool, depth: int) -> set[int]:
        a = self.a
        out: set[int] = set()
        if esc_ok and node is not a.any:
            out.add(a.ESC)
        if node.str is not None:
            out.update(range(a.enum_base, a.enum_base + len(node.str.values)))
            if node.str.open:
                if node.str_marker:
                    out.add(a.STR_START)
                else:
                    out |= _start_bytes(node.str.compiled) if self.strict else set(range(256))
        if node.num:
            out.update(range(a.int_base, a.int_base + N_INT))
            out.add(a.NUM)
        if node.bool:
            out.update((a.TRUE, a.FALSE))
        if node.null:
            out.add(a.NULL)
        if node.obj is not None:
            out |= {a.OBJ_START} if node.obj_marker else self._key_first(node, set())
        if node.arr is not None:
            out.add(a.ARR_START)
            if not node.arr_marker and depth < 8:
                out.add(a.ARR_END)
                out |= self._value_first(node.arr.items, False, depth + 1)
        return out
