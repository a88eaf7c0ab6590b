"""Render functions of the three MegaContext panels: each takes a view of the run's `megacontext` events
(`.events(kind, last)`, `.width`, `.height`) and returns the panel's text. Plain strings, so they are tested
without a terminal and the app's "plugin" panel kind draws them."""

from __future__ import annotations

from typing import Any

from nanochat_plugins.megacontext.tree import LOD_LEGEND

SPARK = " ▁▂▃▄▅▆▇█"
NO_DATA = "no MegaContext telemetry yet (megacontext.enabled=true starts it)"


def _latest(view: Any) -> Any:
    events = view.events("context", last=1)
    return events[-1] if events else None


def render_lod(view: Any) -> str:
    """The working context's LOD map, one character per block of the document, wrapped to the width."""
    ev = _latest(view)
    if ev is None:
        return NO_DATA
    d = ev.data
    lod = str(d.get("lod", ""))
    width = max(8, view.width)
    rows = [lod[i:i + width] for i in range(0, len(lod), width)] or [""]
    head = (f"step {ev.step}  {d.get('slots', '?')}/{d.get('budget', '?')} positions  "
            f"{len(lod)} blocks of {d.get('block_size', 32)} tokens")
    room = max(1, view.height - 3)
    if len(rows) > room:  # the newest part matters most: keep the end
        rows = ["…" + rows[-room][1:]] + rows[-room + 1:] if room > 1 else rows[-1:]
    return "\n".join([head, *rows, LOD_LEGEND[:width * 2]])


def _bar(part: float, whole: float, width: int) -> str:
    filled = 0 if whole <= 0 else round(width * min(1.0, part / whole))
    return "█" * filled + "░" * (width - filled)


def sparkline(values: list[float], width: int) -> str:
    values = values[-width:]
    if not values:
        return ""
    top = max(values) or 1.0
    return "".join(SPARK[min(len(SPARK) - 1, round((len(SPARK) - 1) * v / top))] for v in values)


def render_residency(view: Any) -> str:
    """Resident vs swapped blocks now (a gauge), the resident share over the last steps, swap-in/out."""
    events = view.events("context")
    if not events:
        return NO_DATA
    d = events[-1].data
    resident, swapped = int(d.get("resident", 0)), int(d.get("swapped", 0))
    total = resident + swapped
    width = max(10, view.width - 2)
    share = [e.data.get("resident", 0) / max(1, e.data.get("resident", 0) + e.data.get("swapped", 0))
             for e in events]
    swaps_in = sum(int(e.data.get("swap_in", 0)) for e in events)
    swaps_out = sum(int(e.data.get("swap_out", 0)) for e in events)
    lines = [
        f"resident {resident} / {total} blocks ({100 * resident / max(1, total):.0f}%)  swapped {swapped}",
        _bar(resident, total, width),
        f"positions {d.get('slots', '?')}/{d.get('budget', '?')}",
        _bar(float(d.get("slots", 0)), float(d.get("budget", 1)), width),
        f"step {events[-1].step}: swap-in {d.get('swap_in', 0)}  swap-out {d.get('swap_out', 0)}  "
        f"(last {len(events)} steps: in {swaps_in}, out {swaps_out})",
        "resident share, oldest → newest:",
        sparkline(share, width),
    ]
    losses = [(k, d[k]) for k in ("mc_loss", "trunc_loss", "full_loss", "delta_nll") if k in d]
    if losses:
        lines.append("  ".join(f"{k} {v:.3f}" for k, v in losses))
    return "\n".join(lines[:max(1, view.height)])


def describe_action(step: Any, a: dict) -> str:
    level = {0: "raw", 1: "gist", 2: "L2 gist"}
    if a.get("op") == "expand":
        what = f"{level.get(a.get('level'), '?')} → {'raw' if a.get('level') == 1 else 'gists'}"
    else:
        what = f"→ {level.get(a.get('level'), '?')}"
    return f"step {step} {a.get('op', '?'):8} block {a.get('block', '?'):>4} {what:14} score {a.get('score', 0):+.3f}"


def render_actions(view: Any) -> str:
    """The allocator's expand/collapse actions with their LensNet scores, newest last."""
    events = view.events("context")
    if not events:
        return NO_DATA
    lines = [describe_action(e.step, a) for e in events for a in e.data.get("actions", [])]
    if not lines:
        return f"no expand/collapse actions in the last {len(events)} steps (scores within the thresholds)"
    return "\n".join(lines[-max(1, view.height):])
