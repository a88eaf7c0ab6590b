"""The app's user-facing error type, beside the engine's.

`AppError` is for what the app itself owns: prefabs and config values, layouts, plugins and the registry.
`engine.errors.EngineError` stays the engine's (training, data, tokenizer, checkpoints it reads or writes).
Both carry one line that names the thing and the fix; `USER_ERRORS` catches either wherever the UI or the
CLI shows that line instead of a traceback. Torch-free and dependency-free: cheap to import anywhere.
"""

from __future__ import annotations

from engine.errors import EngineError


class AppError(Exception):
    """A user-facing failure in the app's own things: one line naming the thing and the fix. Never a traceback."""


USER_ERRORS: tuple[type[Exception], ...] = (AppError, EngineError)

__all__ = ["USER_ERRORS", "AppError", "EngineError"]
