"""Reductions: per-row reductions of a row-major matrix (one invocation per row, a loop over the columns)
and per-workgroup tree reductions in workgroup memory (one partial result per workgroup)."""

from __future__ import annotations

import numpy as np

from nanochat_plugins.wgsl.runner import TestCase
from nanochat_plugins.wgsl.templates.common import (
    WORKGROUP_SIZES,
    Family,
    compose,
    f32,
    kernel_1d,
    pick,
    storage,
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
        load = "x[i] * y[i]" if self.two else "x[i]"
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

    def prompt(self, p, rng):
        return compose(rng, self.phrases, wg=p["wg"] if p["wg"] != 64 else None, n=p["wg"]) + (
            "" if p["wg"] != 64 else " Each workgroup has 64 invocations.")

    def case(self, p, rng):
        n, wg = 1000, p["wg"]
        x = rng.uniform(-1, 1, n).astype(np.float32)
        prod = x.astype(np.float64)
        inputs = {0: x}
        if self.two:
            y = rng.uniform(-1, 1, n).astype(np.float32)
            inputs[1] = y
            prod = prod * y
        groups = -(-n // wg)
        sums = np.array([prod[g * wg:(g + 1) * wg].sum() for g in range(groups)], dtype=np.float32)
        return TestCase(inputs, {2 if self.two else 1: sums}, (n, 1, 1), 1e-4, 1e-4)


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
              ["finds the minimum of each row of a row-major matrix with {cols} columns",
               "computes the smallest value of every row of {cols} floats",
               "reduces each {cols}-element row to its min"]),
    RowReduce("row_l2", "Euclidean norm of each row", "var acc = 0.0;",
              "let v = matrix[row + c];\nacc = acc + v * v;", "out[i] = sqrt(acc);",
              lambda m: np.sqrt((m.astype(np.float64) ** 2).sum(axis=1)).astype(np.float32),
              ["computes the L2 norm of each row of a row-major matrix with {cols} columns",
               "writes the Euclidean length of every row of {cols} floats",
               "reduces each {cols}-element row to sqrt(sum of squares)"], tol=(1e-4, 1e-5)),
    RowReduce("row_argmax", "index of the largest value of each row (u32)", "var best = matrix[row];\nvar idx = 0u;",
              "if (matrix[row + c] > best) {\n    best = matrix[row + c];\n    idx = c;\n}", "out[i] = idx;",
              lambda m: m.argmax(axis=1).astype(np.uint32),
              ["writes the column index of the largest value in each row (u32 output) of a row-major matrix with "
               "{cols} columns", "computes the argmax of every row of {cols} floats as a u32",
               "finds where each {cols}-element row peaks and stores that index as u32"], out_type="array<u32>"),
    WorkgroupReduce("workgroup_sum", "sum of each workgroup's chunk via workgroup memory", False,
                    ["sums an array in workgroup-sized chunks with a tree reduction in workgroup memory, writing "
                     "one partial sum per workgroup",
                     "computes per-workgroup partial sums of a float array using var<workgroup> scratch space and "
                     "barriers"]),
    WorkgroupReduce("workgroup_dot", "dot product partials of two arrays via workgroup memory", True,
                    ["computes the dot product of arrays x and y as one partial sum per workgroup, with a tree "
                     "reduction in workgroup memory",
                     "multiplies x and y elementwise and reduces each workgroup's products in shared memory into "
                     "one partial dot product"]),
]
