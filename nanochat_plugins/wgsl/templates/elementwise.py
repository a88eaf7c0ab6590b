"""Elementwise maps over `array<f32>`: one invocation per element, one or two inputs, constants inline
(or, for `scale`, from a uniform)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from nanochat_plugins.wgsl.runner import TestCase
from nanochat_plugins.wgsl.templates.common import (
    WORKGROUP_SIZES,
    Family,
    Params,
    compose,
    f32,
    flt,
    kernel_1d,
    pick,
    storage,
    uniform,
    uniform_bytes,
    value,
)
from nanochat_plugins.wgsl.templates.expr import Grammar, Leaf

N = 1000  # not a multiple of any workgroup size
F = "array<f32>"


def _data(rng: np.random.Generator, lo: float = -2.0, hi: float = 2.0) -> np.ndarray:
    return rng.uniform(lo, hi, N).astype(np.float32)


class Unary(Family):
    """y = f(x), with named float parameters drawn in ranges."""

    def __init__(self, name: str, summary: str, expr: str, ref: Callable[..., np.ndarray],
                 params: dict[str, tuple[float, float, int]], phrases: list[str], entry: str,
                 lo: float = -2.0, hi: float = 2.0, tol: tuple[float, float] = (1e-5, 1e-5)):
        self.name, self.category, self.summary = f"elementwise.{name}", "elementwise", summary
        self.expr, self.ref, self.ranges, self.phrases, self.entry = expr, ref, params, phrases, entry
        self.lo, self.hi, self.tol = lo, hi, tol

    def draw(self, rng):
        p: Params = {k: value(rng, lo, hi, d) for k, (lo, hi, d) in self.ranges.items()}
        p["wg"] = pick(rng, WORKGROUP_SIZES)
        return p

    def shader(self, p):
        expr = self.expr.format(**{k: flt(p[k]) for k in self.ranges})
        return kernel_1d([storage(0, "input", F), storage(1, "output", F, write=True)], p["wg"],
                         "arrayLength(&output)", ["let x = input[i];", f"output[i] = {expr};"], self.entry)

    def prompt(self, p, rng):
        return compose(rng, self.phrases, wg=p["wg"], **{k: flt(p[k]) for k in self.ranges})

    def case(self, p, rng):
        x = _data(rng, self.lo, self.hi)
        y = self.ref(x, **{k: f32(p[k]) for k in self.ranges}).astype(np.float32)
        return TestCase({0: x}, {1: y}, (N, 1, 1), *self.tol)


class Scale(Unary):
    """y = k * x, k inline or from a uniform struct at binding 2."""

    def __init__(self):
        super().__init__("scale", "multiply every element by k (inline or from a uniform)", "{k} * x",
                         lambda x, k: k * x, {"k": (-3.0, 3.0, 2)},
                         ["multiplies every element of the input array by {k}",
                          "scales a float buffer by a factor of {k}", "computes output[i] = {k} * input[i]"],
                         "scale")

    def draw(self, rng):
        p = super().draw(rng)
        p["uniform"] = bool(rng.random() < 0.4)
        return p

    def shader(self, p):
        if not p["uniform"]:
            return super().shader(p)
        return kernel_1d([storage(0, "input", F), storage(1, "output", F, write=True),
                          uniform(2, "params", "Params")], p["wg"], "arrayLength(&output)",
                         ["output[i] = params.k * input[i];"], "scale", ["struct Params {", "    k: f32,", "}"])

    def prompt(self, p, rng):
        if not p["uniform"]:
            return super().prompt(p, rng)
        return compose(rng, ["multiplies every element of the input array by a factor k",
                             "scales a float buffer by k"], wg=p["wg"],
                       extra="k comes from a uniform struct at binding 2.")

    def case(self, p, rng):
        c = super().case(p, rng)
        if p["uniform"]:
            c.inputs[2] = uniform_bytes(("f32", p["k"]))
        return c


class Binary(Family):
    """z = a op b for two input arrays."""

    name, category = "elementwise.binary", "elementwise"
    summary = "add, subtract, multiply, maximum or minimum of two arrays"
    OPS = {
        "add": ("a[i] + b[i]", np.add, ["adds two float arrays element by element", "computes out[i] = a[i] + b[i]",
                                        "sums arrays a and b elementwise"]),
        "subtract": ("a[i] - b[i]", np.subtract, ["subtracts array b from array a elementwise",
                                                  "computes out[i] = a[i] - b[i]"]),
        "multiply": ("a[i] * b[i]", np.multiply, ["multiplies two float arrays element by element (Hadamard "
                                                  "product)", "computes out[i] = a[i] * b[i]"]),
        "maximum": ("max(a[i], b[i])", np.maximum, ["takes the elementwise maximum of arrays a and b",
                                                     "computes out[i] = max(a[i], b[i])"]),
        "minimum": ("min(a[i], b[i])", np.minimum, ["takes the elementwise minimum of arrays a and b",
                                                     "computes out[i] = min(a[i], b[i])"]),
    }

    def draw(self, rng):
        return {"op": pick(rng, list(self.OPS)), "wg": pick(rng, WORKGROUP_SIZES)}

    def shader(self, p):
        return kernel_1d([storage(0, "a", F), storage(1, "b", F), storage(2, "out", F, write=True)], p["wg"],
                         "arrayLength(&out)", [f"out[i] = {self.OPS[p['op']][0]};"], p["op"])

    def prompt(self, p, rng):
        return compose(rng, self.OPS[p["op"]][2], wg=p["wg"])

    def case(self, p, rng):
        a, b = _data(rng), _data(rng)
        return TestCase({0: a, 1: b}, {2: self.OPS[p["op"]][1](a, b).astype(np.float32)}, (N, 1, 1))


class TwoInputs(Family):
    """out = f(a, b) with one parameter (axpy, lerp)."""

    def __init__(self, name: str, summary: str, expr: str, ref: Callable[..., np.ndarray], lo: float, hi: float,
                 phrases: list[str], tol: tuple[float, float] = (1e-5, 1e-5)):
        self.name, self.category, self.summary = f"elementwise.{name}", "elementwise", summary
        self.expr, self.ref, self.lo, self.hi, self.phrases, self.tol = expr, ref, lo, hi, phrases, tol

    def draw(self, rng):
        return {"t": value(rng, self.lo, self.hi, 2), "wg": pick(rng, WORKGROUP_SIZES)}

    def shader(self, p):
        return kernel_1d([storage(0, "x", F), storage(1, "y", F), storage(2, "out", F, write=True)], p["wg"],
                         "arrayLength(&out)", [f"out[i] = {self.expr.format(t=flt(p['t']))};"],
                         self.name.split(".")[1])

    def prompt(self, p, rng):
        return compose(rng, self.phrases, wg=p["wg"], t=flt(p["t"]))

    def case(self, p, rng):
        x, y = _data(rng), _data(rng)
        return TestCase({0: x, 1: y}, {2: self.ref(x, y, f32(p["t"])).astype(np.float32)}, (N, 1, 1), *self.tol)


class Formula(Family):
    """y = a random formula of x (or out = one of x and y), stated literally in the prompt: teaches the
    model to write any stated formula, so held-out maps whose prompts state theirs are recombinations."""

    UNARY = ["computes y = {f} for every element x of a float array",
             "applies the formula y = {f} elementwise, x being the input element",
             "maps each value x of the input buffer to {f}",
             "writes output[i] = {f} where x = input[i]"]
    BINARY = ["combines two float arrays x and y elementwise: out = {f}",
              "computes out = {f} for arrays x and y, element by element",
              "writes out[i] = {f} for every element of the arrays x and y"]

    def __init__(self, binary: bool):
        self.binary = binary
        self.weight = 6 if binary else 8
        self.name = "elementwise.formula2" if binary else "elementwise.formula"
        self.category = "elementwise"
        self.summary = ("out = a stated random formula of x and y" if binary else
                        "y = a stated random formula of x (WGSL builtins and arithmetic)")
        if binary:  # lerp's own body, mix(x[i], y[i], t), stays held out
            self.grammar = Grammar([Leaf("x", "x[i]", -2.0, 2.0), Leaf("y", "y[i]", -2.0, 2.0)],
                                   banned=(r"mix\(x\[i\], y\[i\], [\d.]+\)",))
        else:  # and so does leaky_relu's, select(a * x, x, x > 0.0)
            self.grammar = Grammar([Leaf("x", "x", -2.0, 2.0)], banned=(r"select\([-\d.]+ \* x, x, x > 0\.0\)",))

    def _expr(self, p: Params):
        return self.grammar.draw(np.random.default_rng(p["fseed"]), p["depth"])

    def draw(self, rng):
        fseed, depth = int(rng.integers(2**31)), int(pick(rng, [1, 2, 2]))
        return {"formula": self.grammar.draw(np.random.default_rng(fseed), depth).text, "fseed": fseed,
                "depth": depth, "wg": pick(rng, WORKGROUP_SIZES)}

    def shader(self, p):
        e = self._expr(p)
        if self.binary:
            return kernel_1d([storage(0, "x", F), storage(1, "y", F), storage(2, "out", F, write=True)], p["wg"],
                             "arrayLength(&out)", [f"out[i] = {e.wgsl};"], "combine")
        return kernel_1d([storage(0, "input", F), storage(1, "output", F, write=True)], p["wg"],
                         "arrayLength(&output)", ["let x = input[i];", f"output[i] = {e.wgsl};"], "apply")

    def prompt(self, p, rng):
        return compose(rng, self.BINARY if self.binary else self.UNARY, wg=p["wg"], f=p["formula"])

    def case(self, p, rng):
        e = self._expr(p)
        x = _data(rng)
        if self.binary:
            y = _data(rng)
            out = e.fn({"x": x.astype(np.float64), "y": y.astype(np.float64)}).astype(np.float32)
            return TestCase({0: x, 1: y}, {2: out}, (N, 1, 1), 1e-4, 1e-4)
        out = e.fn({"x": x.astype(np.float64)}).astype(np.float32)
        return TestCase({0: x}, {1: out}, (N, 1, 1), 1e-4, 1e-4)


FAMILIES: list[Family] = [
    Scale(),
    Unary("affine", "a * x + b", "{a} * x + {b}", lambda x, a, b: a * x + b, {"a": (-2.0, 2.0, 1), "b": (-1.0, 1.0, 1)},
          ["applies the affine map y = {a} * x + {b} to every element", "multiplies each value by {a} and adds {b}",
           "computes output[i] = {a} * input[i] + {b}"], "affine"),
    Unary("relu", "max(x, 0)", "max(x, 0.0)", lambda x: np.maximum(x, 0), {},
          ["applies ReLU to every element of a float array", "computes the rectified linear unit max(x, 0) "
           "elementwise", "zeroes the negative values of a buffer (ReLU)"], "relu"),
    Unary("leaky_relu", "x if x > 0 else alpha * x", "select({alpha} * x, x, x > 0.0)",
          lambda x, alpha: np.where(x > 0, x, alpha * x), {"alpha": (0.01, 0.3, 2)},
          ["applies a leaky ReLU with negative slope {alpha} to every element: y = max(x, {alpha} * x)",
           "computes y = max(x, {alpha} * x) elementwise (x for positive x, {alpha} * x otherwise)",
           "runs leaky ReLU (slope {alpha} below zero) over a float buffer, y = max(x, {alpha} * x)"],
          "leaky_relu"),
    Unary("clamp", "clamp(x, lo, hi)", "clamp(x, {lo}, {hi})", lambda x, lo, hi: np.clip(x, lo, hi),
          {"lo": (-1.5, -0.1, 1), "hi": (0.1, 1.5, 1)},
          ["clamps every element between {lo} and {hi}", "limits each value of the input to the range [{lo}, {hi}]",
           "computes output[i] = clamp(input[i], {lo}, {hi})"], "clamp_values"),
    Unary("square", "x * x", "x * x", lambda x: x * x, {},
          ["squares every element of a float array", "computes output[i] = input[i] * input[i]",
           "raises each value to the power two"], "square"),
    Unary("abs", "|x|", "abs(x)", np.abs, {},
          ["takes the absolute value of every element", "computes |x| elementwise over a float buffer",
           "makes every value of the input non-negative with abs"], "absolute"),
    Unary("sigmoid", "1 / (1 + exp(-x))", "1.0 / (1.0 + exp(-x))", lambda x: 1 / (1 + np.exp(-x)), {},
          ["applies the logistic sigmoid to every element", "computes 1 / (1 + exp(-x)) for each value",
           "squashes a float buffer with the sigmoid function"], "sigmoid", -6.0, 6.0, (1e-6, 1e-5)),
    Unary("threshold", "1.0 where x > t, else 0.0", "select(0.0, 1.0, x > {t})",
          lambda x, t: (x > t).astype(np.float32), {"t": (-1.0, 1.0, 2)},
          ["writes 1.0 where an element is greater than {t} and 0.0 elsewhere",
           "thresholds a float array at {t} into ones and zeros", "binarizes the input: x > {t} gives 1, else 0"],
          "threshold"),
    Binary(),
    TwoInputs("axpy", "t * x + y", "{t} * x[i] + y[i]", lambda x, y, t: t * x + y, -2.0, 2.0,
              ["computes the BLAS axpy out = {t} * x + y over two float arrays",
               "adds y to x scaled by {t}, elementwise", "computes out[i] = {t} * x[i] + y[i]"]),
    TwoInputs("lerp", "mix(x, y, t)", "mix(x[i], y[i], {t})", lambda x, y, t: x * (1 - t) + y * t, 0.05, 0.95,
              ["linearly interpolates between arrays x and y with weight {t}: out = mix(x, y, {t})",
               "computes out = mix(x, y, {t}) elementwise", "blends x toward y by {t}: out = x + {t} * (y - x)"],
              (1e-5, 1e-5)),
    Formula(binary=False),
    Formula(binary=True),
]
