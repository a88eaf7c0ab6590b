"""Image kernels on a grayscale W x H image (row-major `array<f32>`, sizes as consts): 3x3 stencils with
clamp-to-edge reads, a 2x downsample and flips. One invocation per output pixel, 2-D workgroups."""

from __future__ import annotations

import numpy as np

from nanochat_plugins.wgsl.runner import TestCase
from nanochat_plugins.wgsl.templates.common import TILE_SIZES, Family, compose, flt, kernel_2d, pick, storage, value

F = "array<f32>"
SIZES = (16, 20, 24, 32, 40)
AT = ["fn at(x: i32, y: i32) -> f32 {",
      "    let cx = clamp(x, 0, i32(W) - 1);",
      "    let cy = clamp(y, 0, i32(H) - 1);",
      "    return src[u32(cy) * W + u32(cx)];",
      "}"]


def _image(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    return rng.random((h, w), dtype=np.float32)


def _stencil(img: np.ndarray, k: np.ndarray) -> np.ndarray:
    pad = np.pad(img.astype(np.float64), 1, mode="edge")
    h, w = img.shape
    out = sum(k[dy + 1, dx + 1] * pad[1 + dy:1 + dy + h, 1 + dx:1 + dx + w]
              for dy in (-1, 0, 1) for dx in (-1, 0, 1) if k[dy + 1, dx + 1])
    return np.asarray(out, dtype=np.float32)


def _shift(v: str, d: int) -> str:
    return v if d == 0 else f"{v} + {d}" if d > 0 else f"{v} - {-d}"


def _consts(p: dict) -> list[str]:
    return [f"const W: u32 = {p['w']}u;", f"const H: u32 = {p['h']}u;"]


class Stencil(Family):
    """out = sum of k[dy][dx] * in(x + dx, y + dy), clamp to edge."""

    def __init__(self, name: str, summary: str, kernel: list[list[float]], scale: str, phrases: list[str]):
        self.name, self.category, self.summary = f"image.{name}", "image", summary
        self.k, self.scale, self.phrases = np.array(kernel, dtype=np.float64), scale, phrases

    def _kernel(self, p: dict) -> tuple[np.ndarray, int]:
        return self.k, {"": 1, " / 9.0": 9, " / 16.0": 16}[self.scale]

    def draw(self, rng):
        return {"w": pick(rng, SIZES), "h": pick(rng, SIZES), "tile": pick(rng, TILE_SIZES)}

    def shader(self, p):
        k, div = self._kernel(p)
        body = ["let ix = i32(x);", "let iy = i32(y);", "var acc = 0.0;"]
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                w = k[dy + 1, dx + 1]
                if w:
                    term = f"at({_shift('ix', dx)}, {_shift('iy', dy)})"
                    body.append(f"acc = acc + {term};" if w == 1 else f"acc = acc + {flt(w)} * {term};")
        body.append(f"dst[y * W + x] = acc{f' / {flt(div)}' if div != 1 else ''};")
        return kernel_2d([storage(0, "src", F), storage(1, "dst", F, write=True)], p["tile"], _consts(p), body,
                         self.name.split(".")[1], helpers=AT)

    def prompt(self, p, rng):
        return compose(rng, self.phrases, tile=p["tile"], w=p["w"], h=p["h"])

    def case(self, p, rng):
        img = _image(rng, p["w"], p["h"])
        k, div = self._kernel(p)
        out = _stencil(img, k / div)
        return TestCase({0: img}, {1: out}, (p["w"], p["h"], 1), 1e-5, 1e-5)


class Convolve(Stencil):
    """A random 3x3 integer kernel and divisor, stated in the prompt as `a b c / d e f / g h i divided by s`:
    stencils of every shape, so the held-out Gaussian (its kernel never drawn) is a recombination."""

    weight = 4
    WEIGHTS = (0, 0, 1, 1, 1, 2, 2, 3, 4, -1, -2)
    GAUSSIAN = [1, 2, 1, 2, 4, 2, 1, 2, 1]

    def __init__(self):
        super().__init__("convolve", "a stated random 3x3 integer kernel over a divisor, clamp to edge",
                         [[0] * 3] * 3, "", [])

    def draw(self, rng):
        p = super().draw(rng)
        while True:
            k = [int(pick(rng, self.WEIGHTS)) for _ in range(9)]
            if sum(1 for w in k if w) >= 2 and k != self.GAUSSIAN:
                break
        p.update(kernel=k, div=int(pick(rng, [1, 2, 4, 8, 9, 16])))
        return p

    def _kernel(self, p):
        return np.array(p["kernel"], dtype=np.float64).reshape(3, 3), p["div"]

    def prompt(self, p, rng):
        rows = " / ".join(" ".join(str(w) for w in p["kernel"][r * 3:r * 3 + 3]) for r in range(3))
        scale = f" divided by {p['div']}" if p["div"] != 1 else ""
        return compose(rng, ["convolves a {w}x{h} grayscale image (row-major floats) with the 3x3 kernel {k}{s}, "
                             "clamping reads to the edge",
                             "applies the 3x3 stencil {k}{s} to a {w} by {h} row-major float image, border clamped",
                             "filters a {w}x{h} float image: each output is its 3x3 neighbourhood weighted by {k}{s}, "
                             "reads clamped to the edge"], tile=p["tile"], w=p["w"], h=p["h"], k=rows, s=scale)


class Sharpen(Family):
    name, category = "image.sharpen", "image"
    summary = "x + amount * (4x - the four neighbours), clamp to edge"

    def draw(self, rng):
        return {"w": pick(rng, SIZES), "h": pick(rng, SIZES), "tile": pick(rng, TILE_SIZES),
                "amount": value(rng, 0.2, 2.0, 1)}

    def shader(self, p):
        body = ["let ix = i32(x);", "let iy = i32(y);", "let c = at(ix, iy);",
                "let edges = 4.0 * c - at(ix - 1, iy) - at(ix + 1, iy) - at(ix, iy - 1) - at(ix, iy + 1);",
                f"dst[y * W + x] = c + {flt(p['amount'])} * edges;"]
        return kernel_2d([storage(0, "src", F), storage(1, "dst", F, write=True)], p["tile"], _consts(p), body,
                         "sharpen", helpers=AT)

    def prompt(self, p, rng):
        return compose(rng, ["sharpens a {w}x{h} grayscale image (row-major floats) with amount {a}: out = c + {a} "
                             "* (4c - left - right - up - down), clamping reads to the edge",
                             "applies an unsharp Laplacian sharpen of strength {a} to a {w} by {h} image, edges "
                             "clamped"], tile=p["tile"], w=p["w"], h=p["h"], a=flt(p["amount"]))

    def case(self, p, rng):
        img = _image(rng, p["w"], p["h"])
        lap = _stencil(img, np.array([[0, -1, 0], [-1, 4, -1], [0, -1, 0]], dtype=np.float64))
        return TestCase({0: img}, {1: (img + np.float32(p["amount"]) * lap).astype(np.float32)}, (p["w"], p["h"], 1),
                        1e-5, 1e-5)


class Sobel(Family):
    name, category = "image.sobel", "image"
    summary = "Sobel gradient magnitude sqrt(gx^2 + gy^2), clamp to edge"

    def draw(self, rng):
        return {"w": pick(rng, SIZES), "h": pick(rng, SIZES), "tile": pick(rng, TILE_SIZES)}

    def shader(self, p):
        body = ["let ix = i32(x);", "let iy = i32(y);",
                "let gx = at(ix + 1, iy - 1) + 2.0 * at(ix + 1, iy) + at(ix + 1, iy + 1)",
                "    - at(ix - 1, iy - 1) - 2.0 * at(ix - 1, iy) - at(ix - 1, iy + 1);",
                "let gy = at(ix - 1, iy + 1) + 2.0 * at(ix, iy + 1) + at(ix + 1, iy + 1)",
                "    - at(ix - 1, iy - 1) - 2.0 * at(ix, iy - 1) - at(ix + 1, iy - 1);",
                "dst[y * W + x] = sqrt(gx * gx + gy * gy);"]
        return kernel_2d([storage(0, "src", F), storage(1, "dst", F, write=True)], p["tile"], _consts(p), body,
                         "sobel", helpers=AT)

    def prompt(self, p, rng):
        return compose(rng, ["computes the Sobel edge magnitude of a {w}x{h} grayscale image (row-major), clamping "
                             "reads at the border", "detects edges in a {w} by {h} float image with the 3x3 Sobel "
                             "operators and writes sqrt(gx^2 + gy^2)"], tile=p["tile"], w=p["w"], h=p["h"])

    def case(self, p, rng):
        img = _image(rng, p["w"], p["h"])
        gx = _stencil(img, np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=np.float64)).astype(np.float64)
        gy = _stencil(img, np.array([[-1, -2, -1], [0, 0, 0], [1, 2, 1]], dtype=np.float64)).astype(np.float64)
        return TestCase({0: img}, {1: np.sqrt(gx * gx + gy * gy).astype(np.float32)}, (p["w"], p["h"], 1),
                        1e-5, 1e-5)


class Downsample(Family):
    name, category = "image.downsample", "image"
    summary = "2x2 average pooling of a W x H image into (W/2) x (H/2)"

    def draw(self, rng):
        return {"w": pick(rng, SIZES), "h": pick(rng, SIZES), "tile": pick(rng, TILE_SIZES)}

    def shader(self, p):
        consts = [f"const W: u32 = {p['w']}u;", f"const H: u32 = {p['h']}u;", "const OW: u32 = W / 2u;",
                  "const OH: u32 = H / 2u;"]
        body = ["let sx = 2u * x;", "let sy = 2u * y;",
                "let s = src[sy * W + sx] + src[sy * W + sx + 1u] + src[(sy + 1u) * W + sx] "
                "+ src[(sy + 1u) * W + sx + 1u];", "dst[y * OW + x] = 0.25 * s;"]
        return kernel_2d([storage(0, "src", F), storage(1, "dst", F, write=True)], p["tile"], consts, body,
                         "downsample", w="OW", h="OH")

    def prompt(self, p, rng):
        return compose(rng, ["halves a {w}x{h} grayscale image by averaging each 2x2 block",
                             "downsamples a row-major {w} by {h} float image 2x with box filtering (mean of 2x2 "
                             "pixels)"], tile=p["tile"], w=p["w"], h=p["h"])

    def case(self, p, rng):
        img = _image(rng, p["w"], p["h"])
        h2, w2 = p["h"] // 2, p["w"] // 2
        blocks = img[:2 * h2, :2 * w2].reshape(h2, 2, w2, 2).astype(np.float64)
        return TestCase({0: img}, {1: (0.25 * blocks.sum(axis=(1, 3))).astype(np.float32)}, (w2, h2, 1), 1e-6, 1e-5)


class Flip(Family):
    name, category = "image.flip", "image"
    summary = "mirror a W x H image horizontally or vertically"

    def draw(self, rng):
        return {"w": pick(rng, SIZES), "h": pick(rng, SIZES), "tile": pick(rng, TILE_SIZES),
                "axis": pick(rng, ["horizontal", "vertical"])}

    def shader(self, p):
        src = "src[y * W + (W - 1u - x)]" if p["axis"] == "horizontal" else "src[(H - 1u - y) * W + x]"
        return kernel_2d([storage(0, "src", F), storage(1, "dst", F, write=True)], p["tile"], _consts(p),
                         [f"dst[y * W + x] = {src};"], f"flip_{p['axis']}")

    def prompt(self, p, rng):
        how = "left to right" if p["axis"] == "horizontal" else "upside down"
        return compose(rng, ["flips a {w}x{h} row-major image {axis}ly ({how})", "mirrors a {w} by {h} grayscale "
                             "image {how}"], tile=p["tile"], w=p["w"], h=p["h"], axis=p["axis"], how=how)

    def case(self, p, rng):
        img = _image(rng, p["w"], p["h"])
        out = img[:, ::-1] if p["axis"] == "horizontal" else img[::-1, :]
        return TestCase({0: img}, {1: np.ascontiguousarray(out)}, (p["w"], p["h"], 1))


FAMILIES: list[Family] = [
    Stencil("box_blur", "3x3 mean, clamp to edge", [[1, 1, 1], [1, 1, 1], [1, 1, 1]], " / 9.0",
            ["blurs a {w}x{h} grayscale image (row-major floats) with a 3x3 box filter (kernel 1 1 1 / 1 1 1 / 1 1 "
             "1 divided by 9), clamping reads to the edge",
             "applies a 3x3 mean filter to a {w} by {h} image, border pixels clamped",
             "box-blurs a {w}x{h} float image: each output is the average of its 3x3 neighbourhood"]),
    Stencil("gaussian_blur", "3x3 Gaussian [1 2 1; 2 4 2; 1 2 1] / 16, clamp to edge",
            [[1, 2, 1], [2, 4, 2], [1, 2, 1]], " / 16.0",
            ["blurs a {w}x{h} grayscale image with the 3x3 Gaussian kernel 1 2 1 / 2 4 2 / 1 2 1 divided by 16, "
             "clamping at the edges",
             "applies a 3x3 Gaussian blur, the stencil 1 2 1 / 2 4 2 / 1 2 1 divided by 16, to a {w} by {h} "
             "row-major float image, border clamped"]),
    Sharpen(), Sobel(), Downsample(), Flip(), Convolve(),
]
