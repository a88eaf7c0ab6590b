"""The TCT tokenizer: schema walk → atom stream → fewest-token split over the merges, and back.

encode: `Walker` turns the document into atoms, `Segmenter` picks the fewest tokens that spell them.
decode: each token expands to its atoms, which the `Machine` consumes one by one. A token that the
machine refuses (or one past the end of the document) stops decoding there; the JSON shows what was
complete (see machine.py) and `consumed` is the count of tokens up to the one that completed the last
value, so decode(tokens[:consumed]) gives the same JSON. The empty prefix decodes to "{}" (the root
object is opened by no token).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from engine.errors import EngineError
from engine.tct.bpe import END, N_BYTES, Segmenter
from engine.tct.machine import Atoms, Machine, prefix_ok
from engine.tct.schema import SchemaGraph
from engine.tct.vocab import VOCAB_SIZE, Vocab
from engine.tct.walk import Walker


class Tokenizer:
    """The TCT tokenizer for one schema graph and one merge list."""

    def __init__(self, graph: SchemaGraph, merges: Sequence[tuple[int, int]]):
        self.graph = graph
        self.merges = list(merges)
        self.vocab = Vocab(tuple(graph.property_names))
        if len(merges) > self.vocab.n_merges:
            raise EngineError(f"merges: {len(merges)} merges do not fit; the vocabulary has room for "
                              f"{self.vocab.n_merges}: retrain them (python -m engine.tct.train_merges)")
        self.walker = Walker(graph, self.vocab)
        self.atoms = Atoms(graph, self.vocab)
        atom_ids = [*range(N_BYTES), *range(self.vocab.first_structural, VOCAB_SIZE)]
        try:
            self.segmenter = Segmenter(merges, N_BYTES, atom_ids)
        except ValueError as e:
            raise EngineError(f"merges: {e}: retrain them (python -m engine.tct.train_merges)") from None
        self.expansion = self.segmenter.expansion
        # tokens made only of string bytes without END: inside an open string they are always acceptable
        self.plain = {t: bytes(x) for t, x in self.expansion.items() if all(b < END for b in x)}
        self.by_first: dict[int, list[int]] = {}  # first atom -> tokens starting with it
        for t, x in self.expansion.items():
            self.by_first.setdefault(x[0], []).append(t)
        self.escapes = 0

    # ------------------------------------------------------------------------------------ encoding

    def encode_value(self, value: Any) -> list[int]:
        """Tokens of a parsed JSON value (dicts keep their key order); escapes taken → `self.escapes`."""
        atoms = self.walker.atoms(value)
        self.escapes = self.walker.escapes
        return self.segmenter.encode(atoms)

    # ------------------------------------------------------------------------------------ decoding

    def _machine(self, build: bool = True, strict: bool = False) -> Machine:
        return Machine(self.atoms, build=build, strict=strict)

    def _feed(self, m: Machine, t: int) -> bool:
        """Feed one token's atoms; False if one is refused (the machine may then be partly advanced)."""
        plain = self.plain.get(t)
        if plain is not None and m.in_string:
            m.feed_bytes(plain)
            return True
        atoms = self.expansion.get(t)
        if atoms is None:
            return False
        return all(m.step(x) for x in atoms)

    def decode(self, tokens: Sequence[int]) -> tuple[str, int, int]:
        m = self._machine()
        consumed = 0
        for i, t in enumerate(tokens):
            if m.done:
                break
            if not self._feed(m, t):
                if len(self.expansion.get(t, ())) > 1:  # a merged token failed part-way: redo without it
                    return self.decode(tokens[:i])[0], consumed, len(tokens)
                break
            if m.unit:
                consumed, m.unit = i + 1, False
        return m.output(), consumed, len(tokens)

    def machine_after(self, prefix: Sequence[int], strict: bool = True) -> Machine:
        """The decoder state after `prefix` (an EngineError names the first token it refuses)."""
        m = self._machine(build=False, strict=strict)
        for i, t in enumerate(prefix):
            if m.done or not self._feed(m, t):
                raise EngineError(f"prefix token {i} ({self.vocab.describe(t)}) is not valid there: pass a "
                                  "prefix the decoder accepts")
        return m

    def advance(self, m: Machine, token: int) -> bool:
        """Feed one token to a machine from `machine_after` (a sampler's loop); False if it is refused,
        in which case the machine may be partly advanced and should be rebuilt."""
        return not m.done and self._feed(m, token)

    def legal_next_tokens(self, prefix: Sequence[int], allow_escape: bool = False) -> list[int]:
        """Tokens whose every atom the (strict unless `allow_escape`) machine accepts after `prefix`."""
        return self.legal_tokens(self.machine_after(prefix, strict=not allow_escape))

    def legal_tokens(self, m: Machine) -> list[int]:
        """Tokens whose every atom `m` accepts next (m itself is not advanced)."""
        strict = m.strict
        first = m.legal_atoms()
        ctx = m.string_context()
        continues: dict[tuple[Any, tuple[int, ...]], bool] = {}  # (end key, atoms after END) -> accepted
        out = []
        for a0 in first:
            for t in self.by_first.get(a0, ()):
                atoms = self.expansion[t]
                if len(atoms) == 1:
                    out.append(t)
                    continue
                if ctx is not None and a0 < 256:
                    plain = self.plain.get(t)
                    if plain is not None:  # string bytes only: fine while they can still form a valid string
                        if not strict or prefix_ok(ctx.buf, plain, ctx.pats):
                            out.append(t)
                        continue
                    cut = atoms.index(END) if END in atoms else -1
                    key = m.end_key(ctx, bytes(atoms[:cut])) if cut >= 0 else None
                    if cut < 0:  # bytes then structure with no END between: never valid, let the machine say so
                        key = None
                        if all(map(m.clone(strict).step, atoms)):
                            out.append(t)
                        continue
                    if key is None:
                        continue
                    rest = atoms[cut + 1:]
                    if END not in rest:  # what follows the string depends on its text only through `key`
                        ok = continues.get((key, rest))
                        if ok is None:
                            ok = continues[(key, rest)] = all(map(m.clone(strict).step, atoms))
                        if ok:
                            out.append(t)
                        continue
                if all(map(m.clone(strict).step, atoms)):
                    out.append(t)
        return sorted(out)
