"""Reductions: per-row reductions of a row-major matrix (one invocation per row, a loop over the columns)
and per-workgroup tree reductions in workgroup memory (one partial result per workgroup)."""

from __future__ import annotations

import re

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
    value,
)

ROWS = 50  # not a multiple of any workgroup size
F = "array<f32>"


class RowReduce(Family):
    """out[r] = reduce(m[r, 0..COLS))."""

    def __init__(self, name: str, summary: str, init: str, step: str, final: str, ref, phrases: list[str],
                 out_type: str = F, tol: tuple[float, float] = (1e-5, 1e-5)):
        self.name, self.category, self.summary = f"reduction.{name}", "reduction", summary
        self.init, self.step, self.final, self.ref, self.phrases = init, step, final, ref, phrases
        self.out_type, self.tol = out_type, tol

    def draw(self, rng):
        return {"cols": pick(rng, [8, 16, 32, 64, 100]), "wg": pick(rng, WORKGROUP_SIZES)}

    def shader(self, p):
        body = ["let row = i * COLS;", *self.init.splitlines(),
                "for (var c = 0u; c < COLS; c = c + 1u) {", *("    " + s for s in self.step.splitlines()), "}",
                self.final]
        return kernel_1d([storage(0, "matrix", F), storage(1, "out", self.out_type, write=True)], p["wg"],
                         "arrayLength(&out)", body, self.name.split(".")[1], [f"const COLS: u32 = {p['cols']}u;"])

    def prompt(self, p, rng):
        return compose(rng, self.phrases, wg=p["wg"], cols=p["cols"])

    def case(self, p, rng):
        m = rng.uniform(-2, 2, (ROWS, p["cols"])).astype(np.float32)
        return TestCase({0: m}, {1: self.ref(m)}, (ROWS, 1, 1), *self.tol)


def _rowsum(m: np.ndarray) -> np.ndarray:
    return m.astype(np.float64).sum(axis=1).astype(np.float32)


class WorkgroupReduce(Family):
    """Tree reduction in workgroup memory: out[w] = reduce of the w-th chunk of WG elements."""

    def __init__(self, name: str, summary: str, two: bool, phrases: list[str]):
        self.name, self.category, self.summary = f"reduction.{name}", "reduction", summary
        self.two, self.phrases = two, phrases

    def draw(self, rng):
        return {"wg": pick(rng, WORKGROUP_SIZES)}

    def shader(self, p):
        wg = p["wg"]
        decls = [storage(0, "x", F)] + ([storage(1, "y", F)] if self.two else [])
        out_binding = 2 if self.two else 1
        decls += [storage(out_binding, "partials", F, write=True), "",
                  f"var<workgroup> scratch: array<f32, {wg}>;"]
        load = self._load(p)
        lines = [*decls, "",
                 f"@compute @workgroup_size({wg})",
                 "fn " + self.name.split(".")[1] + "(@builtin(global_invocation_id) gid: vec3<u32>,",
                 "        @builtin(local_invocation_id) lid: vec3<u32>,",
                 "        @builtin(workgroup_id) wid: vec3<u32>) {",
                 "    let i = gid.x;",
                 "    var v = 0.0;",
                 "    if (i < arrayLength(&x)) {",
                 f"        v = {load};",
                 "    }",
                 "    scratch[lid.x] = v;",
                 "    workgroupBarrier();",
                 f"    for (var stride = {wg // 2}u; stride > 0u; stride = stride / 2u) {{",
                 "        if (lid.x < stride) {",
                 "            scratch[lid.x] = scratch[lid.x] + scratch[lid.x + stride];",
                 "        }",
                 "        workgroupBarrier();",
                 "    }",
                 "    if (lid.x == 0u) {",
                 "        partials[wid.x] = scratch[0];",
                 "    }",
                 "}"]
        return "\n".join(lines) + "\n"

    def _load(self, p: Params) -> str:
        return "x[i] * y[i]" if self.two else "x[i]"

    def _values(self, p: Params, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return x * y if self.two else x

    def prompt(self, p, rng):
        return compose(rng, self.phrases, wg=p["wg"] if p["wg"] != 64 else None, n=p["wg"],
                       v=p.get("load", "")) + ("" if p["wg"] != 64 else " Each workgroup has 64 invocations.")

    def case(self, p, rng):
        n, wg = 1000, p["wg"]
        x = rng.uniform(-1, 1, n).astype(np.float32)
        inputs = {0: x}
        y = rng.uniform(-1, 1, n).astype(np.float32) if self.two else x
        if self.two:
            inputs[1] = y
        prod = self._values(p, x.astype(np.float64), y.astype(np.float64))
        groups = -(-n // wg)
        sums = np.array([prod[g * wg:(g + 1) * wg].sum() for g in range(groups)], dtype=np.float32)
        return TestCase(inputs, {2 if self.two else 1: sums}, (n, 1, 1), 1e-4, 1e-4)


class WorkgroupMap(WorkgroupReduce):
    """Per-workgroup tree sums of a stated per-element value v of x (and y): the tree reduction with many
    loads, so a held-out load (the dot product's x[i] * y[i]) is a recombination."""

    weight = 4
    # (the value as WGSL with {c} for a constant, two inputs?, its numpy), never x[i] * y[i] (workgroup_dot)
    LOADS = [("x[i] * x[i]", False, lambda x, y, c: x * x), ("abs(x[i])", False, lambda x, y, c: np.abs(x)),
             ("{c} * x[i]", False, lambda x, y, c: c * x), ("max(x[i], 0.0)", False, lambda x, y, c: np.maximum(x, 0)),
             ("exp(x[i])", False, lambda x, y, c: np.exp(x)), ("x[i] + y[i]", True, lambda x, y, c: x + y),
             ("x[i] - y[i]", True, lambda x, y, c: x - y), ("max(x[i], y[i])", True, lambda x, y, c: np.maximum(x, y)),
             ("min(x[i], y[i])", True, lambda x, y, c: np.minimum(x, y)),
             ("abs(x[i] - y[i])", True, lambda x, y, c: np.abs(x - y)),
             ("x[i] * x[i] + y[i] * y[i]", True, lambda x, y, c: x * x + y * y),
             ("{c} * x[i] + y[i]", True, lambda x, y, c: c * x + y),
             ("x[i] * {c} * y[i]", True, lambda x, y, c: c * x * y)]

    def __init__(self):
        super().__init__("workgroup_map", "per-workgroup sums of a stated value of x (and y) via workgroup memory",
                         False, ["sums v = {v} over workgroup-sized chunks with a tree reduction in workgroup memory, "
                                 "writing one partial sum per workgroup",
                                 "computes per-workgroup partial sums of v = {v} using var<workgroup> scratch space "
                                 "and barriers"])

    def draw(self, rng):
        k = int(rng.integers(len(self.LOADS)))
        c = value(rng, 0.2, 3.0, 1)
        load = self.LOADS[k][0].format(c=flt(c))
        return {"load": load, "k": k, "c": c, "two": self.LOADS[k][1], "wg": pick(rng, WORKGROUP_SIZES)}

    def shader(self, p):
        self.two = p["two"]  # the base class reads it; set per pair (shader and case run one at a time)
        return super().shader(p)

    def _load(self, p):
        return p["load"]

    def _values(self, p, x, y):
        return self.LOADS[p["k"]][2](x, y, np.float64(np.float32(p["c"])))

    def case(self, p, rng):
        self.two = p["two"]
        return super().case(p, rng)


class RowFold(Family):
    """out[row] = the sum, maximum or minimum of a stated f(v) over the row's values v: row reductions with
    other combine ops and maps, so the held-out plain row minimum is a recombination (identity maps are
    left to row_sum / row_max / row_min)."""

    name, category = "reduction.row_fold", "reduction"
    summary = "sum, max or min of a stated f(v) over each row"
    weight = 4
    MAPS = [("abs(v)", lambda v, c: np.abs(v)), ("v * v", lambda v, c: v * v), ("{c} * v", lambda v, c: c * v),
            ("v + {c}", lambda v, c: v + c), ("max(v, {c})", lambda v, c: np.maximum(v, c)),
            ("min(v, {c})", lambda v, c: np.minimum(v, c)), ("exp(v)", lambda v, c: np.exp(v))]
    OPS = {"sum": ("sum", np.sum), "max": ("maximum", np.max), "min": ("minimum", np.min)}

    def draw(self, rng):
        k = int(rng.integers(len(self.MAPS)))
        c = value(rng, 0.2, 2.0, 1)
        return {"op": pick(rng, list(self.OPS)), "map": self.MAPS[k][0].format(c=flt(c)), "k": k, "c": c,
                "cols": pick(rng, [8, 16, 32, 64, 100]), "wg": pick(rng, WORKGROUP_SIZES)}

    def shader(self, p):
        f = p["map"]
        if p["op"] == "sum":
            init, step = "var acc = 0.0;", f"acc = acc + {f};"
        else:
            first = re.sub(r"\bv\b", "matrix[row]", f)  # f of the row's first value
            init, step = f"var acc = {first};", f"acc = {p['op']}(acc, {f});"
        body = ["let row = i * COLS;", init, "for (var c = 0u; c < COLS; c = c + 1u) {",
                "    let v = matrix[row + c];", f"    {step}", "}", "out[i] = acc;"]
        return kernel_1d([storage(0, "matrix", F), storage(1, "out", F, write=True)], p["wg"], "arrayLength(&out)",
                         body, f"row_{p['op']}", [f"const COLS: u32 = {p['cols']}u;"])

    def prompt(self, p, rng):
        return compose(rng, ["for each row of a row-major matrix with {cols} columns, writes the {word} of {f} "
                             "over the row's values v",
                             "reduces every row of {cols} floats v to the {word} of {f}",
                             "computes out[row] = {op} of {f} over the {cols} values v of each row of a row-major "
                             "matrix"], wg=p["wg"], cols=p["cols"], word=self.OPS[p["op"]][0], op=p["op"], f=p["map"])

    def case(self, p, rng):
        m = rng.uniform(-2, 2, (ROWS, p["cols"])).astype(np.float32)
        fv = self.MAPS[p["k"]][1](m.astype(np.float64), np.float64(np.float32(p["c"])))
        return TestCase({0: m}, {1: self.OPS[p["op"]][1](fv, axis=1).astype(np.float32)}, (ROWS, 1, 1), 1e-4, 1e-4)


FAMILIES: list[Family] = [
    RowReduce("row_sum", "sum of each row", "var acc = 0.0;", "acc = acc + matrix[row + c];", "out[i] = acc;",
              _rowsum,
              ["sums each row of a row-major matrix with {cols} columns into one value per row",
               "computes the row sums of a float matrix whose rows have {cols} elements",
               "reduces every row of {cols} floats to its sum"], tol=(1e-4, 1e-5)),
    RowReduce("row_mean", "mean of each row", "var acc = 0.0;", "acc = acc + matrix[row + c];",
              "out[i] = acc / f32(COLS);", lambda m: (_rowsum(m) / f32(m.shape[1])).astype(np.float32),
              ["computes the mean of each row of a row-major matrix with {cols} columns",
               "averages every row of {cols} floats into one value",
               "writes the row means of a float matrix ({cols} columns per row)"], tol=(1e-5, 1e-5)),
    RowReduce("row_max", "maximum of each row", "var acc = matrix[row];", "acc = max(acc, matrix[row + c]);",
              "out[i] = acc;", lambda m: m.max(axis=1),
              ["finds the maximum of each row of a row-major matrix with {cols} columns",
               "computes the largest value of every row of {cols} floats",
               "reduces each {cols}-element row to its max"]),
    RowReduce("row_min", "minimum of each row", "var acc = matrix[row];", "acc = min(acc, matrix[row + c]);",
              "out[i] = acc;", lambda m: m.min(axis=1),
              ["finds the minimum of each row of a row-major matrix with {cols} columns: the minimum of v over "
               "the row's values v",
               "reduces every row of {cols} floats v to the minimum of v",
               "computes out[row] = min of v over the {cols} values v of each row of a row-major matrix"]),
    RowReduce("row_l2", "Euclidean norm of each row", "var acc = 0.0;",
              "let v = matrix[row + c];\nacc = acc + v * v;", "out[i] = sqrt(acc);",
              lambda m: np.sqrt((m.astype(np.float64) ** 2).sum(axis=1)).astype(np.float32),
              ["computes the L2 norm of each row of a row-major matrix with {cols} columns: sqrt of the sum of v "
               "* v over the row's values v",
               "writes the Euclidean length of every row of {cols} floats",
               "reduces each {cols}-element row to sqrt(sum of squares)"], tol=(1e-4, 1e-5)),
    RowReduce("row_argmax", "index of the largest value of each row (u32)", "var best = matrix[row];\nvar idx = 0u;",
              "if (matrix[row + c] > best) {\n    best = matrix[row + c];\n    idx = c;\n}", "out[i] = idx;",
              lambda m: m.argmax(axis=1).astype(np.uint32),
              ["writes the column index of the largest value in each row (u32 output) of a row-major matrix with "
               "{cols} columns", "computes the argmax of every row of {cols} floats as a u32",
               "finds where each {cols}-element row peaks and stores that index as u32"], out_type="array<u32>"),
    WorkgroupReduce("workgroup_sum", "sum of each workgroup's chunk via workgroup memory", False,
                    ["sums an array (v = x[i]) in workgroup-sized chunks with a tree reduction in workgroup "
                     "memory, writing one partial sum per workgroup",
                     "computes per-workgroup partial sums of a float array using var<workgroup> scratch space and "
                     "barriers"]),
    WorkgroupReduce("workgroup_dot", "dot product partials of two arrays via workgroup memory", True,
                    ["computes the dot product of arrays x and y as one partial sum per workgroup of v = x[i] * "
                     "y[i], with a tree reduction in workgroup memory",
                     "sums v = x[i] * y[i] over workgroup-sized chunks in workgroup memory (partial dot products), "
                     "one partial sum per workgroup"]),
    WorkgroupMap(),
    RowFold(),
]
