"""BPE merges over a document's atom stream, and the fewest-tokens split that uses them.

Atoms are what the schema walk emits: the bytes of free strings (each string followed by the END byte
0xFF, which UTF-8 never uses) and the structural tokens (keys, enum indices, markers, ...). A merge
joins two adjacent tokens into a new one, so frequent runs become single tokens: a common value with
its terminator (`ubuntu-latest` END), a key with the start of its value (KEY_uses `actions/`), or the
end of one member with the key of the next (END OBJ_END KEY_name). The merges only define the
vocabulary; the encoder picks the split of the atom stream with the fewest tokens (dynamic
programming over a trie of the tokens' expansions), and the decoder just expands tokens back to atoms,
so any split decodes the same.

Training is greedy BPE: count adjacent pairs over all streams, merge the most frequent pair (ties to
the smallest pair of ids), repeat until the budget is spent or no pair occurs twice. Occurrences are
kept in a linked list with a position index per pair, so each merge touches only its occurrences;
the result is deterministic for a given input. Merged tokens are capped at MAX_ATOMS atoms, which
bounds the encoder's work per position and costs nothing measurable in compression.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence

END = 0xFF
N_BYTES = 256
MAX_ATOMS = 32


def train(streams: Sequence[Sequence[int]], n_merges: int, first_id: int = N_BYTES, min_count: int = 2,
          max_atoms: int = MAX_ATOMS) -> list[tuple[int, int]]:
    """Up to `n_merges` merges over the streams; merge i creates token `first_id + i`."""
    sym: list[int] = []
    for s in streams:
        sym.extend(s)
        sym.append(-1)  # stream separator: no pair crosses it
    n = len(sym)
    nxt = list(range(1, n + 1))
    prv = list(range(-1, n - 1))
    size: dict[int, int] = {}  # atoms per merged token (atoms themselves are 1)
    counts: dict[tuple[int, int], int] = {}
    where: dict[tuple[int, int], list[int]] = {}  # pair -> left positions (may hold stale ones)
    for i in range(n - 1):
        a, b = sym[i], sym[i + 1]
        if a >= 0 and b >= 0:
            counts[(a, b)] = counts.get((a, b), 0) + 1
            where.setdefault((a, b), []).append(i)
    heap = [(-c, p) for p, c in counts.items()]
    heapq.heapify(heap)
    merges: list[tuple[int, int]] = []

    def dec(p: tuple[int, int]) -> None:
        c = counts.get(p)
        if c is not None:
            if c > 1:
                counts[p] = c - 1
            else:
                del counts[p]

    def inc(p: tuple[int, int], i: int, touched: set[tuple[int, int]]) -> None:
        if size.get(p[0], 1) + size.get(p[1], 1) <= max_atoms:
            counts[p] = counts.get(p, 0) + 1
            where.setdefault(p, []).append(i)
            touched.add(p)

    while len(merges) < n_merges and heap:
        neg, pair = heapq.heappop(heap)
        real = counts.get(pair, 0)
        if real != -neg:  # stale entry: re-queue with the true count (increases are queued when they happen)
            if 0 < real < -neg:
                heapq.heappush(heap, (-real, pair))
            continue
        if real < min_count:
            break
        a, b = pair
        if size.get(a, 1) + size.get(b, 1) > max_atoms:
            del counts[pair]
            continue
        new = first_id + len(merges)
        merges.append(pair)
        size[new] = size.get(a, 1) + size.get(b, 1)
        touched: set[tuple[int, int]] = set()
        for i in sorted(where.pop(pair, ())):
            if sym[i] != a:
                continue
            j = nxt[i]
            if j >= n or sym[j] != b:
                continue
            p, r = prv[i], nxt[j]
            if p >= 0 and sym[p] >= 0:
                dec((sym[p], a))
            if r < n and sym[r] >= 0:
                dec((b, sym[r]))
            dec(pair)
            sym[i], sym[j] = new, -2
            nxt[i] = r
            if r < n:
                prv[r] = i
            if p >= 0 and sym[p] >= 0:
                inc((sym[p], new), p, touched)
            if r < n and sym[r] >= 0:
                inc((new, sym[r]), i, touched)
        for p in sorted(touched):
            c = counts.get(p)
            if c:
                heapq.heappush(heap, (-c, p))
    return merges


class Segmenter:
    """Token ids ↔ atom streams for one merge list. Atoms keep their own ids; merge i is `first_id + i`."""

    def __init__(self, merges: Sequence[tuple[int, int]], first_id: int, atom_ids: Sequence[int]):
        self.first_id = first_id
        self.expansion: dict[int, tuple[int, ...]] = {a: (a,) for a in atom_ids}
        for i, (a, b) in enumerate(merges):
            if a not in self.expansion or b not in self.expansion:
                raise ValueError(f"merge {i}: ({a}, {b}) uses a token that is not defined before it")
            self.expansion[first_id + i] = self.expansion[a] + self.expansion[b]
        self.n_merges = len(merges)
        self.by_atoms = {atoms: tid for tid, atoms in self.expansion.items()}
        root: dict = {}
        for tid, atoms in self.expansion.items():
            node = root
            for x in atoms:
                node = node.setdefault(x, {})
            node[-1] = tid
        self._root = root

    def encode(self, atoms: Sequence[int]) -> list[int]:
        """The fewest tokens whose expansions spell `atoms` (ties: the longer first token)."""
        n = len(atoms)
        root = self._root
        best = [0] * (n + 1)  # best[i]: fewest tokens for atoms[i:]
        tok_at = [0] * n
        end_at = [0] * n
        for i in range(n - 1, -1, -1):
            node = root
            j = i
            b_count, b_tok, b_end = 1 << 30, -1, i + 1
            while j < n:
                node = node.get(atoms[j])
                if node is None:
                    break
                j += 1
                tid = node.get(-1)
                if tid is not None and best[j] < b_count:
                    b_count, b_tok, b_end = best[j] + 1, tid, j
                elif tid is not None and best[j] + 1 == b_count:
                    b_tok, b_end = tid, j
            if b_tok < 0:
                raise ValueError(f"atom {atoms[i]} has no token")
            best[i], tok_at[i], end_at[i] = b_count, b_tok, b_end
        out: list[int] = []
        i = 0
        while i < n:
            out.append(tok_at[i])
            i = end_at[i]
        return out
