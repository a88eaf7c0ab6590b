"""The plugin's user-facing error: one line naming the thing, the problem and the fix.

A subclass of the engine's `EngineError`, so `nanochat-cli` (and `tiny-agent-trainer`) print it as one
error line without a traceback, and engine-facing code here (tokenizer, dataset) needs nothing from the app.
"""

from __future__ import annotations

from engine.errors import EngineError


class WgslError(EngineError):
    """A user-facing failure of the WGSL plugin: `<what>: <problem>: <fix>`."""
