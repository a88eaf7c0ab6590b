"""The shader side's vocabulary: WGSL tokens from the lexer, with a fallback that makes every string encodable.

Ids 0..255 are raw bytes (for characters the vocabulary lacks, as UTF-8); then a fixed base (every printable
ASCII character, tab and line breaks, WGSL's keywords, types, common parametrised types such as `vec4<f32>`,
builtin functions, enumerants, attributes and operators); then the tokens learned from a corpus of shaders
(identifiers, whitespace runs such as a newline plus indentation), most frequent first.

A lexer token in the vocabulary is one id. Any other token is cut greedily into the longest vocabulary
pieces, down to single characters and bytes, so `decode(encode(s)) == s` for every string `s`. Numbers
are always spelled character by character: a model then copies any constant from the prompt instead of
needing one token per value it has seen.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from nanochat_plugins.wgsl import lexer
from nanochat_plugins.wgsl.errors import WgslError

N_BYTES = 256
VOCAB_FILE = "wgsl_vocab.json"
FORMAT_VERSION = 1
_UNLEARNED = frozenset({lexer.NUMBER, lexer.COMMENT, lexer.ERROR})  # never whole tokens


def _utf8(ch: str) -> bytes:
    return ch.encode("utf-8", "surrogatepass")  # a lone surrogate (from surrogateescape) survives too


def _text(data: bytearray) -> str:
    try:
        return data.decode("utf-8", "surrogatepass")
    except UnicodeDecodeError:  # bytes a model wrote that are not UTF-8
        return data.decode("utf-8", "replace")


def base_tokens() -> list[str]:
    """The fixed part of every vocabulary, in id order (after the 256 byte ids)."""
    chars = [chr(c) for c in range(0x20, 0x7F)] + ["\t", "\n", "\r"]
    generated = [f"vec{n}<{s}>" for n in (2, 3, 4) for s in lexer.SCALAR_TYPES]
    generated += [f"mat{c}x{r}<{s}>" for c in (2, 3, 4) for r in (2, 3, 4) for s in ("f32", "f16")]
    generated += [f"array<{s}>" for s in lexer.SCALAR_TYPES] + ["atomic<u32>", "atomic<i32>"]
    generated += [f"texture_{d}<{s}>" for d in ("1d", "2d", "2d_array", "3d", "cube", "multisampled_2d")
                  for s in ("f32", "i32", "u32")]
    words = sorted(lexer.KEYWORDS | lexer.TYPES | lexer.BUILTIN_FUNCTIONS | lexer.ENUMERANTS | lexer.BUILTIN_VALUES)
    attrs = sorted("@" + a for a in lexer.ATTRIBUTES)
    out: list[str] = []
    seen: set[str] = set()
    for tok in chars + list(lexer.OPERATORS) + attrs + words + generated:
        if tok not in seen:
            seen.add(tok)
            out.append(tok)
    return out


class WgslVocab:
    """Maps WGSL text to ids and back; see the module docstring for the id layout."""

    def __init__(self, learned: Iterable[str] = ()):
        base = base_tokens()
        known = set(base)
        self.learned = [t for t in learned if t and t not in known]
        if len(set(self.learned)) != len(self.learned):
            raise WgslError("wgsl vocabulary: learned tokens repeat: rebuild it with WgslVocab.build")
        self.tokens = base + self.learned  # id = N_BYTES + index
        self._ids = {t: N_BYTES + i for i, t in enumerate(self.tokens)}
        self._max_len = max(len(t) for t in self.tokens)

    @classmethod
    def build(cls, shaders: Iterable[str], min_freq: int = 1) -> WgslVocab:
        """Base tokens plus every lexer token (not numbers or comments) seen at least `min_freq` times."""
        if min_freq < 1:
            raise WgslError(f"wgsl vocabulary: min_freq={min_freq}: must be at least 1")
        counts: Counter[str] = Counter()
        for src in shaders:
            counts.update(t.text for t in lexer.lex(src) if t.kind not in _UNLEARNED)
        base = set(base_tokens())
        learned = sorted((t for t, c in counts.items() if c >= min_freq and t not in base),
                         key=lambda t: (-counts[t], t))
        return cls(learned)

    def __len__(self) -> int:
        return N_BYTES + len(self.tokens)

    @property
    def fingerprint(self) -> str:
        h = hashlib.sha256(f"wgsl-vocab-v{FORMAT_VERSION}".encode())
        for t in self.tokens:
            b = t.encode()
            h.update(len(b).to_bytes(4, "little") + b)
        return h.hexdigest()[:16]

    # ---- encode / decode

    def _pieces(self, text: str, out: list[int]) -> None:
        p, n = 0, len(text)
        while p < n:
            for size in range(min(self._max_len, n - p), 0, -1):
                tid = self._ids.get(text[p:p + size])
                if tid is not None:
                    out.append(tid)
                    p += size
                    break
            else:
                out.extend(_utf8(text[p]))  # byte ids are the byte values
                p += 1

    def _chars(self, text: str, out: list[int]) -> None:
        for ch in text:
            tid = self._ids.get(ch)
            if tid is None:
                out.extend(_utf8(ch))
            else:
                out.append(tid)

    def encode(self, source: str) -> list[int]:
        out: list[int] = []
        for tok in lexer.lex(source):
            if tok.kind == lexer.NUMBER:
                self._chars(tok.text, out)
                continue
            tid = self._ids.get(tok.text) if tok.kind not in _UNLEARNED else None
            if tid is None:
                self._pieces(tok.text, out)
            else:
                out.append(tid)
        return out

    def decode(self, ids: Iterable[int]) -> str:
        """Text of `ids`; byte ids are gathered and decoded as UTF-8 (an invalid sequence becomes U+FFFD)."""
        parts: list[str] = []
        pending = bytearray()
        n = len(self)
        for i in ids:
            if not 0 <= i < n:
                raise WgslError(f"wgsl token id {i}: out of range: use an id in [0, {n})")
            if i < N_BYTES:
                pending.append(i)
                continue
            if pending:
                parts.append(_text(pending))
                pending.clear()
            parts.append(self.tokens[i - N_BYTES])
        if pending:
            parts.append(_text(pending))
        return "".join(parts)

    def id_to_token(self, i: int) -> str:
        return f"<0x{i:02X}>" if 0 <= i < N_BYTES else self.tokens[i - N_BYTES]

    # ---- storage

    def save(self, directory: str | Path) -> Path:
        """Write `wgsl_vocab.json` atomically (the learned tokens; the base is rebuilt from the lexer)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / VOCAB_FILE
        data = {"format": FORMAT_VERSION, "base_size": len(base_tokens()), "fingerprint": self.fingerprint,
                "learned": self.learned}
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(data, f, ensure_ascii=False, indent=0)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, directory: str | Path) -> WgslVocab:
        path = Path(directory) / VOCAB_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise WgslError(f"{path}: not found: save a vocabulary there first (WgslVocab.save)") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise WgslError(f"{path}: unreadable ({type(e).__name__}): rebuild the vocabulary") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT_VERSION or not isinstance(
                data.get("learned"), list) or not all(isinstance(t, str) for t in data["learned"]):
            raise WgslError(f"{path}: not a format-{FORMAT_VERSION} WGSL vocabulary: rebuild it")
        vocab = cls(data["learned"])
        if data.get("base_size") != len(base_tokens()) or data.get("fingerprint") != vocab.fingerprint:
            raise WgslError(f"{path}: written by a different lexer version (the ids would shift): rebuild it")
        return vocab
