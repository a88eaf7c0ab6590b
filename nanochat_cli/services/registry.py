"""The plugin registry: config categories today (panels, screens and telemetry sources come later).

The config schema registers its core categories here at import; a plugin adds its own with
`REGISTRY.register_category("myplugin", MyPluginConfig)`. Every consumer (field specs, prefabs,
diff, CLI, TUI) reads categories from here, so a registered category shows up everywhere at once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pydantic import BaseModel

from engine.errors import EngineError

_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class Category:
    name: str
    model: type[BaseModel]  # one pydantic model; its fields are the category's fields
    help: str = ""
    builtin: bool = False  # core categories cannot be unregistered


class Registry:
    def __init__(self) -> None:
        self._categories: dict[str, Category] = {}
        self.order: list[str] = []  # live list of category names, core first then plugins
        self.version = 0  # bumped on every change so derived caches know to rebuild

    def register_category(self, name: str, model: type[BaseModel], help: str = "", *, builtin: bool = False) -> None:
        """Add a config category. Its model must forbid extra keys and give every field a default."""
        if not _NAME_RE.match(name):
            raise EngineError(f"category {name!r}: invalid name: use lowercase letters, digits and _")
        if name in self._categories:
            raise EngineError(f"category {name!r}: already registered: pick another name for the plugin's category")
        if model.model_config.get("extra") != "forbid":
            raise EngineError(f"category {name!r}: {model.__name__} must set extra='forbid' so typos in prefabs "
                              "are caught")
        required = [f for f, info in model.model_fields.items() if info.is_required()]
        if required:
            raise EngineError(f"category {name!r}: fields {', '.join(required)} have no default: give every field "
                              "a default so a prefab can leave it out")
        self._categories[name] = Category(name, model, help, builtin)
        self.order.append(name)
        self.version += 1

    def unregister_category(self, name: str) -> None:
        cat = self._categories.get(name)
        if cat is None:
            raise EngineError(f"category {name!r}: not registered")
        if cat.builtin:
            raise EngineError(f"category {name!r}: core categories cannot be removed")
        del self._categories[name]
        self.order.remove(name)
        self.version += 1

    def categories(self) -> list[Category]:
        return [self._categories[n] for n in self.order]

    def get(self, name: str) -> Category | None:
        return self._categories.get(name)


REGISTRY = Registry()
