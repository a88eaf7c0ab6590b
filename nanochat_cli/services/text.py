"""Text from a run, made safe and short for a terminal: control characters shown, durations compact.

Everything a run writes (samples, warnings, errors, names, stderr) is data: renderers print it with
Rich markup off, and `printable` first replaces control characters, so an escape sequence in a sample
can neither clear the screen nor retitle the window. Plain Python, no Rich.
"""

from __future__ import annotations

import math
import re

# C0 controls but tab and newline, DEL, C1 controls; Unicode bidi overrides (they reorder what follows)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_NAMES = {"\x1b": "\\x1b", "\r": "\\r", "\x00": "\\x00"}


def _show(m: re.Match[str]) -> str:
    ch = m.group()
    return _NAMES.get(ch) or (f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}")


def printable(text: object, *, newlines: bool = True, tabs: bool = True) -> str:
    """`text` with every control character spelled out (`\\x1b`, `\\r`, `\\u202e`); newlines kept unless
    `newlines=False` (then shown as ⏎), tabs kept unless `tabs=False` (then a space)."""
    s = text if isinstance(text, str) else str(text)
    s = _CONTROL.sub(_show, s)
    if not newlines:
        s = s.replace("\n", "⏎ ")
    if not tabs:
        s = s.replace("\t", " ")
    return s


def duration(seconds: float | None) -> str:
    """'42s', '3m05s', '2h07m'; '-' when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "-"
    s = max(0, int(round(seconds)))
    if s < 60:
        return f"{s}s"
    m, s = divmod(s, 60)
    if m < 60:
        return f"{m}m{s:02d}s"
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m"
