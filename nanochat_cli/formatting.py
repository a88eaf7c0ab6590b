"""Number formatting shared by the CLI and the TUI's checkpoint views (no UI library, no torch)."""

from __future__ import annotations


def file_size(n: int) -> str:
    """Bytes in binary units: '512 B', '1.5 KiB', '3.2 GiB'."""
    for div, unit in ((1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
        if n >= div:
            return f"{n / div:.1f} {unit}"
    return f"{n} B"


def count(n: float | None) -> str:
    """A count (parameters, tokens, FLOPs) in SI steps: '350.0K', '1.2M', '7.0B', '3.1T'; '-' when unknown."""
    if n is None:
        return "-"
    for div, unit in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= div:
            return f"{n / div:.1f}{unit}"
    return f"{n:.0f}"


def param_count(n: int | None) -> str:
    """A parameter count: '350.0K', '1.2M', '7.0B'; '-' when unknown."""
    return count(n)


def setting(value: object) -> str:
    """A config value in a table or a sentence: on/off for booleans, '-' for none."""
    if isinstance(value, bool):
        return "on" if value else "off"
    return "-" if value is None else str(value)
