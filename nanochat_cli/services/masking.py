"""Known secret values are masked out of everything the app writes or prints: log records, crash dumps,
tracebacks, the CLI's stdout/stderr.

"Known" means: the values of the secret env vars (W&B, Hugging Face) as they are now, plus every value
this process has read from, written to or been handed for the secret store (SecretStore calls
remember_secret). A secret that never entered the process cannot be in its output, so masking those is
complete without reading the keyring on every log line.

Masking is plain substring replacement, longest value first. Values shorter than MIN_SECRET_CHARS are
ignored: real tokens are 33+ characters, and masking a 3-letter value would garble unrelated text.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TextIO

SECRET_ENV_VARS = ("WANDB_API_KEY", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")
MASK = "***"
MIN_SECRET_CHARS = 8


class SecretMasker:
    def __init__(self, env_vars: tuple[str, ...] = SECRET_ENV_VARS) -> None:
        self.env_vars = env_vars
        self._known: set[str] = set()
        self._lock = threading.Lock()

    def remember(self, value: str | None) -> None:
        """Mask `value` from now on (a secret read from, stored in or typed for the secret store)."""
        value = (value or "").strip()
        if len(value) >= MIN_SECRET_CHARS:
            with self._lock:
                self._known.add(value)

    def values(self) -> list[str]:
        """Every value to mask, longest first (so a secret containing another is masked whole)."""
        env = (os.environ.get(name, "").strip() for name in self.env_vars)
        with self._lock:
            found = self._known | {v for v in env if len(v) >= MIN_SECRET_CHARS}
        return sorted(found, key=len, reverse=True)

    def mask(self, text: str) -> str:
        for value in self.values():
            if value in text:
                text = text.replace(value, MASK)
        return text

    def mask_data(self, obj: Any) -> Any:
        """A copy of `obj` with every string in it masked: str, dict keys and values, list/tuple items and
        dataclass fields (a rich Trace, say), recursively; other values are returned as they are."""
        values = self.values()
        if not values:
            return obj

        def walk(o: Any) -> Any:
            if isinstance(o, str):
                for value in values:
                    if value in o:
                        o = o.replace(value, MASK)
                return o
            if isinstance(o, dict):
                return {walk(k): walk(v) for k, v in o.items()}
            if isinstance(o, list | tuple):
                return type(o)(walk(v) for v in o) if not hasattr(o, "_fields") else type(o)(*(walk(v) for v in o))
            if dataclasses.is_dataclass(o) and not isinstance(o, type):
                return dataclasses.replace(
                    o, **{f.name: walk(getattr(o, f.name)) for f in dataclasses.fields(o) if f.init}
                )
            return o

        return walk(obj)


MASKER = SecretMasker()  # the process-wide one: SecretStore feeds it, logs/tracebacks/streams read it


def remember_secret(value: str | None) -> None:
    MASKER.remember(value)


def mask(text: str) -> str:
    return MASKER.mask(text)


def mask_data(obj: Any) -> Any:
    return MASKER.mask_data(obj)


class MaskingStream:
    """A text stream that masks known secrets in what is written, then passes it to the real stream.

    `target` is the stream, or a callable returning it at each write (so it follows sys.stderr when
    something swaps it). Everything else (isatty, fileno, encoding, buffer ...) is the target's.
    A secret split across two write() calls is not seen; print() and traceback writes keep a line whole.
    """

    def __init__(self, target: TextIO | Callable[[], TextIO], masker: SecretMasker = MASKER) -> None:
        self._target = target
        self._masker = masker

    @property
    def target(self) -> TextIO:
        return self._target() if callable(self._target) and not hasattr(self._target, "write") else self._target

    def write(self, text: str) -> int:
        self.target.write(self._masker.mask(text))
        return len(text)  # what the caller handed over, as TextIO.write reports

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        self.target.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.target, name)


@contextmanager
def masked_std_streams() -> Iterator[None]:
    """Mask known secrets in everything written to sys.stdout and sys.stderr inside the block (the CLI)."""
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = MaskingStream(saved[0]), MaskingStream(saved[1])
    try:
        yield
    finally:
        if isinstance(sys.stdout, MaskingStream):
            sys.stdout = saved[0]
        if isinstance(sys.stderr, MaskingStream):
            sys.stderr = saved[1]
