"""Random formulas over WGSL's arithmetic and builtins, each as the prompt states it, as WGSL and as numpy.

The formula families draw one and write it into the prompt literally ("y = max(x, 0.3 * x)") and into the
shader, so the model learns to translate a stated formula piece by piece rather than recall a family: a
held-out operation whose prompt states its formula is then a recombination of pieces it has seen.

Numerics are kept tame so every draw matches its float64 numpy reference within the families' tolerance:
no discontinuous builtins (floor, fract, step) on computed values, `select` only tests an input against a
constant, `sqrt` / `pow` only take values kept positive, `exp` only a scaled input.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from nanochat_plugins.wgsl.templates.common import flt, pick, value

Env = dict[str, np.ndarray]


@dataclass(frozen=True)
class Leaf:
    """An input as the prompt names it (`x`, `rgb`) and as the shader reads it (`x[i]`, `c.rgb`)."""

    text: str
    wgsl: str
    lo: float  # the range of the test data
    hi: float


@dataclass(frozen=True)
class Expr:
    text: str
    wgsl: str
    fn: Callable[[Env], np.ndarray]  # float64
    pos: bool  # never below 0.05 on the test data: a safe argument for sqrt and pow
    prec: int  # 0 call or atom, 1 product, 2 sum: when an operand needs parentheses
    leaf: bool = False


def _const(v: float) -> np.float64:
    return np.float64(np.float32(v))  # the f32 the WGSL literal becomes


class Grammar:
    """Draws formulas over `leaves`. `vec` makes constants given to builtins `vec3<f32>(k)` (WGSL wants
    both sides of max, min, clamp and pow to share a type); `banned` are regular expressions no WGSL formula
    contains (anchor one to ban only a whole formula): the held-out families' own bodies stay out of training."""

    def __init__(self, leaves: list[Leaf], vec: bool = False, banned: tuple[str, ...] = ()):
        self.leaves, self.vec, self.banned = leaves, vec, banned

    def k(self, v: float) -> str:
        return f"vec3<f32>({flt(v)})" if self.vec else flt(v)

    def leaf(self, rng: np.random.Generator) -> Expr:
        lf = pick(rng, self.leaves)
        return Expr(lf.text, lf.wgsl, lambda e, n=lf.text: e[n], lf.lo >= 0.05, 0, True)

    def draw(self, rng: np.random.Generator, depth: int) -> Expr:
        for _ in range(100):
            e = self._draw(rng, depth)
            uses_all = all(lf.wgsl in e.wgsl for lf in self.leaves)  # a two-input formula reads both
            if not e.leaf and uses_all and not any(re.search(b, e.wgsl) for b in self.banned):
                return e
        raise RuntimeError("formula grammar: no acceptable draw in 100 tries")

    def _draw(self, rng: np.random.Generator, depth: int) -> Expr:
        if depth <= 0:
            return self.leaf(rng)
        a = self._draw(rng, depth - 1) if rng.random() < 0.6 else self.leaf(rng)
        kind = pick(rng, ["scale", "offset", "affine", "mul", "add", "sub", "abs", "sqrt", "exp", "max_k",
                          "min_k", "max", "min", "clamp", "pow", "mix_k", "mix", "select", "square"])
        c = value(rng, 0.1, 2.5, 2) * pick(rng, [1.0, 1.0, -1.0])
        p = lambda s, e, lim: f"({s})" if e.prec >= lim else s  # noqa: E731
        if kind == "scale":
            return Expr(f"{flt(c)} * {p(a.text, a, 2)}", f"{flt(c)} * {p(a.wgsl, a, 2)}",
                        lambda e: _const(c) * a.fn(e), a.pos and c > 0, 1)
        if kind == "offset":
            d = abs(c)
            return Expr(f"{a.text} + {flt(d)}", f"{a.wgsl} + {flt(d)}", lambda e: a.fn(e) + _const(d), a.pos, 2)
        if kind == "affine":
            d = value(rng, -1.0, 1.0, 1)
            sign, mag = ("-", -d) if d < 0 else ("+", d)
            return Expr(f"{flt(c)} * {p(a.text, a, 2)} {sign} {flt(mag)}", f"{flt(c)} * {p(a.wgsl, a, 2)} {sign} "
                        f"{flt(mag)}", lambda e: _const(c) * a.fn(e) + _const(d), False, 2)
        if kind == "square":
            return Expr(f"{p(a.text, a, 1)} * {p(a.text, a, 1)}", f"{p(a.wgsl, a, 1)} * {p(a.wgsl, a, 1)}",
                        lambda e: a.fn(e) * a.fn(e), False, 1)
        b = self._draw(rng, depth - 1) if rng.random() < 0.3 else self.leaf(rng)
        if b.text == a.text:  # max(x, x) says nothing: compare with a scaled copy instead
            s = value(rng, 0.1, 2.5, 2)
            b = Expr(f"{flt(s)} * {p(a.text, a, 2)}", f"{flt(s)} * {p(a.wgsl, a, 2)}",
                     lambda e, a=a, s=s: _const(s) * a.fn(e), a.pos, 1)
        if kind == "mul":
            return Expr(f"{p(a.text, a, 2)} * {p(b.text, b, 2)}", f"{p(a.wgsl, a, 2)} * {p(b.wgsl, b, 2)}",
                        lambda e: a.fn(e) * b.fn(e), a.pos and b.pos, 1)
        if kind == "add":
            return Expr(f"{a.text} + {b.text}", f"{a.wgsl} + {b.wgsl}", lambda e: a.fn(e) + b.fn(e),
                        a.pos and b.pos, 2)
        if kind == "sub":
            return Expr(f"{a.text} - {p(b.text, b, 2)}", f"{a.wgsl} - {p(b.wgsl, b, 2)}",
                        lambda e: a.fn(e) - b.fn(e), False, 2)
        if kind == "abs":
            return Expr(f"abs({a.text})", f"abs({a.wgsl})", lambda e: np.abs(a.fn(e)), False, 0)
        if kind == "sqrt" and a.pos:
            return Expr(f"sqrt({a.text})", f"sqrt({a.wgsl})", lambda e: np.sqrt(a.fn(e)), True, 0)
        if kind == "pow" and a.pos:
            g = value(rng, 0.3, 3.0, 1)
            return Expr(f"pow({a.text}, {flt(g)})", f"pow({a.wgsl}, {self.k(g)})",
                        lambda e: np.power(a.fn(e), _const(g)), True, 0)
        if kind == "exp":
            s = value(rng, 0.2, 1.5, 1) * pick(rng, [1.0, -1.0])
            lf = self.leaf(rng)
            return Expr(f"exp({flt(s)} * {lf.text})", f"exp({flt(s)} * {lf.wgsl})",
                        lambda e: np.exp(_const(s) * lf.fn(e)), True, 0)
        if kind in ("max_k", "min_k"):
            f, npf = kind[:3], (np.maximum if kind == "max_k" else np.minimum)
            return Expr(f"{f}({a.text}, {flt(c)})", f"{f}({a.wgsl}, {self.k(c)})",
                        lambda e: npf(a.fn(e), _const(c)), kind == "max_k" and c >= 0.05 or a.pos and c >= 0.05, 0)
        if kind in ("max", "min"):
            npf = np.maximum if kind == "max" else np.minimum
            return Expr(f"{kind}({a.text}, {b.text})", f"{kind}({a.wgsl}, {b.wgsl})",
                        lambda e: npf(a.fn(e), b.fn(e)), a.pos and b.pos, 0)
        if kind == "clamp":
            lo = value(rng, -1.0, 0.5, 1)
            hi = lo + value(rng, 0.2, 2.0, 1)
            return Expr(f"clamp({a.text}, {flt(lo)}, {flt(hi)})", f"clamp({a.wgsl}, {self.k(lo)}, {self.k(hi)})",
                        lambda e: np.clip(a.fn(e), _const(lo), _const(hi)), lo >= 0.05, 0)
        if kind in ("mix_k", "mix"):
            t = value(rng, 0.05, 0.95, 2)
            if kind == "mix_k":
                b = Expr(flt(c), self.k(c), lambda e: _const(c), c >= 0.05, 0)
            return Expr(f"mix({a.text}, {b.text}, {flt(t)})", f"mix({a.wgsl}, {b.wgsl}, {flt(t)})",
                        lambda e: a.fn(e) * (1 - _const(t)) + b.fn(e) * _const(t), a.pos and b.pos, 0)
        if kind == "select" and not self.vec:
            lf = self.leaf(rng)
            lim = value(rng, -1.0, 1.0, 1)
            return Expr(f"select({a.text}, {b.text}, {lf.text} > {flt(lim)})",
                        f"select({a.wgsl}, {b.wgsl}, {lf.wgsl} > {flt(lim)})",
                        lambda e: np.where(lf.fn(e) > _const(lim), b.fn(e), a.fn(e)), a.pos and b.pos, 0)
        return Expr(f"abs({a.text})", f"abs({a.wgsl})", lambda e: np.abs(a.fn(e)), False, 0)
