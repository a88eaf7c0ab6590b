"""A module imported on first use, to keep a heavy import off the app's start-up path."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


class LazyModule:
    """Stands in for `import name as alias` at module level; the import happens at the first attribute access.

    numpy, for one, costs ~50 ms to import and nothing needs it before a run's metrics arrive, long after the
    first paint. Attributes are cached on the instance after the first lookup, so later uses are plain.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._module: ModuleType | None = None

    def __getattr__(self, attr: str) -> Any:  # only called for attributes not cached yet
        if self._module is None:
            self._module = importlib.import_module(self._name)
        value = getattr(self._module, attr)
        setattr(self, attr, value)
        return value
