"""The token id layout: 8192 ids shared by every kind of token.

    [0, 256)                    bytes of free strings (0xFF = END, the string terminator)
    [256, 256 + merges)         BPE merges over atoms: bytes and structural tokens (engine/tct/data/merges.txt)
    [first_structural, 8192)    structural tokens, in this order:
        specials                ESC OBJ_START OBJ_END ARR_START ARR_END STR_START TRUE FALSE NULL NUM
        ENUM_0 .. ENUM_63       an enum value by its index in the enum the schema gives at that point
        INT_0 .. INT_127        small non-negative integers (others: NUM + their text as a string)
        POS_0 .. POS_63         window position tokens (`extract_window`)
        KEY_<name>              one per property name the schema knows, sorted by name

The structural block is fixed by the schema, so the number of merges is what is left of 8192.
"""

from __future__ import annotations

from dataclasses import dataclass

VOCAB_SIZE = 8192
N_BYTES = 256
N_ENUM = 64
N_INT = 128
N_POS = 64
POS_STRIDE = 64  # POS_k (k >= 1) covers window starts in (64(k-1), 64k]; POS_0 is the document start
SPECIALS = ("ESC", "OBJ_START", "OBJ_END", "ARR_START", "ARR_END", "STR_START", "TRUE", "FALSE", "NULL", "NUM")


@dataclass(frozen=True)
class Vocab:
    property_names: tuple[str, ...]

    @property
    def n_structural(self) -> int:
        return len(SPECIALS) + N_ENUM + N_INT + N_POS + len(self.property_names)

    @property
    def first_structural(self) -> int:
        return VOCAB_SIZE - self.n_structural

    @property
    def n_merges(self) -> int:
        """How many BPE merges fit: everything between the bytes and the structural block."""
        return self.first_structural - N_BYTES

    def special(self, name: str) -> int:
        return self.first_structural + SPECIALS.index(name)

    @property
    def enum_base(self) -> int:
        return self.first_structural + len(SPECIALS)

    @property
    def int_base(self) -> int:
        return self.enum_base + N_ENUM

    @property
    def pos_base(self) -> int:
        return self.int_base + N_INT

    @property
    def key_base(self) -> int:
        return self.pos_base + N_POS

    def position_token(self, start: int) -> int:
        """The token that says a window starts `start` tokens into its document."""
        if start < 0:
            raise ValueError(f"window start {start} is negative")
        k = 0 if start == 0 else min(1 + (start - 1) // POS_STRIDE, N_POS - 1)
        return self.pos_base + k

    def describe(self, token: int) -> str:
        """A readable name for a token id (strings show their bytes)."""
        if not 0 <= token < VOCAB_SIZE:
            return f"<out of range {token}>"
        if token < self.first_structural:
            return f"<str {token}>"
        off = token - self.first_structural
        if off < len(SPECIALS):
            return SPECIALS[off]
        for base, n, name in ((self.enum_base, N_ENUM, "ENUM"), (self.int_base, N_INT, "INT"),
                              (self.pos_base, N_POS, "POS")):
            if base <= token < base + n:
                return f"{name}_{token - base}"
        return f"KEY_{self.property_names[token - self.key_base]}"
