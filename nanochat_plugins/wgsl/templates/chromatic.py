"""Chromatic operations on RGBA tensors (`array<vec4<f32>>`, channels in [0, 1]): the original's four (mix,
filter, complement, saturate) and four relatives (grayscale, invert, brightness, gamma)."""

from __future__ import annotations

import numpy as np

from nanochat_plugins.wgsl.runner import TestCase
from nanochat_plugins.wgsl.templates.common import (
    WORKGROUP_SIZES,
    Family,
    Params,
    case_1d,
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

PIXELS = 300  # not a multiple of any workgroup size: the bounds check matters
V4 = "array<vec4<f32>>"
ZERO, ONE = "vec3<f32>(0.0)", "vec3<f32>(1.0)"


def _pixels(rng: np.random.Generator, n: int = PIXELS) -> np.ndarray:
    return rng.random((n, 4), dtype=np.float32)


def _one_input(p: Params, body: list[str], entry: str, extra_decls: list[str] | None = None,
               consts: list[str] | None = None) -> str:
    decls = [storage(0, "src", V4), storage(1, "dst", V4, write=True)] + (extra_decls or [])
    return kernel_1d(decls, p["wg"], "arrayLength(&dst)", ["let c = src[i];", *body], entry, consts)


class Mix(Family):
    name, category = "chromatic.mix", "chromatic"
    summary = "additive blend of two RGBA tensors with weights, clamped to [0, 1]; alpha is their mean"

    def draw(self, rng):
        wa = value(rng, 0.1, 1.0, 1)
        return {"wa": wa, "wb": pick(rng, [round(1.0 - wa, 1) or 0.5, value(rng, 0.1, 1.0, 1)]),
                "wg": pick(rng, WORKGROUP_SIZES)}

    def shader(self, p):
        decls = [storage(0, "a", V4), storage(1, "b", V4), storage(2, "dst", V4, write=True)]
        body = [f"let rgb = clamp({flt(p['wa'])} * a[i].rgb + {flt(p['wb'])} * b[i].rgb, {ZERO}, {ONE});",
                "dst[i] = vec4<f32>(rgb, 0.5 * (a[i].a + b[i].a));"]
        return kernel_1d(decls, p["wg"], "arrayLength(&dst)", body, "chromatic_mix")

    def prompt(self, p, rng):
        return compose(rng, [
            "mixes two RGBA color tensors additively with weights {wa} and {wb}, clamps the color to [0, 1] and "
            "averages the alpha",
            "blends tensor a (weight {wa}) and tensor b (weight {wb}) by adding their RGB channels, clamped to "
            "the unit range, with alpha set to the mean of both alphas",
            "does a chromatic mix: output rgb = clamp({wa} * a + {wb} * b, 0, 1), output alpha = average alpha",
        ], wg=p["wg"], wa=flt(p["wa"]), wb=flt(p["wb"]))

    def case(self, p, rng):
        a, b = _pixels(rng), _pixels(rng)
        rgb = np.clip(f32(p["wa"]) * a[:, :3] + f32(p["wb"]) * b[:, :3], 0, 1)
        out = np.concatenate([rgb, f32(0.5) * (a[:, 3:] + b[:, 3:])], axis=1)
        return case_1d({0: a, 1: b}, {2: out}, PIXELS)


class Filter(Family):
    name, category = "chromatic.filter", "chromatic"
    summary = "subtractive filter: a minus strength times b, clamped to [0, 1]; alpha from a"

    def draw(self, rng):
        return {"s": pick(rng, [1.0, value(rng, 0.2, 1.0, 1)]), "wg": pick(rng, WORKGROUP_SIZES)}

    def shader(self, p):
        decls = [storage(0, "a", V4), storage(1, "b", V4), storage(2, "dst", V4, write=True)]
        body = [f"let rgb = clamp(a[i].rgb - {flt(p['s'])} * b[i].rgb, {ZERO}, {ONE});",
                "dst[i] = vec4<f32>(rgb, a[i].a);"]
        return kernel_1d(decls, p["wg"], "arrayLength(&dst)", body, "chromatic_filter")

    def prompt(self, p, rng):
        return compose(rng, [
            "filters RGBA tensor a by tensor b subtractively: rgb = a - {s} * b clamped to [0, 1], keeping the "
            "alpha of a",
            "applies a chromatic filter, subtracting {s} times the color of b from a (clamped between 0 and 1) "
            "and keeping a's alpha",
            "subtracts {s} * b.rgb from a.rgb per pixel, clamps to the unit range and copies a's alpha channel",
        ], wg=p["wg"], s=flt(p["s"]))

    def case(self, p, rng):
        a, b = _pixels(rng), _pixels(rng)
        rgb = np.clip(a[:, :3] - f32(p["s"]) * b[:, :3], 0, 1)
        return case_1d({0: a, 1: b}, {2: np.concatenate([rgb, a[:, 3:]], axis=1)}, PIXELS)


class Complement(Family):
    name, category = "chromatic.complement", "chromatic"
    summary = "complementary color (180° hue rotation: max + min - c), optionally blended with the original"

    def draw(self, rng):
        return {"t": pick(rng, [1.0, 1.0, value(rng, 0.2, 0.9, 1)]), "wg": pick(rng, WORKGROUP_SIZES)}

    def shader(self, p):
        body = ["let m = max(max(c.r, c.g), c.b) + min(min(c.r, c.g), c.b);",
                "let comp = vec3<f32>(m) - c.rgb;"]
        if p["t"] == 1.0:
            body.append("dst[i] = vec4<f32>(comp, c.a);")
        else:
            body.append(f"dst[i] = vec4<f32>(mix(c.rgb, comp, {flt(p['t'])}), c.a);")
        return _one_input(p, body, "chromatic_complement")

    def prompt(self, p, rng):
        if p["t"] == 1.0:
            phrases = ["replaces every RGBA color by its complement (a 180 degree hue rotation), keeping alpha",
                       "rotates the hue of each pixel by 180 degrees (complementary color: max + min - c), alpha "
                       "unchanged",
                       "computes the chromatic complement of a color tensor, preserving alpha"]
        else:
            phrases = ["blends each RGBA color toward its complement (180 degree hue rotation) by {t}, keeping "
                       "alpha",
                       "rotates hue by 180 degrees and mixes the result with the original color at {t}, alpha "
                       "unchanged"]
        return compose(rng, phrases, wg=p["wg"], t=flt(p["t"]))

    def case(self, p, rng):
        c = _pixels(rng)
        m = c[:, :3].max(axis=1, keepdims=True) + c[:, :3].min(axis=1, keepdims=True)
        comp = m - c[:, :3]
        t = f32(p["t"])
        rgb = comp if p["t"] == 1.0 else c[:, :3] * (f32(1) - t) + comp * t
        return TestCase({0: c}, {1: np.concatenate([rgb, c[:, 3:]], axis=1)}, (PIXELS, 1, 1), 1e-5, 1e-5)


class Saturate(Family):
    name, category = "chromatic.saturate", "chromatic"
    summary = "scale each color's distance from its channel mean by k, clamped; k inline or from a uniform"

    def draw(self, rng):
        return {"k": value(rng, 0.0, 2.0, 1), "uniform": bool(rng.random() < 0.4), "wg": pick(rng, WORKGROUP_SIZES)}

    def shader(self, p):
        k = "params.k" if p["uniform"] else flt(p["k"])
        body = ["let mean = (c.r + c.g + c.b) / 3.0;",
                f"let rgb = vec3<f32>(mean) + {k} * (c.rgb - vec3<f32>(mean));",
                f"dst[i] = vec4<f32>(clamp(rgb, {ZERO}, {ONE}), c.a);"]
        if p["uniform"]:
            return _one_input(p, body, "chromatic_saturate", [uniform(2, "params", "Params")],
                              ["struct Params {", "    k: f32,", "}"])
        return _one_input(p, body, "chromatic_saturate")

    def prompt(self, p, rng):
        extra = "Read the factor k from a uniform struct at binding 2." if p["uniform"] else ""
        k = "k" if p["uniform"] else flt(p["k"])
        return compose(rng, [
            "changes the saturation of an RGBA tensor: each color moves away from its channel mean by a factor of "
            "{k}, clamped to [0, 1], alpha kept",
            "saturates colors: rgb = mean + {k} * (rgb - mean), clamped to the unit range, keeping alpha",
            "scales the distance of every pixel's RGB from their mean by {k} and clamps the result",
        ], wg=p["wg"], extra=extra, k=k)

    def case(self, p, rng):
        c = _pixels(rng)
        mean = (c[:, 0:1] + c[:, 1:2] + c[:, 2:3]) / f32(3)
        rgb = np.clip(mean + f32(p["k"]) * (c[:, :3] - mean), 0, 1)
        inputs = {0: c}
        if p["uniform"]:
            inputs[2] = uniform_bytes(("f32", p["k"]))
        return TestCase(inputs, {1: np.concatenate([rgb, c[:, 3:]], axis=1)}, (PIXELS, 1, 1), 1e-5, 1e-5)


class Grayscale(Family):
    name, category = "chromatic.grayscale", "chromatic"
    summary = "luma (Rec. 601 or Rec. 709 weights) into all three channels, alpha kept"
    WEIGHTS = {"Rec. 601": (0.299, 0.587, 0.114), "Rec. 709": (0.2126, 0.7152, 0.0722)}

    def draw(self, rng):
        return {"std": pick(rng, list(self.WEIGHTS)), "wg": pick(rng, WORKGROUP_SIZES)}

    def shader(self, p):
        w = ", ".join(flt(x) for x in self.WEIGHTS[p["std"]])
        return _one_input(p, [f"let y = dot(c.rgb, vec3<f32>({w}));", "dst[i] = vec4<f32>(vec3<f32>(y), c.a);"],
                          "grayscale")

    def prompt(self, p, rng):
        w = ", ".join(flt(x) for x in self.WEIGHTS[p["std"]])
        return compose(rng, [
            "converts an RGBA tensor to grayscale with {std} luma weights ({w}), alpha kept",
            "turns each color into gray using the {std} coefficients {w} for r, g and b, keeping alpha",
        ], wg=p["wg"], std=p["std"], w=w)

    def case(self, p, rng):
        c = _pixels(rng)
        y = c[:, :3] @ f32(self.WEIGHTS[p["std"]])
        return TestCase({0: c}, {1: np.concatenate([np.repeat(y[:, None], 3, 1), c[:, 3:]], 1)}, (PIXELS, 1, 1),
                        1e-5, 1e-5)


class Invert(Family):
    name, category = "chromatic.invert", "chromatic"
    summary = "1 - rgb (and optionally 1 - alpha)"

    def draw(self, rng):
        return {"alpha": bool(rng.random() < 0.3), "wg": pick(rng, WORKGROUP_SIZES)}

    def shader(self, p):
        out = "vec4<f32>(1.0) - c" if p["alpha"] else "vec4<f32>(vec3<f32>(1.0) - c.rgb, c.a)"
        return _one_input(p, [f"dst[i] = {out};"], "invert")

    def prompt(self, p, rng):
        if p["alpha"]:
            return compose(rng, ["inverts all four channels of an RGBA tensor (1 - value), alpha included",
                                 "computes 1 - c for every channel of every pixel, including alpha"], wg=p["wg"])
        return compose(rng, ["inverts the colors of an RGBA tensor (1 - rgb) and keeps alpha",
                             "makes a negative image: rgb becomes 1 - rgb, alpha unchanged"], wg=p["wg"])

    def case(self, p, rng):
        c = _pixels(rng)
        out = 1 - c if p["alpha"] else np.concatenate([1 - c[:, :3], c[:, 3:]], 1)
        return case_1d({0: c}, {1: out}, PIXELS)


class Brightness(Family):
    name, category = "chromatic.brightness", "chromatic"
    summary = "rgb times a gain, clamped to [0, 1], alpha kept"

    def draw(self, rng):
        return {"k": value(rng, 0.2, 2.5, 1), "wg": pick(rng, WORKGROUP_SIZES)}

    def shader(self, p):
        return _one_input(p, [f"dst[i] = vec4<f32>(clamp(c.rgb * {flt(p['k'])}, {ZERO}, {ONE}), c.a);"],
                          "brightness")

    def prompt(self, p, rng):
        return compose(rng, ["scales the brightness of an RGBA tensor by {k}: rgb = clamp(rgb * {k}, 0.0, 1.0), "
                             "keeping alpha",
                             "multiplies every color by a gain of {k} (clamped to the unit range), alpha unchanged"],
                       wg=p["wg"], k=flt(p["k"]))

    def case(self, p, rng):
        c = _pixels(rng)
        return case_1d({0: c}, {1: np.concatenate([np.clip(c[:, :3] * f32(p["k"]), 0, 1), c[:, 3:]], 1)}, PIXELS)


class Gamma(Family):
    name, category = "chromatic.gamma", "chromatic"
    summary = "gamma correction: rgb to the power g, alpha kept"

    def draw(self, rng):
        return {"g": pick(rng, [2.2, 0.45, value(rng, 0.3, 3.0, 1)]), "wg": pick(rng, WORKGROUP_SIZES)}

    def shader(self, p):
        return _one_input(p, [f"dst[i] = vec4<f32>(pow(c.rgb, vec3<f32>({flt(p['g'])})), c.a);"], "gamma")

    def prompt(self, p, rng):
        return compose(rng, ["applies gamma {g} to an RGBA tensor (rgb = pow(rgb, {g})), keeping alpha",
                             "gamma-corrects every pixel: rgb = pow(rgb, {g}), alpha unchanged"],
                       wg=p["wg"], g=flt(p["g"]))

    def case(self, p, rng):
        c = _pixels(rng) * f32(0.98) + f32(0.01)  # pow(0, g) is implementation-defined near zero
        return TestCase({0: c}, {1: np.concatenate([np.power(c[:, :3], f32(p["g"])), c[:, 3:]], 1)},
                        (PIXELS, 1, 1), 1e-5, 1e-4)


class ColorFormula(Family):
    """rgb = a random per-channel formula of rgb, stated literally in the prompt, alpha kept."""

    name, category = "chromatic.formula", "chromatic"
    summary = "rgb = a stated random per-channel formula of rgb (builtins on vec3), alpha kept"
    weight = 6
    # gamma's own body, the whole formula pow(c.rgb, vec3<f32>(g)), stays held out
    GRAMMAR = Grammar([Leaf("rgb", "c.rgb", 0.05, 0.95)], vec=True,
                      banned=(r"^pow\(c\.rgb, vec3<f32>\([\d.]+\)\)$",))

    def draw(self, rng):
        fseed, depth = int(rng.integers(2**31)), int(pick(rng, [1, 2, 2]))
        return {"formula": self.GRAMMAR.draw(np.random.default_rng(fseed), depth).text, "fseed": fseed,
                "depth": depth, "wg": pick(rng, WORKGROUP_SIZES)}

    def shader(self, p):
        e = self.GRAMMAR.draw(np.random.default_rng(p["fseed"]), p["depth"])
        return _one_input(p, [f"dst[i] = vec4<f32>({e.wgsl}, c.a);"], "recolor")

    def prompt(self, p, rng):
        return compose(rng, ["maps the color of every pixel of an RGBA tensor to rgb = {f}, keeping alpha",
                             "computes rgb = {f} per pixel, alpha unchanged",
                             "applies the color formula rgb = {f} to each RGBA pixel and keeps its alpha"],
                       wg=p["wg"], f=p["formula"])

    def case(self, p, rng):
        e = self.GRAMMAR.draw(np.random.default_rng(p["fseed"]), p["depth"])
        c = _pixels(rng) * f32(0.9) + f32(0.05)  # the range the grammar assumes (pow and sqrt stay positive)
        rgb = e.fn({"rgb": c[:, :3].astype(np.float64)}).astype(np.float32)
        return TestCase({0: c}, {1: np.concatenate([rgb, c[:, 3:]], 1)}, (PIXELS, 1, 1), 1e-4, 1e-4)


FAMILIES = [Mix(), Filter(), Complement(), Saturate(), Grayscale(), Invert(), Brightness(), Gamma(), ColorFormula()]
