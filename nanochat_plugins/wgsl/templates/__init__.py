"""The template families: each writes parameterised WGSL compute shaders, says what they do in English, and
makes test buffers with a numpy reference of the expected output. See common.py for the interface.

Categories: chromatic (RGBA tensors: the original's mix, filter, complement, saturate and relatives),
elementwise maps, reductions, matrix operations and image kernels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from nanochat_plugins.wgsl.errors import WgslError
from nanochat_plugins.wgsl.runner import TestCase
from nanochat_plugins.wgsl.templates import chromatic, elementwise, image, matrix, reduction
from nanochat_plugins.wgsl.templates.common import Family

FAMILIES: dict[str, Family] = {f.name: f for mod in (chromatic, elementwise, reduction, matrix, image)
                               for f in mod.FAMILIES}
CATEGORIES: tuple[str, ...] = ("chromatic", "elementwise", "reduction", "matrix", "image")


@dataclass(frozen=True)
class Sample:
    """One prompt -> shader pair, reproducible from (family, seed)."""

    family: str
    seed: int
    params: dict[str, Any]
    prompt: str
    shader: str

    @property
    def category(self) -> str:
        return FAMILIES[self.family].category


def family(name: str) -> Family:
    try:
        return FAMILIES[name]
    except KeyError:
        raise WgslError(f"template family {name!r}: unknown: use one of {', '.join(FAMILIES)}") from None


def sample(name: str, seed: int) -> Sample:
    """The pair that family `name` writes for `seed` (parameters, wording and shader all follow from it)."""
    fam = family(name)
    rng = np.random.default_rng([seed, 0])
    params = fam.draw(rng)
    return Sample(name, seed, params, fam.prompt(params, rng), fam.shader(params))


def case_for(name: str, params: dict[str, Any], seed: int) -> TestCase:
    """The test buffers and numpy-expected outputs for a pair of family `name` with these parameters."""
    return family(name).case(params, np.random.default_rng([seed, 1]))
