"""Chat modes beyond conversation: one prompt and a checkpoint in, one checked artifact out (no UI).

The Chat tab's built-in modes ("chat" with the template, "continue" raw) hold a conversation with a
`ChatSession`. A registered `ChatMode` is a one-shot generator instead: `run(request)` gets the prompt, the
checkpoint path and the sampling settings, and returns a `ModeResult`: the text, the language to highlight
it as, and the validation lines (what a checker said about it). A TCT model sampling GitHub workflows, or a
shader model whose output a validator checks, fits this shape; the screen shows the text highlighted with the
lines under it, and `validation_ok` colours them.

Core code and plugins add modes the same way, through the registry:
`registry.register_chat_mode(ChatMode("workflow", "workflow (YAML)", run, claims=is_tct_checkpoint))`.
A mode's `claims(checkpoint)` says a checkpoint is meant for it (it then opens in that mode); `run` is called
on a worker thread and may load the model itself (`cached_load` keeps the last one loaded per mode), so it must
not touch the UI. Bad input (a checkpoint the mode cannot use, a prompt it cannot parse) raises a one-line
`AppError` or `EngineError`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BUILTIN_MODES = ("chat", "continue")  # the conversational modes of services/checkpoints/chat.py


@dataclass(frozen=True)
class ModeRequest:
    """What a mode is asked to do: complete `prompt` ("" for none) with the checkpoint at `checkpoint`."""

    prompt: str
    checkpoint: Path  # a checkpoint dir (its latest step) or a model_XXXXXX.pt file
    device: str = "cpu"
    temperature: float = 0.8
    top_k: int | None = 50
    max_tokens: int = 256
    seed: int = 42
    stop: threading.Event = field(default_factory=threading.Event, compare=False)  # set: end early


@dataclass(frozen=True)
class ModeResult:
    """A mode's answer: `text` highlighted as `language` ("" for plain), and what validating it said."""

    text: str
    language: str = ""
    validation: tuple[str, ...] = ()  # one line each, shown under the text in order
    ok: bool | None = None  # True: it validated; False: it did not; None: nothing was checked
    stats: str = ""  # one line: tokens, time, ... (optional)


@dataclass(frozen=True)
class ChatMode:
    name: str  # lowercase id: the Select value, the UI state, `--mode` (letters, digits, _)
    label: str  # what the mode selector shows
    run: Callable[[ModeRequest], ModeResult]
    help: str = ""
    claims: Callable[[Path], bool] | None = None  # checkpoint -> is it meant for this mode?
    prompt_hint: str = ""  # placeholder of the prompt box in this mode


def mode_for_checkpoint(modes: list[ChatMode], checkpoint: str | Path) -> str | None:
    """The first registered mode that claims `checkpoint`, or None (a claim that raises counts as no)."""
    path = Path(checkpoint).expanduser()
    for mode in modes:
        if mode.claims is None:
            continue
        try:
            if mode.claims(path):
                return mode.name
        except Exception:  # noqa: BLE001 - a plugin's check must never break loading a checkpoint
            continue
    return None


def run_mode(mode: ChatMode, request: ModeRequest) -> ModeResult:
    """Run `mode` and check that it kept its side of the contract (a ModeResult)."""
    from nanochat_cli.errors import AppError

    result = mode.run(request)
    if not isinstance(result, ModeResult):
        raise AppError(f"chat mode {mode.name!r}: returned {type(result).__name__}, not a ModeResult: fix the "
                       "mode's run function")
    return result


_CACHE: dict[str, tuple[tuple[str, str], Any]] = {}
_CACHE_LOCK = threading.Lock()


def cached_load(mode: str, checkpoint: Path, device: str, load: Callable[[Path, str], Any]) -> Any:
    """`load(checkpoint, device)`, kept per mode until another checkpoint or device is asked for, so each
    request of a mode with the same model does not reload its weights."""
    path = Path(checkpoint).expanduser().resolve()
    try:  # a dir's mtime moves when a new step is saved in it: load that one then
        stamp = str(path.stat().st_mtime_ns)
    except OSError:
        stamp = ""
    key = (f"{path}@{stamp}", device)
    with _CACHE_LOCK:
        hit = _CACHE.get(mode)
        if hit is not None and hit[0] == key:
            return hit[1]
    value = load(Path(checkpoint).expanduser(), device)
    with _CACHE_LOCK:
        _CACHE[mode] = (key, value)
    return value
