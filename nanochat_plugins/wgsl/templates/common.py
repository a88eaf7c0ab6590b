"""What every template family shares: the `Family` interface, WGSL snippets, number formatting and wording.

A family is one operation (`chromatic.mix`, `matrix.transpose` ...) with parameters. `draw(rng)` picks
parameters (values and the style choices a prompt states, such as the workgroup size); `shader(p)` writes
the WGSL; `prompt(p, rng)` says the same in English, in one of several wordings; `case(p, rng)` makes test
buffers and the expected outputs from a numpy reference. Binding order is the task's contract: inputs
first, then the output, then a uniform if any; names and workgroup sizes are free.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from nanochat_plugins.wgsl.runner import TestCase

Params = dict[str, Any]
WORKGROUP_SIZES = (64, 64, 128, 256)  # 64 twice: the usual choice, and the one prompts may leave unsaid
TILE_SIZES = (8, 8, 16)


class Family:
    name = ""
    category = ""
    summary = ""  # one line, for listings and the dataset README
    weight = 1  # the dataset draws per_family * weight pairs: the formula families need many to teach copying,
    # and their variety (unlike a fixed operation's pairs) is what keeps the model from memorising

    def draw(self, rng: np.random.Generator) -> Params:
        raise NotImplementedError

    def shader(self, p: Params) -> str:
        raise NotImplementedError

    def prompt(self, p: Params, rng: np.random.Generator) -> str:
        raise NotImplementedError

    def case(self, p: Params, rng: np.random.Generator) -> TestCase:
        raise NotImplementedError


def flt(v: float) -> str:
    """A float as both the WGSL literal and the prompt's number: shortest form, always with a decimal point."""
    s = f"{float(v):.6g}"
    return s if any(c in s for c in ".e") else s + ".0"


def pick(rng: np.random.Generator, options: list | tuple) -> Any:
    return options[int(rng.integers(len(options)))]


def value(rng: np.random.Generator, lo: float, hi: float, digits: int = 2) -> float:
    """A round number in [lo, hi] (never -0.0)."""
    return float(round(float(rng.uniform(lo, hi)), digits)) + 0.0


OPENERS = (
    "Write a WGSL compute shader that {vp}.",
    "Create a WGSL compute kernel that {vp}.",
    "I need a compute shader in WGSL that {vp}.",
    "Generate a WebGPU compute shader which {vp}.",
    "WGSL: a compute shader that {vp}.",
    "Please write a compute shader (WGSL) that {vp}.",
)
WG_PHRASES = (
    "Use a workgroup size of {wg}.",
    "Workgroups of {wg} invocations.",
    "Run {wg} threads per workgroup.",
    "Set @workgroup_size to {wg}.",
)
TILE_PHRASES = (
    "Use {t}x{t} workgroups.",
    "Workgroups are {t} by {t}.",
    "Tile the work in {t}x{t} workgroups.",
)


def compose(rng: np.random.Generator, verb_phrases: list[str], wg: int | None = None, tile: int | None = None,
            extra: str = "", **fmt: Any) -> str:
    """Opener + one of the family's verb phrases (formatted with `fmt`) + an optional sentence + the
    workgroup sentence (always said unless it is the default 64, then half the time)."""
    vp = pick(rng, verb_phrases).format(**fmt)
    parts = [pick(rng, OPENERS).format(vp=vp)]
    if extra:
        parts.append(extra)
    if wg is not None and (wg != 64 or rng.random() < 0.5):
        parts.append(pick(rng, WG_PHRASES).format(wg=wg))
    if tile is not None and (tile != 8 or rng.random() < 0.5):
        parts.append(pick(rng, TILE_PHRASES).format(t=tile))
    return " ".join(parts)


def storage(binding: int, name: str, ty: str, write: bool = False) -> str:
    access = "read_write" if write else "read"
    return f"@group(0) @binding({binding}) var<storage, {access}> {name}: {ty};"


def uniform(binding: int, name: str, ty: str) -> str:
    return f"@group(0) @binding({binding}) var<uniform> {name}: {ty};"


def kernel_1d(decls: list[str], wg: int, guard: str, body: list[str], entry: str = "main",
              consts: list[str] | None = None, helpers: list[str] | None = None) -> str:
    """A 1-D kernel: one invocation per element `i`, returning early past `guard` (the element count)."""
    lines = list(consts or [])
    if consts:
        lines.append("")
    lines += decls + [""]
    if helpers:
        lines += helpers + [""]
    lines += [
        f"@compute @workgroup_size({wg})",
        f"fn {entry}(@builtin(global_invocation_id) gid: vec3<u32>) {{",
        "    let i = gid.x;",
        f"    if (i >= {guard}) {{",
        "        return;",
        "    }",
        *("    " + b for b in body),
        "}",
    ]
    return "\n".join(lines) + "\n"


def kernel_2d(decls: list[str], tile: int, consts: list[str], body: list[str], entry: str = "main",
              helpers: list[str] | None = None, xname: str = "x", yname: str = "y", w: str = "W",
              h: str = "H") -> str:
    """A 2-D kernel: one invocation per (x, y) of a `w` x `h` grid of consts, in tile x tile workgroups."""
    lines = consts + [""] + decls + [""]
    if helpers:
        lines += helpers + [""]
    lines += [
        f"@compute @workgroup_size({tile}, {tile})",
        f"fn {entry}(@builtin(global_invocation_id) gid: vec3<u32>) {{",
        f"    let {xname} = gid.x;",
        f"    let {yname} = gid.y;",
        f"    if ({xname} >= {w} || {yname} >= {h}) {{",
        "        return;",
        "    }",
        *("    " + b for b in body),
        "}",
    ]
    return "\n".join(lines) + "\n"


def f32(a: Any) -> np.ndarray:
    return np.asarray(a, dtype=np.float32)


def uniform_bytes(*values: tuple[str, float]) -> np.ndarray:
    """Scalars packed as a WGSL struct of 4-byte members (in order), padded to 16 bytes, as uint8."""
    words = [np.array([v], dtype={"f32": np.float32, "u32": np.uint32, "i32": np.int32}[t]).view(np.uint32)[0]
             for t, v in values]
    words += [0] * (-len(words) % 4)
    return np.array(words, dtype=np.uint32).view(np.uint8)


def case_1d(inputs: dict[int, np.ndarray], expected: dict[int, np.ndarray], n: int,
            atol: float = 1e-5, rtol: float = 1e-5) -> TestCase:
    return TestCase(inputs, expected, (n, 1, 1), atol, rtol)
