"""The working context over a document's gist tree, and the focus allocator that reshapes it under a budget.

A document's history is cut into blocks of `block_size` tokens. Each block is in the working context at one
level of detail (LOD): 0 = its raw tokens (block_size positions), 1 = its gist (one position), 2 = part of the
gist of a group of block_size level-1 gists (one position for the whole group), or dropped (-1: no position,
the last resort when even level 2 does not fit). The tail (the newest tokens) is always raw. With `fill`, the
positions the whole blocks leave free (fewer than a block) go to the newest tokens of the newest block that is not
raw, shown raw after its gist: truncation gets every position of the budget, so MegaContext gets them too.
Plain Python: the allocator costs microseconds next to a forward pass, and the app renders its LOD map without
torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

RAW, GIST, GIST2, DROPPED = 0, 1, 2, -1
LOD_CHARS = {RAW: "█", GIST: "▓", GIST2: "░", DROPPED: "·"}
LOD_LEGEND = "█ raw tokens (resident)  ▓ gist of 32 tokens  ░ level-2 gist (1,024 tokens)  · dropped"


@dataclass
class Action:
    op: str  # "expand" (gist -> its children) or "collapse" (children -> gist)
    block: int  # first block of the span
    level: int  # the level of the gist expanded into, or collapsed to
    score: float

    def to_dict(self) -> dict:
        return {"op": self.op, "block": self.block, "level": self.level, "score": round(self.score, 4)}


@dataclass
class WorkingContext:
    """LOD per history block, plus the raw tail; `slots()` is the positions its whole blocks and the tail take
    (what the allocator budgets), `used()` those plus the lead tokens (what the model sees)."""

    n_blocks: int
    block_size: int
    tail: int
    budget: int
    levels: int = 2
    lod: list[int] = field(default_factory=list)
    fill: bool = False
    max_raw: int | None = None  # raw history blocks at most (None: as many as the budget holds)

    def __post_init__(self) -> None:
        if not self.lod:
            self.lod = [GIST] * self.n_blocks

    # ---- measures
    def group(self, block: int) -> range:
        g = block // self.block_size
        return range(g * self.block_size, min((g + 1) * self.block_size, self.n_blocks))

    def slots(self) -> int:
        n = self.tail
        seen_groups: set[int] = set()
        for i, lod in enumerate(self.lod):
            if lod == RAW:
                n += self.block_size
            elif lod == GIST:
                n += 1
            elif lod == GIST2 and i // self.block_size not in seen_groups:
                seen_groups.add(i // self.block_size)
                n += 1
        return n

    def lead_block(self) -> int | None:
        """The block whose newest tokens fill the spare positions: the newest one that is not raw (a gist, or
        dropped), when `fill` is on."""
        if not self.fill:
            return None
        b = next((b for b in range(self.n_blocks - 1, -1, -1) if self.lod[b] != RAW), None)
        return b if b is not None and self.lod[b] in (GIST, DROPPED) else None

    def lead(self) -> int:
        """Raw tokens of `lead_block()` shown after its gist: what the whole blocks leave of the budget."""
        if self.lead_block() is None:
            return 0
        return max(0, min(self.block_size - 1, self.budget - self.slots()))

    def used(self) -> int:
        """Positions the model sees: the whole blocks, the tail, and the lead tokens."""
        return self.slots() + self.lead()

    def position(self, block: int) -> int:
        """The index in the assembled working context where `block` starts (its gist, or its first raw token)."""
        probe = WorkingContext(block, self.block_size, 0, self.budget, self.levels, self.lod[:block])
        lead_block = self.lead_block()
        return probe.slots() + (self.lead() if lead_block is not None and lead_block < block else 0)

    def resident(self) -> int:
        return sum(1 for lod in self.lod if lod == RAW)

    def raw_full(self) -> bool:
        """Whether another raw block would exceed `max_raw`."""
        return self.max_raw is not None and self.resident() >= self.max_raw

    def lod_map(self) -> str:
        """One character per block of the whole document (history, then the tail's blocks, always raw)."""
        tail_blocks = -(-self.tail // self.block_size)
        return "".join(LOD_CHARS[lod] for lod in self.lod) + LOD_CHARS[RAW] * tail_blocks

    # ---- changes
    def expand(self, block: int) -> None:
        if self.lod[block] == GIST2:
            for i in self.group(block):
                self.lod[i] = GIST
        elif self.lod[block] == GIST:
            self.lod[block] = RAW

    def collapse(self, block: int) -> None:
        if self.lod[block] == RAW:
            self.lod[block] = GIST
        elif self.lod[block] == GIST and self.levels >= 2:
            span = self.group(block)
            if len(span) == self.block_size:  # only whole groups have a level-2 gist
                for i in span:
                    self.lod[i] = GIST2

    def keep_newest_raw(self, keep: int) -> None:
        """Collapse the older raw blocks to gists so that at most the newest `keep` stay raw (training's raw
        jitter: fewer raw tokens before the tail, so the gists must carry what they left out)."""
        raw = [b for b, lod in enumerate(self.lod) if lod == RAW]
        for b in raw[:max(0, len(raw) - keep)]:
            self.collapse(b)

    def fit_recent(self) -> None:
        """The starting shape: every block a gist (level 2 for the oldest groups if needed), then the newest
        blocks raw for as long as the budget (and `max_raw`) allows: a recency prior the allocator then
        reshapes."""
        self.lod = [GIST] * self.n_blocks
        g = 0
        while self.slots() > self.budget and self.levels >= 2 and (g + 1) * self.block_size <= self.n_blocks:
            self.collapse(g * self.block_size)
            g += 1
        i = 0
        while self.slots() > self.budget and i < self.n_blocks:  # even level 2 does not fit: drop the oldest
            self.lod[i] = DROPPED
            i += 1
        for b in range(self.n_blocks - 1, -1, -1):
            if self.lod[b] != GIST or self.slots() + self.block_size - 1 > self.budget or self.raw_full():
                break
            self.lod[b] = RAW


def allocate(wc: WorkingContext, scores: list[float], expand_threshold: float, collapse_threshold: float,
             max_actions: int = 8, margin: float | None = None) -> list[Action]:
    """One allocator pass. `scores[b]`: LensNet's predicted loss saved (nats over the tail) by seeing block b raw.

    A raw block is collapsed only to make room, never for its own sake. Gists scored over `expand_threshold` are
    taken best first: one expands into free room (if the raw blocks are fewer than `max_raw`); when there is
    none it is swapped in for the lowest-scored raw block if it outscores that block by the hysteresis margin
    `expand_threshold - collapse_threshold` (a swap must be worth more than the noise in the scores, so the
    context does not churn). Then the budget is enforced: the lowest-scored raw blocks collapse, then the
    oldest gists fold into level 2. At most `max_actions` expand/collapse actions before the budget is
    enforced, so the context moves gradually. `margin`, when given, replaces the hysteresis (LensNet.margin:
    no smaller than it, larger when LensNet's predictions are noisier)."""
    actions: list[Action] = []
    bs = wc.block_size
    margin = max(0.0, expand_threshold - collapse_threshold) if margin is None else margin

    def collapse(b: int) -> None:
        level = GIST if wc.lod[b] == RAW else GIST2
        wc.collapse(b)
        actions.append(Action("collapse", b, level, scores[b]))

    gists = sorted((b for b, lod in enumerate(wc.lod) if lod in (GIST, GIST2)), key=lambda b: -scores[b])
    for b in gists:
        if len(actions) >= max_actions or scores[b] <= expand_threshold:
            break
        if wc.lod[b] == RAW:
            continue
        cost = bs - 1 if wc.lod[b] == GIST else len(wc.group(b)) - 1
        if wc.slots() + cost > wc.budget or (wc.lod[b] == GIST and wc.raw_full()):
            raw = [v for v in range(wc.n_blocks) if wc.lod[v] == RAW]
            if not raw or wc.lod[b] != GIST:
                continue
            victim = min(raw, key=lambda v: scores[v])
            if scores[b] - scores[victim] <= margin:
                continue
            collapse(victim)
        if wc.slots() + cost <= wc.budget and not (wc.lod[b] == GIST and wc.raw_full()):
            level = wc.lod[b]
            wc.expand(b)
            actions.append(Action("expand", b, level, scores[b]))
    while wc.slots() > wc.budget:
        raw = [b for b, lod in enumerate(wc.lod) if lod == RAW]
        if raw:
            collapse(min(raw, key=lambda b: scores[b]))
            continue
        gist = next((b for b, lod in enumerate(wc.lod) if lod == GIST and len(wc.group(b)) == bs), None)
        if gist is not None and wc.levels >= 2:
            collapse(gist)
            continue
        oldest = next(b for b, lod in enumerate(wc.lod) if lod != DROPPED)
        wc.lod[oldest] = DROPPED
    return actions
