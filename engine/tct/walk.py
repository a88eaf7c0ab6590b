"""Walk a parsed JSON document against the compiled schema and emit its atom stream.

Atoms are the unmerged tokens: string bytes (END = 0xFF closes a string) and structural tokens.
At a schema node:
  * object  → [OBJ_START if the node needs it] then per member, in document order: KEY_<name> for a
              property the node knows, else the key as a free string; then the member's value; OBJ_END.
              A free key the node does not allow (closed object) is an escape: its value is walked
              against the any-JSON node.
  * array   → [ARR_START if the node needs it] items ARR_END
  * string  → ENUM_<i> if it is the node's i-th known value, else [STR_START if needed] its UTF-8
              bytes and END
  * number  → INT_<n> for 0 <= n < 128, else NUM + its JSON text as a free string
  * true/false/null → TRUE / FALSE / NULL
  * a value of a kind the node does not allow → ESC, then the value walked against the any-JSON node.
Which marker a node needs is decided by the node (schema.Node.obj_marker / str_marker / arr_marker).
"""

from __future__ import annotations

import math
from typing import Any

from engine.errors import EngineError
from engine.tct.bpe import END
from engine.tct.schema import Node, SchemaGraph
from engine.tct.vocab import N_ENUM, N_INT, SPECIALS, Vocab


class Walker:
    """Emits atoms for parsed documents; `escapes` counts the escapes the last walk took."""

    def __init__(self, graph: SchemaGraph, vocab: Vocab):
        if graph.max_enum > N_ENUM:
            raise EngineError(f"schema: an enum has {graph.max_enum} values, more than the {N_ENUM} ENUM tokens")
        self.graph, self.vocab = graph, vocab
        (self.ESC, self.OBJ_START, self.OBJ_END, self.ARR_START, self.ARR_END, self.STR_START, self.TRUE,
         self.FALSE, self.NULL, self.NUM) = (vocab.special(name) for name in SPECIALS)
        self.enum_base, self.int_base = vocab.enum_base, vocab.int_base
        self.key_id = {name: vocab.key_base + i for i, name in enumerate(vocab.property_names)}
        self.escapes = 0

    def atoms(self, value: Any) -> list[int]:
        self.escapes = 0
        out: list[int] = []
        self._enc(value, self.graph.root, out)
        return out

    def _str(self, text: str, out: list[int]) -> None:
        out += text.encode("utf-8", "surrogatepass")  # lone surrogates (legal in JSON) survive the trip
        out.append(END)

    def _escape(self, value: Any, out: list[int]) -> None:
        self.escapes += 1
        out.append(self.ESC)
        self._enc(value, self.graph.any, out)

    def _enc(self, v: Any, node: Node, out: list[int]) -> None:
        if isinstance(v, str):
            st = node.str
            if st is not None:
                idx = st.index.get(v)
                if idx is not None:
                    out.append(self.enum_base + idx)
                    return
                if st.open:
                    if node.str_marker:
                        out.append(self.STR_START)
                    self._str(v, out)
                    return
            self._escape(v, out)
        elif isinstance(v, dict):
            shape = node.obj
            if shape is None:
                self._escape(v, out)
                return
            if node.obj_marker:
                out.append(self.OBJ_START)
            props = shape.props
            for k, x in v.items():
                child = props.get(k)
                if child is not None:
                    out.append(self.key_id[k])
                else:
                    self._str(k, out)
                    child = shape.value_node(k)
                    if child is None:
                        self.escapes += 1
                        child = self.graph.any
                self._enc(x, child, out)
            out.append(self.OBJ_END)
        elif isinstance(v, list):
            arr = node.arr
            if arr is None:
                self._escape(v, out)
                return
            start = len(out)
            if node.arr_marker:
                out.append(self.ARR_START)
            for x in v:
                self._enc(x, arr.items, out)
            if not node.arr_marker and len(out) > start and out[start] in (self.ESC, self.ARR_START):
                # An implicit array opens explicitly when its first item starts with ESC or ARR_START:
                # at the array's own start those would mean "escape this value" / "open this array".
                out.insert(start, self.ARR_START)
            out.append(self.ARR_END)
        elif v is True or v is False:
            if node.bool:
                out.append(self.TRUE if v else self.FALSE)
            else:
                self._escape(v, out)
        elif v is None:
            if node.null:
                out.append(self.NULL)
            else:
                self._escape(v, out)
        elif isinstance(v, int | float):
            if not node.num:
                self._escape(v, out)
            elif isinstance(v, int) and 0 <= v < N_INT:
                out.append(self.int_base + v)
            else:
                if isinstance(v, float) and not math.isfinite(v):
                    raise EngineError(f"number {v}: has no JSON form (NaN and infinities are not JSON)")
                out.append(self.NUM)
                self._str(str(v) if isinstance(v, int) else repr(v), out)
        else:
            raise EngineError(f"value of type {type(v).__name__}: not a JSON value")
