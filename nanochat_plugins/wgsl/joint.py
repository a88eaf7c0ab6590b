"""One token space for prompt and shader: the engine's BPE for natural language, the WGSL vocabulary for code.

    ids [0, n_bpe)                          the BPE (with its special tokens: <|bos|>, <|user_start|> ...)
    ids [n_bpe, n_bpe + n_wgsl)             the WGSL vocabulary (vocab.py), shifted by n_bpe
    ids [n_bpe + n_wgsl, vocab_size)        the pair's own specials: <|wgsl_start|>, <|wgsl_end|>

A training pair renders as

    <|bos|> <|user_start|> prompt… <|user_end|> <|wgsl_start|> shader… <|wgsl_end|>

with a loss mask of 1 on the shader's tokens and on <|wgsl_end|> (the model learns to write the shader and
to stop), 0 elsewhere. Generation primes the model with `render_prompt` (everything up to <|wgsl_start|>)
and reads the reply back with `decode_shader`.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path

from engine.tokenizer import Tokenizer
from nanochat_plugins.wgsl.errors import WgslError
from nanochat_plugins.wgsl.vocab import WgslVocab

WGSL_START, WGSL_END = "<|wgsl_start|>", "<|wgsl_end|>"
SPECIALS = (WGSL_START, WGSL_END)
JOINT_FILE = "joint.json"
FORMAT_VERSION = 1


def train_nl_bpe(prompts: Iterable[str], vocab_size: int, lowercase: bool = False) -> Tokenizer:
    """A BPE for the prompts, trained with the engine's tokenizer trainer (rustbpe)."""
    texts = [p.lower() if lowercase else p for p in prompts]
    if not texts:
        raise WgslError("tokenizer: no prompts to train the natural-language BPE on: generate the dataset first")
    return Tokenizer.train_from_iterator(texts, vocab_size)


def build(prompts: Iterable[str], shaders: Iterable[str], nl_vocab_size: int = 512, lowercase: bool = False,
          min_freq: int = 1) -> JointTokenizer:
    """The tokenizer a [tokenizer] config section describes, learned from a dataset's (train) pairs:
    `build(..., **cfg.tokenizer.model_dump(exclude={"tokenizer_type", "max_length"}))`."""
    return JointTokenizer(train_nl_bpe(prompts, nl_vocab_size, lowercase), WgslVocab.build(shaders, min_freq),
                          lowercase)


class JointTokenizer:
    """The BPE and the WGSL vocabulary side by side; see the module docstring for the layout."""

    def __init__(self, nl: Tokenizer, wgsl: WgslVocab, lowercase: bool = False):
        self.nl = nl
        self.wgsl = wgsl
        self.lowercase = lowercase
        self.wgsl_offset = nl.get_vocab_size()
        self.special_offset = self.wgsl_offset + len(wgsl)
        self.vocab_size = self.special_offset + len(SPECIALS)
        self.bos_id = nl.get_bos_token_id()

    # ---- ids

    def special(self, name: str) -> int:
        """Id of a special token: the pair's own (<|wgsl_start|>, <|wgsl_end|>) or one of the BPE's."""
        if name in SPECIALS:
            return self.special_offset + SPECIALS.index(name)
        return self.nl.encode_special(name)

    def is_shader_id(self, i: int) -> bool:
        return self.wgsl_offset <= i < self.special_offset

    def encode_prompt(self, prompt: str) -> list[int]:
        return self.nl.encode(prompt.lower() if self.lowercase else prompt)

    def encode_shader(self, source: str) -> list[int]:
        return [self.wgsl_offset + i for i in self.wgsl.encode(source)]

    # ---- pairs

    def render_prompt(self, prompt: str) -> list[int]:
        """What primes the model to write a shader: the pair up to and including <|wgsl_start|>."""
        return [self.bos_id, self.special("<|user_start|>"), *self.encode_prompt(prompt),
                self.special("<|user_end|>"), self.special(WGSL_START)]

    def render_pair(self, prompt: str, shader: str, max_tokens: int | None = None) -> tuple[list[int], list[int]]:
        """(ids, mask) of one training pair; mask[i] = 1 where token i is learned (the shader and its end)."""
        head = self.render_prompt(prompt)
        body = self.encode_shader(shader) + [self.special(WGSL_END)]
        ids = head + body
        if max_tokens is not None and len(ids) > max_tokens:
            raise WgslError(f"pair of {len(ids)} tokens: over tokenizer.max_length={max_tokens}: raise "
                            f"tokenizer.max_length (a cut pair would teach the model to stop mid-shader)")
        return ids, [0] * len(head) + [1] * len(body)

    def decode_shader(self, ids: Iterable[int]) -> str:
        """The WGSL in `ids`: after the last <|wgsl_start|> (if any), up to <|wgsl_end|>; other ids are dropped."""
        ids = list(ids)
        start = self.special(WGSL_START)
        if start in ids:
            ids = ids[len(ids) - ids[::-1].index(start):]
        end = self.special(WGSL_END)
        if end in ids:
            ids = ids[:ids.index(end)]
        return self.wgsl.decode(i - self.wgsl_offset for i in ids if self.is_shader_id(i))

    def decode(self, ids: Iterable[int]) -> str:
        """Every id as text: BPE runs through the BPE, shader runs through the vocabulary, specials by name."""
        parts: list[str] = []
        run: list[int] = []
        side = ""

        def flush() -> None:
            if run:
                parts.append(self.nl.decode(run) if side == "nl" else
                             self.wgsl.decode(i - self.wgsl_offset for i in run))
                run.clear()

        for i in ids:
            if not 0 <= i < self.vocab_size:
                raise WgslError(f"token id {i}: out of range: use an id in [0, {self.vocab_size})")
            if i >= self.special_offset:
                flush()
                parts.append(SPECIALS[i - self.special_offset])
                continue
            now = "wgsl" if i >= self.wgsl_offset else "nl"
            if now != side:
                flush()
                side = now
            run.append(i)
        flush()
        return "".join(parts)

    # ---- identity and storage

    @property
    def fingerprint(self) -> str:
        """Equal fingerprints mean equal ids: a checkpoint can check the tokenizer it is given."""
        h = hashlib.sha256(f"joint-v{FORMAT_VERSION}|{self.nl.fingerprint}|{self.wgsl.fingerprint}|"
                           f"{self.lowercase}|{'|'.join(SPECIALS)}".encode())
        return h.hexdigest()[:16]

    def save(self, directory: str | Path) -> Path:
        """The BPE (tokenizer.pkl, token_bytes.pt), the WGSL vocabulary and joint.json (written last: it marks
        a complete directory)."""
        directory = Path(directory)
        self.nl.save(directory)
        self.wgsl.save(directory)
        meta = {"format": FORMAT_VERSION, "lowercase": self.lowercase, "specials": list(SPECIALS),
                "vocab_size": self.vocab_size, "fingerprint": self.fingerprint}
        path = directory / JOINT_FILE
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(meta, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> JointTokenizer:
        path = Path(directory) / JOINT_FILE
        try:
            meta = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise WgslError(f"{path}: not found: point at a folder written by JointTokenizer.save") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise WgslError(f"{path}: unreadable ({type(e).__name__}): rebuild the tokenizer") from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT_VERSION:
            raise WgslError(f"{path}: not a format-{FORMAT_VERSION} joint tokenizer: rebuild it")
        tok = cls(Tokenizer.from_directory(directory), WgslVocab.load(directory), bool(meta.get("lowercase")))
        if meta.get("fingerprint") != tok.fingerprint or meta.get("specials") != list(SPECIALS):
            raise WgslError(f"{path}: its parts do not match what it recorded (fingerprint {meta.get('fingerprint')}"
                            f", now {tok.fingerprint}): rebuild the tokenizer")
        return tok
