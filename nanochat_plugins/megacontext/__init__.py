"""MegaContext: a virtualised context (gist tree + focus allocator) as an optional plugin.

The full history of a long document is kept as a 32-ary gist tree; a fixed-budget working context mixes raw
tokens and gists, GistNet compresses each block of 32 token embeddings into one gist, LensNet scores which
spans deserve detail and the focus allocator expands or collapses spans under the budget. Our own
implementation after the public description of brandf/MegaContext.

This file imports nothing from the app at import time: the engine process imports this package's
`extension` module (named in the run config), and that must not pull in the app. `register` does the app
side (config category, checkpoint field, engine extension, panels, layout, CLI command): see `app.py`.
"""

from __future__ import annotations

from typing import Any


def register(registry: Any) -> None:
    from nanochat_plugins.megacontext.app import register as register_app

    register_app(registry)
