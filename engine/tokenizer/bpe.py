"""The BPE tokenizer: trained with rustbpe, served with tiktoken, stored the nanochat way.

A tokenizer directory holds `tokenizer.pkl` (a pickled `tiktoken.Encoding`, exactly what stock
nanochat writes, so its directories load here and ours load there) and `token_bytes.pt` (UTF-8
bytes per token id, 0 for special tokens; the denominator of bits-per-byte).
The chat rendering (`render_conversation`) follows nanochat's conventions so SFT data and
inference prompts tokenize the same way.
"""

from __future__ import annotations

import hashlib
import io
import pickle
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import rustbpe
import tiktoken

from engine.errors import EngineError
from engine.shared import atomic_write

# GPT-4's split pattern, except that numbers split into groups of 1-2 digits (not 1-3):
# fewer number tokens is a better trade for a small vocabulary.
SPLIT_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,2}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+"""
)

# Order matters: they take the ids right after the mergeable ranks.
SPECIAL_TOKENS = [
    "<|bos|>",  # starts every document
    "<|user_start|>", "<|user_end|>",
    "<|assistant_start|>", "<|assistant_end|>",
    "<|python_start|>", "<|python_end|>",  # the assistant calls the python tool
    "<|output_start|>", "<|output_end|>",  # the tool's output, written back into the stream
]

TOKENIZER_FILE = "tokenizer.pkl"
TOKEN_BYTES_FILE = "token_bytes.pt"

# The only globals a tokenizer.pkl may reference (pickle protocols 2-5); anything else is refused,
# so a tampered file cannot run code on load.
_PICKLE_ALLOWED = {("tiktoken.core", "Encoding"), ("_codecs", "encode")}


class _EncodingUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _PICKLE_ALLOWED:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a tokenizer file")
        return super().find_class(module, name)


def limit_chars(texts: Iterable[str], max_chars: int, doc_cap: int = 10_000) -> Iterator[str]:
    """Yield texts until `max_chars` characters in total; each document is cut to `doc_cap`
    characters so a few huge documents cannot dominate the merge statistics."""
    total = 0
    for text in texts:
        text = text[: min(doc_cap, max_chars - total)]
        if text:
            total += len(text)
            yield text
        if total >= max_chars:
            return


class Tokenizer:
    """A tiktoken Encoding with nanochat's special tokens, plus training, storage and chat rendering."""

    def __init__(self, enc: tiktoken.Encoding, token_bytes: Any = None):
        missing = [s for s in SPECIAL_TOKENS if s not in enc.special_tokens_set]
        if missing:
            raise EngineError(f"tokenizer: special tokens {missing} are missing: use a tokenizer trained by "
                              f"engine.tok_train or stock nanochat")
        self.enc = enc
        self.bos_id = enc.encode_single_token("<|bos|>")
        self._token_bytes = token_bytes
        self._fingerprint: str | None = None
        self.directory: Path | None = None  # where it was loaded from or last saved to

    # ---- training and storage

    @classmethod
    def train_from_iterator(cls, text_iter: Iterable[str], vocab_size: int) -> Tokenizer:
        """Learn `vocab_size - len(SPECIAL_TOKENS)` byte-level BPE tokens, then add the specials."""
        n_learned = vocab_size - len(SPECIAL_TOKENS)
        if n_learned < 256:
            raise EngineError(f"vocab_size={vocab_size}: must be at least {256 + len(SPECIAL_TOKENS)} "
                              f"(256 bytes + {len(SPECIAL_TOKENS)} special tokens): raise vocab_size")
        bpe = rustbpe.Tokenizer()
        bpe.train_from_iterator(iter(text_iter), n_learned, pattern=SPLIT_PATTERN)
        ranks = {bytes(token): rank for token, rank in bpe.get_mergeable_ranks()}
        if len(ranks) < n_learned:
            raise EngineError(f"vocab_size={vocab_size}: the training text only supports {len(ranks)} tokens "
                              f"(+{len(SPECIAL_TOKENS)} special): give more text or lower vocab_size")
        specials = {name: len(ranks) + i for i, name in enumerate(SPECIAL_TOKENS)}
        enc = tiktoken.Encoding(name="rustbpe", pat_str=bpe.get_pattern(), mergeable_ranks=ranks,
                                special_tokens=specials)
        return cls(enc)

    @classmethod
    def from_directory(cls, directory: str | Path) -> Tokenizer:
        directory = Path(directory).expanduser()
        pkl = directory / TOKENIZER_FILE
        if not pkl.is_file():
            raise EngineError(f"tokenizer dir {directory}: no {TOKENIZER_FILE}: point tokenizer_dir at a folder "
                              f"written by engine.tok_train (or leave it unset to train one)")
        try:
            with open(pkl, "rb") as f:
                enc = _EncodingUnpickler(f).load()
        except Exception as e:  # any unpickling failure means the same thing to the user
            raise EngineError(f"tokenizer file {pkl}: unreadable ({type(e).__name__}: {e}): "
                              f"delete the folder and retrain with engine.tok_train") from None
        if not isinstance(enc, tiktoken.Encoding):
            raise EngineError(f"tokenizer file {pkl}: holds a {type(enc).__name__}, not a tiktoken Encoding: "
                              f"delete the folder and retrain with engine.tok_train")
        token_bytes = None
        tb_path = directory / TOKEN_BYTES_FILE
        if tb_path.is_file():  # stock nanochat's file is kept as is, so bits-per-byte match its numbers
            import torch
            try:
                token_bytes = torch.load(tb_path, map_location="cpu", weights_only=True)
            except Exception as e:
                raise EngineError(f"tokenizer file {tb_path}: unreadable ({type(e).__name__}): delete it "
                                  f"(it is recomputed from {TOKENIZER_FILE})") from None
            if not (isinstance(token_bytes, torch.Tensor) and token_bytes.shape == (enc.n_vocab,)):
                raise EngineError(f"tokenizer file {tb_path}: expected a tensor of shape [{enc.n_vocab}]: "
                                  f"delete it (it is recomputed from {TOKENIZER_FILE})")
            token_bytes = token_bytes.to(torch.int32)
        tok = cls(enc, token_bytes)
        tok.directory = directory
        return tok

    def save(self, directory: str | Path) -> Path:
        """Write token_bytes.pt then tokenizer.pkl, each atomically; tokenizer.pkl marks a complete dir."""
        import torch

        directory = Path(directory).expanduser()
        directory.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        torch.save(self.token_bytes(), buf)
        atomic_write(directory / TOKEN_BYTES_FILE, buf.getvalue())
        atomic_write(directory / TOKENIZER_FILE, pickle.dumps(self.enc))
        self.directory = directory
        return directory

    # ---- vocabulary

    def get_vocab_size(self) -> int:
        return self.enc.n_vocab

    def get_bos_token_id(self) -> int:
        return self.bos_id

    def get_special_tokens(self) -> list[str]:
        """Special token names in id order."""
        return sorted(self.enc.special_tokens_set, key=self.enc.encode_single_token)

    def encode_special(self, name: str) -> int:
        if name not in self.enc.special_tokens_set:
            raise EngineError(f"special token {name!r}: unknown: use one of {self.get_special_tokens()}")
        return self.enc.encode_single_token(name)

    def id_to_token(self, token_id: int) -> str:
        return self.enc.decode([token_id])

    def token_bytes(self):
        """torch.int32 tensor [vocab]: UTF-8 bytes of each token, 0 for special tokens."""
        if self._token_bytes is None:
            import torch

            specials = {self.enc.encode_single_token(s) for s in self.enc.special_tokens_set}
            counts = [0 if i in specials else len(self.enc.decode_single_token_bytes(i))
                      for i in range(self.enc.n_vocab)]
            self._token_bytes = torch.tensor(counts, dtype=torch.int32)
        return self._token_bytes

    @property
    def fingerprint(self) -> str:
        """16 hex chars of sha256 over the split pattern, every token's bytes and the special tokens.
        Equal fingerprints mean equal token ids, so a checkpoint can check its tokenizer."""
        if self._fingerprint is None:
            h = hashlib.sha256(self.enc._pat_str.encode())
            for name in self.get_special_tokens():
                h.update(f"\0{name}={self.enc.encode_single_token(name)}".encode())
            for i in range(self.enc.n_vocab):  # length-prefixed, so the byte stream is unambiguous
                try:
                    token = self.enc.decode_single_token_bytes(i)
                    h.update(len(token).to_bytes(4, "little") + token)
                except KeyError:  # a gap in the ids
                    h.update(b"\xff" * 4)
            self._fingerprint = h.hexdigest()[:16]
        return self._fingerprint

    # ---- encode / decode

    def _special_id(self, token: int | str) -> int:
        if isinstance(token, str):
            return self.encode_special(token)
        if not 0 <= token < self.enc.n_vocab:
            raise EngineError(f"token id {token}: out of range: use an id in [0, {self.enc.n_vocab})")
        return token

    def encode(self, text: str | list[str], prepend: int | str | None = None, append: int | str | None = None,
               num_threads: int = 8) -> list[int] | list[list[int]]:
        """Encode text (special-token strings inside it are plain text). A list encodes in parallel and
        returns one id list per text; prepend/append (a special token name or an id) go on each."""
        head = [] if prepend is None else [self._special_id(prepend)]
        tail = [] if append is None else [self._special_id(append)]
        if isinstance(text, str):
            return head + self.enc.encode_ordinary(text) + tail
        if isinstance(text, list):
            return [head + ids + tail for ids in self.enc.encode_ordinary_batch(text, num_threads=num_threads)]
        raise EngineError(f"tokenizer.encode: got {type(text).__name__}: pass a str or a list of str")

    __call__ = encode

    def decode(self, ids: list[int]) -> str:
        return self.enc.decode(ids)

    # ---- chat

    def render_conversation(self, conversation: dict, max_tokens: int = 2048) -> tuple[list[int], list[int]]:
        """Tokenize a chat for SFT: returns (ids, mask), mask 1 where the model learns (what the
        assistant writes, including its python calls and end token), 0 elsewhere (bos, user turns,
        assistant_start, tool outputs). A leading system message is merged into the first user one."""
        messages = conversation.get("messages") if isinstance(conversation, dict) else None
        if not messages:
            raise EngineError("conversation: no 'messages' list: pass {'messages': [{'role': ..., 'content': ...}]}")
        if messages[0].get("role") == "system":
            if len(messages) < 2 or messages[1].get("role") != "user":
                raise EngineError("conversation: a system message must be followed by a user message: reorder it")
            first = dict(messages[1], content=f"{messages[0]['content']}\n\n{messages[1]['content']}")
            messages = [first, *messages[2:]]

        ids: list[int] = []
        mask: list[int] = []

        def add(tokens: int | list[int], learn: int) -> None:
            tokens = [tokens] if isinstance(tokens, int) else tokens
            ids.extend(tokens)
            mask.extend([learn] * len(tokens))

        sp = self.encode_special
        add(self.bos_id, 0)
        for i, message in enumerate(messages):
            role, content = message.get("role"), message.get("content")
            expected = "user" if i % 2 == 0 else "assistant"
            if role != expected:
                raise EngineError(f"conversation message {i}: role is {role!r}, expected {expected!r}: "
                                  f"messages must alternate user/assistant (after an optional system one)")
            if role == "user":
                if not isinstance(content, str):
                    raise EngineError(f"conversation message {i}: user content must be a string")
                add(sp("<|user_start|>"), 0)
                add(self.encode(content), 0)
                add(sp("<|user_end|>"), 0)
                continue
            add(sp("<|assistant_start|>"), 0)
            parts = [{"type": "text", "text": content}] if isinstance(content, str) else content
            if not isinstance(parts, list):
                raise EngineError(f"conversation message {i}: assistant content must be a string or a list of parts")
            for part in parts:
                kind, text = part.get("type"), part.get("text", "")
                if kind == "text":
                    add(self.encode(text), 1)
                elif kind == "python":
                    add(sp("<|python_start|>"), 1)
                    add(self.encode(text), 1)
                    add(sp("<|python_end|>"), 1)
                elif kind == "python_output":  # written by the tool at inference time: not learned
                    add(sp("<|output_start|>"), 0)
                    add(self.encode(text), 0)
                    add(sp("<|output_end|>"), 0)
                else:
                    raise EngineError(f"conversation message {i}: part type {kind!r} is unknown: "
                                      f"use text, python or python_output")
            add(sp("<|assistant_end|>"), 1)
        return ids[:max_tokens], mask[:max_tokens]

    def render_for_completion(self, conversation: dict) -> list[int]:
        """Ids that prime the model to write the next assistant reply: the conversation without its
        last (assistant) message, followed by assistant_start."""
        messages = list(conversation.get("messages") or [])
        if not messages or messages[-1].get("role") != "assistant":
            raise EngineError("conversation: the last message must be the assistant's (it is dropped and "
                              "regenerated): append an assistant message")
        messages.pop()
        ids, _ = self.render_conversation({"messages": messages}, max_tokens=1 << 62)
        return ids + [self.encode_special("<|assistant_start|>")]
