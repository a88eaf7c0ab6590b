"""Number formatting shared by the training panels: compact, fixed-width-friendly, no clocks."""

from __future__ import annotations

import math

from nanochat_cli.formatting import count  # noqa: F401 — one count format for the app and the CLI
from nanochat_cli.services.text import duration  # noqa: F401 — one duration format for the app and the CLI


def num(x: float | None, digits: int = 4) -> str:
    """A metric value: `digits` significant figures, NaN/inf spelled out; '-' when unknown."""
    if x is None:
        return "-"
    if not math.isfinite(x):
        return "NaN" if math.isnan(x) else ("inf" if x > 0 else "-inf")
    return f"{x:.{digits}g}"


def nbytes(n: float | None) -> str:
    if n is None:
        return "-"
    for div, unit in ((1 << 40, "TiB"), (1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
        if abs(n) >= div:
            return f"{n / div:.1f} {unit}"
    return f"{n:.0f} B"


def ms(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "-"
    return f"{seconds * 1000:.1f} ms" if seconds < 10 else f"{seconds:.1f} s"
