"""Drafts for greedy speculative decoding (Engine's default for one greedy sample on CPU).

Decoding one token on a CPU mostly streams the weights (the lm_head alone is vocab x dim floats) and pays
per-op overhead; a block of M tokens streams them once for all M. So the engine feeds the token it just
emitted plus a few guessed next tokens through `GPT.decode_block`, keeps the guesses that equal the model's
own greedy choices, and rewinds the cache past the first that does not. A guess is only ever kept where it
equals what greedy decoding emits there, so the drafts decide how many forwards it takes, not which tokens.

What is exact, and what is only equal to float rounding:
- `decode_block` gives each position the same bits whatever the block's length and whatever guesses follow
  it (tests/engine/test_speculative.py), so two runs that use blocks at the same steps give the same bits.
- Where DraftPolicy offers no guess the step is the one-token forward (`GPT._decode`, a batch-1 gemv); the
  blocks' gemms round differently from it in the last bits (about 1e-6 on the logits), the same relation
  the one-token path has to the general forward and to stock nanochat. And a block's greedy choice is the
  argmax of the logits before the softcap (monotonic), the one-token path's the argmax after it. So the
  tokens equal the one-token path's except where the two best logits tie to within that rounding.

The guesses are prompt lookup: the tokens that followed the latest earlier occurrence of the current
suffix (the longest of 3, 2 or 1 tokens that has occurred before), read on cyclically so a loop of period
p is drafted in full.
"""

from __future__ import annotations


class NgramDrafter:
    """Prompt-lookup drafts from the sequence so far (prompt and output), updated one token at a time."""

    def __init__(self, tokens: list[int], max_n: int = 3):
        self.tokens: list[int] = []
        self.max_n = max_n
        # n-gram -> index of the token that followed its latest occurrence (only occurrences with a follower)
        self.follow: dict[tuple[int, ...], int] = {}
        for t in tokens:
            self.append(t)

    def append(self, token: int) -> None:
        toks = self.tokens
        toks.append(token)
        end = len(toks) - 1  # index of the new token: it follows the n-grams ending just before it
        for n in range(1, self.max_n + 1):
            if end - n < 0:
                break
            self.follow[tuple(toks[end - n:end])] = end

    def propose(self, k: int) -> tuple[list[int], int]:
        """Up to k guessed next tokens, and the length of the matched suffix (0: no match, a blind guess)."""
        toks = self.tokens
        if k <= 0 or not toks:
            return [], 0
        for n in range(min(self.max_n, len(toks)), 0, -1):
            start = self.follow.get(tuple(toks[-n:]))
            if start is not None:
                out: list[int] = []
                for i in range(k):  # past the end, the draft continues itself: a loop is drafted whole
                    j = start + i
                    out.append(toks[j] if j < len(toks) else out[j - len(toks)])
                return out, n
        return [toks[-1]], 0


class DraftPolicy:
    """How many guesses the next forward carries. A block costs more than a one-token forward (1.2x at 2 rows,
    about 1.6x at 8 on a 2-core CPU), so: guess only where the suffix has occurred before; after a block whose
    guesses all missed, take the next 1, 2, 4, ... 16 steps one token at a time; after a full hit, offer twice
    as many (up to max_k); after a partial one, one more than were kept."""

    def __init__(self, max_k: int):
        self.max_k = self.k = max_k
        self.wait, self.backoff = 0, 1

    def guesses(self, drafter: NgramDrafter, room: int) -> list[int]:
        if self.wait > 0:
            self.wait -= 1
            return []
        draft, matched = drafter.propose(min(self.k, room))
        return draft if matched else []

    def update(self, offered: int, accepted: int) -> None:
        if accepted == 0:
            self.wait, self.backoff = self.backoff, min(2 * self.backoff, 16)
            self.k = max(1, self.k // 2)
            return
        self.backoff = 1
        self.k = min(self.max_k, 2 * self.k) if accepted == offered else max(1, accepted + 1)
