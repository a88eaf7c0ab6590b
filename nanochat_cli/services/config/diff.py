"""Field-by-field difference between two resolved configs (a prefab and the user's current edits)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nanochat_cli.services.config.schema import field_specs

_MISSING = object()


@dataclass(frozen=True)
class DiffRow:
    key: str  # "category.field"
    category: str
    field: str
    base: Any
    current: Any


def diff(base: dict[str, Any], current: dict[str, Any]) -> list[DiffRow]:
    """Rows for every key whose value differs, in display order (keys outside the schema last, sorted)."""
    order = {s.key: i for i, s in enumerate(field_specs())}
    keys = sorted(set(base) | set(current), key=lambda k: (order.get(k, len(order)), k))
    rows = []
    for key in keys:
        b, c = base.get(key, _MISSING), current.get(key, _MISSING)
        if b != c:
            category, _, name = key.partition(".")
            rows.append(DiffRow(key, category, name, None if b is _MISSING else b, None if c is _MISSING else c))
    return rows
