"""Matrix operations on row-major `array<f32>` matrices (sizes as consts), plus a mat4x4 transform of
vec4s: one invocation per output element or row."""

from __future__ import annotations

import numpy as np

from nanochat_plugins.wgsl.runner import TestCase
from nanochat_plugins.wgsl.templates.common import (
    TILE_SIZES,
    WORKGROUP_SIZES,
    Family,
    compose,
    kernel_1d,
    kernel_2d,
    pick,
    storage,
    uniform,
)

F = "array<f32>"
DIMS = (4, 8, 12, 16, 20, 32)


def _dot_kernel(inputs: tuple[str, str], out: str, term: str, name: str, wg: int, consts: list[str]) -> str:
    """A 1-D kernel where invocation i writes `out[i]`, the sum over k < K of `term` (matvec, vecmat, row_dot)."""
    body = ["var acc = 0.0;", "for (var k = 0u; k < K; k = k + 1u) {", f"    acc = acc + {term};", "}",
            f"{out}[i] = acc;"]
    return kernel_1d([storage(0, inputs[0], F), storage(1, inputs[1], F), storage(2, out, F, write=True)], wg,
                     f"arrayLength(&{out})", body, name, consts)


def _mat(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return rng.uniform(-1, 1, shape).astype(np.float32)


def _matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a.astype(np.float64) @ b.astype(np.float64)).astype(np.float32)


class Matmul(Family):
    name, category = "matrix.matmul", "matrix"
    summary = "C = A B for row-major A (M x K) and B (K x N), one invocation per element of C"

    def draw(self, rng):
        return {"m": pick(rng, DIMS), "k": pick(rng, DIMS), "n": pick(rng, DIMS), "tile": pick(rng, TILE_SIZES)}

    def shader(self, p):
        consts = [f"const M: u32 = {p['m']}u;", f"const K: u32 = {p['k']}u;", f"const N: u32 = {p['n']}u;"]
        body = ["var acc = 0.0;", "for (var k = 0u; k < K; k = k + 1u) {",
                "    acc = acc + a[row * K + k] * b[k * N + col];", "}", "c[row * N + col] = acc;"]
        return kernel_2d([storage(0, "a", F), storage(1, "b", F), storage(2, "c", F, write=True)], p["tile"],
                         consts, body, "matmul", xname="col", yname="row", w="N", h="M")

    def prompt(self, p, rng):
        return compose(rng, ["multiplies a {m}x{k} matrix A by a {k}x{n} matrix B (both row-major) into C",
                             "computes the matrix product C = A * B with A of shape {m} by {k} and B of shape {k} "
                             "by {n}, row-major",
                             "does a naive matmul of row-major A ({m}x{k}) and B ({k}x{n}), one thread per output "
                             "element"], tile=p["tile"], m=p["m"], k=p["k"], n=p["n"])

    def case(self, p, rng):
        a, b = _mat(rng, p["m"], p["k"]), _mat(rng, p["k"], p["n"])
        return TestCase({0: a, 1: b}, {2: _matmul(a, b)}, (p["n"], p["m"], 1), 1e-5, 1e-5)


class Transpose(Family):
    name, category = "matrix.transpose", "matrix"
    summary = "B = A^T for a row-major R x C matrix"

    def draw(self, rng):
        return {"r": pick(rng, DIMS), "c": pick(rng, DIMS), "tile": pick(rng, TILE_SIZES)}

    def shader(self, p):
        consts = [f"const ROWS: u32 = {p['r']}u;", f"const COLS: u32 = {p['c']}u;"]
        return kernel_2d([storage(0, "src", F), storage(1, "dst", F, write=True)], p["tile"], consts,
                         ["dst[col * ROWS + row] = src[row * COLS + col];"], "transpose", xname="col", yname="row",
                         w="COLS", h="ROWS")

    def prompt(self, p, rng):
        return compose(rng, ["transposes a row-major matrix with {r} rows and {c} columns",
                             "writes the transpose of a {r}x{c} row-major float matrix",
                             "swaps rows and columns of a {r} by {c} matrix stored row-major"], tile=p["tile"],
                       r=p["r"], c=p["c"])

    def case(self, p, rng):
        a = _mat(rng, p["r"], p["c"])
        return TestCase({0: a}, {1: np.ascontiguousarray(a.T)}, (p["c"], p["r"], 1))


class Matvec(Family):
    name, category = "matrix.matvec", "matrix"
    summary = "y = A x for a row-major M x K matrix, one invocation per row"

    def draw(self, rng):
        return {"k": pick(rng, DIMS), "wg": pick(rng, WORKGROUP_SIZES)}

    def shader(self, p):
        return _dot_kernel(("a", "x"), "y", "a[i * K + k] * x[k]", "matvec", p["wg"], [f"const K: u32 = {p['k']}u;"])

    def prompt(self, p, rng):
        return compose(rng, ["multiplies a row-major matrix with {k} columns by a vector of length {k}: y[i] = sum "
                             "over k of A[i][k] * x[k]",
                             "computes y = A * x where A is row-major with {k} columns, one invocation per row: "
                             "y[i] = sum over k of A[i][k] * x[k]",
                             "does a matrix-vector product: each output y[i] = sum over k of A[i][k] * x[k] is the "
                             "dot product of a {k}-element row of A with x"], wg=p["wg"], k=p["k"])

    def case(self, p, rng):
        a, x = _mat(rng, 40, p["k"]), _mat(rng, p["k"])
        return TestCase({0: a, 1: x}, {2: _matmul(a, x[:, None])[:, 0]}, (40, 1, 1), 1e-5, 1e-5)


class Outer(Family):
    name, category = "matrix.outer", "matrix"
    summary = "C[i, j] = x[i] * y[j] (M x N, row-major)"

    def draw(self, rng):
        return {"m": pick(rng, DIMS), "n": pick(rng, DIMS), "tile": pick(rng, TILE_SIZES)}

    def shader(self, p):
        consts = [f"const M: u32 = {p['m']}u;", f"const N: u32 = {p['n']}u;"]
        return kernel_2d([storage(0, "x", F), storage(1, "y", F), storage(2, "c", F, write=True)], p["tile"], consts,
                         ["c[row * N + col] = x[row] * y[col];"], "outer", xname="col", yname="row", w="N", h="M")

    def prompt(self, p, rng):
        return compose(rng, ["computes the outer product of x (length {m}) and y (length {n}) into a row-major "
                             "{m}x{n} matrix", "writes C[i][j] = x[i] * y[j] for i < {m} and j < {n}, row-major"],
                       tile=p["tile"], m=p["m"], n=p["n"])

    def case(self, p, rng):
        x, y = _mat(rng, p["m"]), _mat(rng, p["n"])
        return TestCase({0: x, 1: y}, {2: np.outer(x, y).astype(np.float32)}, (p["n"], p["m"], 1))


class AddBias(Family):
    name, category = "matrix.add_bias", "matrix"
    summary = "C[i, j] = A[i, j] + bias[j] (bias broadcast over rows)"

    def draw(self, rng):
        return {"r": pick(rng, DIMS), "c": pick(rng, DIMS), "tile": pick(rng, TILE_SIZES)}

    def shader(self, p):
        consts = [f"const ROWS: u32 = {p['r']}u;", f"const COLS: u32 = {p['c']}u;"]
        return kernel_2d([storage(0, "a", F), storage(1, "bias", F), storage(2, "out", F, write=True)], p["tile"],
                         consts, ["out[row * COLS + col] = a[row * COLS + col] + bias[col];"], "add_bias",
                         xname="col", yname="row", w="COLS", h="ROWS")

    def prompt(self, p, rng):
        return compose(rng, ["adds a bias vector of length {c} to every row of a row-major {r}x{c} matrix",
                             "broadcasts a {c}-element bias over the {r} rows of a matrix and adds it"],
                       tile=p["tile"], r=p["r"], c=p["c"])

    def case(self, p, rng):
        a, b = _mat(rng, p["r"], p["c"]), _mat(rng, p["c"])
        return TestCase({0: a, 1: b}, {2: a + b[None, :]}, (p["c"], p["r"], 1))


class Transform(Family):
    name, category = "matrix.transform", "matrix"
    summary = "out[i] = M * v[i] for vec4s, M a mat4x4<f32> uniform"

    def draw(self, rng):
        return {"wg": pick(rng, WORKGROUP_SIZES)}

    def shader(self, p):
        return kernel_1d([storage(0, "points", "array<vec4<f32>>"),
                          storage(1, "out", "array<vec4<f32>>", write=True), uniform(2, "transform", "mat4x4<f32>")],
                         p["wg"], "arrayLength(&out)", ["out[i] = transform * points[i];"], "transform_points")

    def prompt(self, p, rng):
        return compose(rng, ["transforms an array of vec4 points by a 4x4 matrix given as a uniform at binding 2",
                             "multiplies every vec4<f32> by the mat4x4<f32> uniform (matrix times vector)"],
                       wg=p["wg"])

    def case(self, p, rng):
        pts, cols = _mat(rng, 200, 4), _mat(rng, 4, 4)  # cols[c] is column c, as WGSL stores a matrix
        return TestCase({0: pts, 2: cols}, {1: _matmul(pts, cols)}, (200, 1, 1), 1e-5, 1e-5)


class Vecmat(Family):
    name, category = "matrix.vecmat", "matrix"
    summary = "y = x A (row vector times a row-major K x N matrix), one invocation per output element"
    weight = 2

    def draw(self, rng):
        return {"k": pick(rng, DIMS), "n": pick(rng, DIMS), "wg": pick(rng, WORKGROUP_SIZES)}

    def shader(self, p):
        return _dot_kernel(("a", "x"), "y", "x[k] * a[k * N + i]", "vecmat", p["wg"],
                           [f"const K: u32 = {p['k']}u;", f"const N: u32 = {p['n']}u;"])

    def prompt(self, p, rng):
        return compose(rng, ["multiplies a vector x of length {k} by a row-major {k}x{n} matrix A: y[j] = sum over "
                             "k of x[k] * A[k][j], one invocation per output",
                             "computes the row vector times matrix product y = x * A for a {k} by {n} row-major A: "
                             "y[j] = sum over k of x[k] * A[k][j]"], wg=p["wg"], k=p["k"], n=p["n"])

    def case(self, p, rng):
        a, x = _mat(rng, p["k"], p["n"]), _mat(rng, p["k"])
        return TestCase({0: a, 1: x}, {2: _matmul(x[None, :], a)[0]}, (p["n"], 1, 1), 1e-5, 1e-5)


class RowDot(Family):
    name, category = "matrix.row_dot", "matrix"
    summary = "out[i] = dot product of row i of A and row i of B (row-major, K columns)"
    weight = 2

    def draw(self, rng):
        return {"k": pick(rng, DIMS), "wg": pick(rng, WORKGROUP_SIZES)}

    def shader(self, p):
        return _dot_kernel(("a", "b"), "out", "a[i * K + k] * b[i * K + k]", "row_dot", p["wg"],
                           [f"const K: u32 = {p['k']}u;"])

    def prompt(self, p, rng):
        return compose(rng, ["computes the dot product of each row of two row-major matrices a and b with {k} "
                             "columns: out[i] = sum over k of A[i][k] * B[i][k]",
                             "writes out[i] = sum over k of A[i][k] * B[i][k] for row-major A and B with {k} columns, "
                             "one invocation per row"], wg=p["wg"], k=p["k"])

    def case(self, p, rng):
        a, b = _mat(rng, 40, p["k"]), _mat(rng, 40, p["k"])
        out = (a.astype(np.float64) * b.astype(np.float64)).sum(axis=1).astype(np.float32)
        return TestCase({0: a, 1: b}, {2: out}, (40, 1, 1), 1e-5, 1e-5)


FAMILIES: list[Family] = [Matmul(), Transpose(), Matvec(), Outer(), AddBias(), Transform(), Vecmat(), RowDot()]
