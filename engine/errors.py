"""The engine's one user-facing error type (torch-free so the TUI can import it cheaply)."""


class EngineError(Exception):
    """A user-facing failure: one line that names the thing and the fix. Never a traceback."""
