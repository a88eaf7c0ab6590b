"""The formula families that teach held-out operations as recombinations: what they write, and that the split
stays clean (no training pair holds a held-out family's own body). No GPU: tests/wgsl runs every template."""

import re

import numpy as np
import pytest

from nanochat_plugins.wgsl import dataset, templates
from nanochat_plugins.wgsl.templates.expr import Grammar, Leaf

# each held-out family's defining statement, as its shaders write it
HELD_OUT_BODY = {
    "chromatic.gamma": r"vec4<f32>\(pow\(c\.rgb, vec3<f32>\([\d.]+\)\), c\.a\)",
    "elementwise.leaky_relu": r"select\([-\d.]+ \* x, x, x > 0\.0\)",
    "elementwise.lerp": r"mix\(x\[i\], y\[i\], [\d.]+\)",
    "reduction.row_min": re.escape("acc = min(acc, matrix[row + c]);"),
    "reduction.workgroup_dot": re.escape("v = x[i] * y[i];"),
    "matrix.matvec": re.escape("a[i * K + k] * x[k]"),
    "image.gaussian_blur": re.escape("\n    ".join(
        ["acc = acc + at(ix - 1, iy - 1);", "acc = acc + 2.0 * at(ix, iy - 1);", "acc = acc + at(ix + 1, iy - 1);",
         "acc = acc + 2.0 * at(ix - 1, iy);", "acc = acc + 4.0 * at(ix, iy);", "acc = acc + 2.0 * at(ix + 1, iy);",
         "acc = acc + at(ix - 1, iy + 1);", "acc = acc + 2.0 * at(ix, iy + 1);", "acc = acc + at(ix + 1, iy + 1);",
         "dst[y * W + x] = acc / 16.0;"])),
}
# what each held-out prompt states literally
HELD_OUT_PROMPT = {
    "chromatic.gamma": "rgb = pow(rgb, ", "elementwise.leaky_relu": "y = max(x, ",
    "elementwise.lerp": "out = ", "reduction.row_min": " of v", "reduction.workgroup_dot": "v = x[i] * y[i]",
    "matrix.matvec": "sum over k of A[i][k] * x[k]", "image.gaussian_blur": "1 2 1 / 2 4 2 / 1 2 1 divided by 16",
}
PREFAB_PER_FAMILY = 40  # prefabs/wgsl-cpu.yaml: the pairs a training run draws
FORMULA_FAMILIES = ("elementwise.formula", "elementwise.formula2", "chromatic.formula", "reduction.row_fold",
                    "reduction.workgroup_map", "matrix.vecmat", "matrix.row_dot", "image.convolve")


@pytest.fixture(scope="module")
def pairs():
    return dataset.generate(per_family=PREFAB_PER_FAMILY, check=False).records


def test_no_training_pair_holds_a_held_out_body_and_every_held_out_pair_does(pairs):
    assert set(HELD_OUT_BODY) == set(dataset.TEST_FAMILIES)
    for fam, body in HELD_OUT_BODY.items():
        own = [r for r in pairs if r.family == fam]
        assert own and all(re.search(body, r.shader) for r in own), fam
        leaks = [r.id for r in pairs if r.split == "train" and re.search(body, r.shader)]
        assert not leaks, (fam, leaks[:3])
    test_shaders = {r.shader for r in pairs if r.split == "test"}
    assert not test_shaders & {r.shader for r in pairs if r.split == "train"}


def test_every_held_out_prompt_states_its_formula(pairs):
    for r in pairs:
        if r.split == "test":
            assert HELD_OUT_PROMPT[r.family] in r.prompt, r.prompt


@pytest.mark.parametrize("name", FORMULA_FAMILIES)
def test_formula_families_are_trained_weighted_and_say_what_they_write(name, pairs):
    fam = templates.family(name)
    assert dataset.split_of(name, dataset.VAL_FAMILIES, dataset.TEST_FAMILIES) == "train"
    own = [r for r in pairs if r.family == name]
    assert len(own) == PREFAB_PER_FAMILY * fam.weight
    for r in own[:20]:
        stated = r.params.get("formula") or r.params.get("map") or r.params.get("load")
        if stated:
            assert stated in r.prompt, r.id


def test_a_formula_is_written_as_stated_and_its_reference_follows_wgsl_precedence():
    g = Grammar([Leaf("x", "x", -2.0, 2.0)])
    x = np.random.default_rng(0).uniform(-2, 2, 101).astype(np.float32).astype(np.float64)
    for seed in range(200):
        e = g.draw(np.random.default_rng(seed), 2)
        assert e.wgsl == e.text  # one input named x: the shader line is the prompt's formula
        # python's precedence for + - * is WGSL's: the text evaluated with numpy's builtins is the reference
        ns = {"x": x, "abs": np.abs, "sqrt": np.sqrt, "exp": np.exp, "pow": np.power, "max": np.maximum,
              "min": np.minimum, "clamp": np.clip, "mix": lambda a, b, t: a * (1 - t) + b * t,
              "select": lambda f, t, c: np.where(c, t, f)}
        got = eval(e.text, ns)  # noqa: S307 - our own generated formula
        assert np.allclose(got, e.fn({"x": x}), rtol=1e-5, atol=1e-5, equal_nan=True), e.text


def test_vector_formulas_wrap_builtin_constants_and_ban_by_whole_match():
    g = Grammar([Leaf("rgb", "c.rgb", 0.05, 0.95)], vec=True, banned=(r"^pow\(c\.rgb, vec3<f32>\([\d.]+\)\)$",))
    for seed in range(200):
        e = g.draw(np.random.default_rng(seed), 1)
        assert "c.rgb" in e.wgsl and not re.fullmatch(r"pow\(c\.rgb, vec3<f32>\([\d.]+\)\)", e.wgsl)
        for f in ("max", "min", "clamp", "pow"):
            if e.wgsl.startswith(f + "(") and e.text.count(",") == e.wgsl.count(","):
                assert "vec3<f32>(" in e.wgsl or e.text.count("rgb") > 1, e.wgsl
