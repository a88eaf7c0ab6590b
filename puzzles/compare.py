"""First-difference comparisons: each returns None when equal, else one line naming where they part.

"cos differs at [0, 3, 0, 17]: 0.5103 vs 0.4987" (yours vs the oracle's), "group 3 (x0_lambdas) is missing
x0_lambdas", "ids differ at 17: 305 vs 12". The checks build on these so every failure reads the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch


def _fmt(x: Any) -> str:
    if isinstance(x, float):
        return f"{x:.6g}" if abs(x) >= 1e-3 or x == 0 else f"{x:.4e}"
    return repr(x)


def tensors(name: str, got: Any, want: torch.Tensor, atol: float = 0.0, rtol: float = 0.0,
            check_dtype: bool = True) -> str | None:
    """Shape, dtype, then the first element (in row-major order) outside atol + rtol·|want|."""
    if not isinstance(got, torch.Tensor):
        return f"{name} is a {type(got).__name__}, expected a tensor of shape {list(want.shape)}"
    if tuple(got.shape) != tuple(want.shape):
        return f"{name} has shape {list(got.shape)}, expected {list(want.shape)}"
    if check_dtype and got.dtype != want.dtype:
        return f"{name} has dtype {got.dtype}, expected {want.dtype}"
    if got.dtype == torch.bool or not got.is_floating_point():
        bad = got.cpu() != want.cpu()
    else:
        a, b = got.detach().double().cpu(), want.detach().double().cpu()
        bad = ((a - b).abs() > atol + rtol * b.abs()) | (a.isnan() != b.isnan())
    if not bad.any():
        return None
    index = [int(i) for i in torch.nonzero(bad)[0]]
    g, w = got[tuple(index)].item(), want[tuple(index)].item()
    where = f"[{', '.join(map(str, index))}]"
    total = int(bad.sum())
    more = f" ({total} of {bad.numel()} elements differ)" if total > 1 else ""
    return f"{name} differs at {where}: {_fmt(g)} vs {_fmt(w)}{more}"


def sequences(name: str, got: Any, want: Sequence, describe: Any = None) -> str | None:
    """Lists/tuples element by element; `describe(x)` adds a readable form of a differing element."""
    if not isinstance(got, (list, tuple)):
        return f"{name} is a {type(got).__name__}, expected a list of {len(want)}"
    for i, (g, w) in enumerate(zip(got, want, strict=False)):
        if g != w:
            extra = f" ({describe(g)} vs {describe(w)})" if describe else ""
            return f"{name} differs at {i}: {_fmt(g)} vs {_fmt(w)}{extra}"
    if len(got) != len(want):
        return f"{name} has {len(got)} items, expected {len(want)}" + (
            f": the first extra is {_fmt(got[len(want)])}" if len(got) > len(want) else
            f": the first missing is {_fmt(want[len(got)])}")
    return None


def scalars(name: str, got: Any, want: float, atol: float = 0.0, rtol: float = 0.0) -> str | None:
    try:
        g = float(got)
    except (TypeError, ValueError):
        return f"{name} is {got!r}, expected a number ({_fmt(want)})"
    if not abs(g - want) <= atol + rtol * abs(want):
        return f"{name} differs: {_fmt(g)} vs {_fmt(float(want))}"
    return None


def mappings(name: str, got: Any, want: dict) -> str | None:
    """Dicts: a missing key, an extra key, then the first differing value (values compared with ==)."""
    if not isinstance(got, dict):
        return f"{name} is a {type(got).__name__}, expected a dict"
    for key in want:
        if key not in got:
            return f"{name} is missing {key!r}"
    for key in got:
        if key not in want:
            return f"{name} has an extra key {key!r}"
    for key, w in want.items():
        if got[key] != w:
            return f"{name}[{key!r}] differs: {_fmt(got[key])} vs {_fmt(w)}"
    return None
