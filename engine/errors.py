"""The engine's one user-facing error type (torch-free so the TUI can import it cheaply)."""


class EngineError(Exception):
    """A user-facing failure: one line that names the thing and the fix. Never a traceback."""


def short_repr(value: object, limit: int = 80) -> str:
    """repr() for an error line, cut to `limit` characters: a bad value from a file may be megabytes long."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text):,} characters)"
