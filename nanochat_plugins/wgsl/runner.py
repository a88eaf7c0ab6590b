"""Run a compute shader on the WebGPU device with test buffers and read its outputs back.

`run_case(source, case)` dispatches a shader on a task's buffers (`TestCase`: inputs by binding, the expected
contents of the outputs from a numpy reference, the grid of invocations) and says whether it computed the
right thing. The number of workgroups comes from the shader's own @workgroup_size, so any workgroup size
that covers the grid passes. `auto_buffers(source)` makes buffers for any shader from its declarations
(random inputs, zeroed outputs) for `wgsl run FILE`.

Shaders run on the device in this process: a shader that never ends (an endless loop) blocks the process.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from nanochat_plugins.wgsl import gpu
from nanochat_plugins.wgsl.errors import WgslError
from nanochat_plugins.wgsl.reflect import Binding, Reflection, WgslType, reflect
from nanochat_plugins.wgsl.validate import parse_naga_report

MAX_WORKGROUPS_PER_DIM = 65535  # WebGPU's default limit


@dataclass
class TestCase:
    """A task's buffers (group 0, by binding) and what the outputs must hold afterwards."""

    __test__ = False  # not a pytest class, whatever its name

    inputs: dict[int, np.ndarray]  # binding -> initial contents (any dtype; uploaded as raw bytes)
    expected: dict[int, np.ndarray]  # binding -> contents after the run (compared as this dtype and shape)
    grid: tuple[int, int, int]  # invocations needed along x, y, z
    atol: float = 1e-5
    rtol: float = 1e-5


@dataclass
class RunResult:
    ok: bool  # dispatched, and (when there was an expectation) the outputs match it
    message: str  # one line
    outputs: dict[int, np.ndarray] = field(default_factory=dict)  # binding -> what the shader left there
    max_abs_err: float = 0.0
    seconds: float = 0.0  # compile + dispatch + read-back


def _gpu_error(e: Exception) -> str:
    """A wgpu error as one line: naga's diagnostic when it is one, else the first line that says something."""
    text = str(e)
    if "┌─" in text:
        d = parse_naga_report(text)
        return f"{d.line}:{d.column}: {d.message}" if d.line else d.message
    lines = [ln.strip() for ln in text.splitlines()
             if ln.strip() and ln.strip() not in ("Validation Error", "Caused by:")]
    return " ".join(" ".join(lines[:3]).split()) or type(e).__name__


def dispatch(source: str, data: dict[tuple[int, int], bytes], read: list[tuple[int, int]],
             grid: tuple[int, int, int], entry: str | None = None,
             reflection: Reflection | None = None) -> tuple[dict[tuple[int, int], bytes], float]:
    """Compile, bind `data` ((group, binding) -> bytes; every binding the shader declares must be there), run
    enough workgroups to cover `grid`, and return the bytes of the `read` bindings and the seconds it took.
    Raises WgslError with one line for anything that goes wrong."""
    wgpu = gpu.wgpu_module()
    dev = gpu.device()
    r = reflection or reflect(source)
    ep = r.compute_entry(entry)
    groups = [ceil_div(g, w) for g, w in zip(grid, ep.workgroup_size, strict=True)]
    if any(g > MAX_WORKGROUPS_PER_DIM for g in groups):
        raise WgslError(f"dispatch of {groups} workgroups: over WebGPU's {MAX_WORKGROUPS_PER_DIM} per dimension: "
                        f"use a larger @workgroup_size or a smaller grid")
    by_key = {(b.group, b.binding): b for b in r.bindings}
    missing = [k for k in by_key if k not in data]
    if missing:
        raise WgslError(f"binding {missing[0][1]} (group {missing[0][0]}) `{by_key[missing[0]].name}`: no buffer "
                        f"for it: this task has bindings {sorted(b for _, b in data)}")
    t0 = time.perf_counter()
    try:
        module = dev.create_shader_module(code=source)
        layouts, buffers, entries = [], {}, {}
        for g in range(max((k[0] for k in by_key), default=-1) + 1):
            layout_entries = []
            entries[g] = []
            for (bg, bi), b in sorted(by_key.items()):
                if bg != g:
                    continue
                raw = data[(bg, bi)]
                need = b.type.size if not b.type.runtime_sized else b.type.stride
                size = max(len(raw), need, 4)
                size = ceil_div(size, 16) * 16 if b.space == "uniform" else ceil_div(size, 4) * 4
                if b.space == "uniform":
                    usage, kind = wgpu.BufferUsage.UNIFORM | wgpu.BufferUsage.COPY_DST, "uniform"
                else:
                    usage = wgpu.BufferUsage.STORAGE | wgpu.BufferUsage.COPY_SRC | wgpu.BufferUsage.COPY_DST
                    kind = "storage" if b.writable else "read-only-storage"
                buf = dev.create_buffer(size=size, usage=usage)
                if raw:
                    padded = raw + b"\0" * (-len(raw) % 4)
                    dev.queue.write_buffer(buf, 0, padded)
                buffers[(bg, bi)] = buf
                layout_entries.append({"binding": bi, "visibility": wgpu.ShaderStage.COMPUTE,
                                       "buffer": {"type": kind}})
                entries[g].append({"binding": bi, "resource": {"buffer": buf, "offset": 0, "size": size}})
            layouts.append(dev.create_bind_group_layout(entries=layout_entries))
        pipeline = dev.create_compute_pipeline(layout=dev.create_pipeline_layout(bind_group_layouts=layouts),
                                               compute={"module": module, "entry_point": ep.name})
        encoder = dev.create_command_encoder()
        cpass = encoder.begin_compute_pass()
        cpass.set_pipeline(pipeline)
        for g, layout in enumerate(layouts):
            cpass.set_bind_group(g, dev.create_bind_group(layout=layout, entries=entries[g]))
        cpass.dispatch_workgroups(*groups)
        cpass.end()
        dev.queue.submit([encoder.finish()])
        out = {k: bytes(dev.queue.read_buffer(buffers[k])) for k in read if k in buffers}
    except WgslError:
        raise
    except Exception as e:  # GPUValidationError and friends: the shader or its bindings are wrong
        raise WgslError(_gpu_error(e)) from None
    return out, time.perf_counter() - t0


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def run_case(source: str, case: TestCase, entry: str | None = None) -> RunResult:
    """Run `source` on the case's buffers and compare its outputs with the expectation. Never raises for a
    wrong shader (that is a failed result); raises NoAdapter when there is no device."""
    data = {(0, k): np.ascontiguousarray(v).tobytes() for k, v in case.inputs.items()}
    for k, v in case.expected.items():
        data.setdefault((0, k), bytes(np.ascontiguousarray(v).nbytes))
    try:
        r = reflect(source)
        extra = [b for b in r.bindings if (b.group, b.binding) not in data]
        if extra:
            b = extra[0]
            return RunResult(False, f"binding {b.binding} (group {b.group}) `{b.name}` is not one of this task's "
                                    f"buffers (bindings {sorted(case.inputs | case.expected)})")
        raw, seconds = dispatch(source, data, [(0, k) for k in case.expected], case.grid, entry, r)
    except gpu.NoAdapter:
        raise
    except WgslError as e:
        return RunResult(False, str(e))
    outputs, worst, problems = {}, 0.0, []
    for k, want in case.expected.items():
        got = np.frombuffer(raw[(0, k)], dtype=want.dtype, count=want.size).reshape(want.shape)
        outputs[k] = got
        if np.issubdtype(want.dtype, np.floating):
            err = np.abs(got.astype(np.float64) - want.astype(np.float64))
            bad = ~np.isclose(got, want, atol=case.atol, rtol=case.rtol)
            worst = max(worst, float(np.nanmax(err)) if np.isfinite(err).any() else float("inf"))
            if np.isnan(err).any():
                worst = float("inf")
        else:
            bad = got != want
            worst = max(worst, float(np.abs(got.astype(np.int64) - want.astype(np.int64)).max(initial=0)))
        if bad.any():
            first = tuple(int(v) for v in np.unravel_index(int(np.argmax(bad.reshape(-1))), want.shape))
            problems.append(f"binding {k}: {int(bad.sum())} of {want.size} values differ (first at {list(first)}: "
                            f"got {got[first].item():.6g}, expected {want[first].item():.6g})")
    if problems:
        return RunResult(False, "; ".join(problems), outputs, worst, seconds)
    return RunResult(True, f"matches the numpy reference (max abs error {worst:.2g})", outputs, worst, seconds)


# ---- buffers for any shader (`wgsl run FILE`)

_RANDOM = {"f32": lambda rng, n: rng.random(n, dtype=np.float32),
           "u32": lambda rng, n: rng.integers(0, 100, n, dtype=np.uint32),
           "i32": lambda rng, n: rng.integers(-50, 50, n, dtype=np.int32)}
_DTYPES = {"f32": np.float32, "u32": np.uint32, "i32": np.int32}
_CODES = ("f32", "u32", "i32")
MAX_AUTO_BYTES = 256 << 20  # one binding's buffer for `wgsl run`


def element_count(b: Binding, n: int) -> int:
    """How many elements (of a runtime-sized array) or values (1) a binding gets."""
    return n if b.type.runtime_sized else 1


@dataclass(frozen=True)
class _Leaves:
    index: np.ndarray  # word index (byte offset / 4) of every scalar
    code: np.ndarray  # its scalar type, as an index into _CODES
    paths: list[str]  # the paths of one element's (or the value's) scalars, e.g. [".x", ".y"] or [".alpha"]


def _leaves(t: WgslType, count: int) -> _Leaves:
    """Every scalar of `count` elements of a runtime-sized array, or of one value of any other type; arrays are
    expanded with numpy (a large array costs no Python loop per element)."""
    if t.kind == "array":
        assert t.element is not None
        n = count if t.count is None else t.count
        if n * t.stride > MAX_AUTO_BYTES:
            raise WgslError(f"type {t.text}: {n * t.stride / 2**20:.0f} MiB is over the {MAX_AUTO_BYTES >> 20} MiB "
                            f"this command gives one binding: use a smaller --n or array")
        inner = t.element.leaves()
        offsets = np.array([o for o, _, _ in inner], dtype=np.int64)
        index = ((np.arange(n, dtype=np.int64)[:, None] * t.stride + offsets[None, :]) // 4).reshape(-1)
        code = np.tile(np.array([_CODES.index(s) for _, s, _ in inner], dtype=np.int8), n)
        return _Leaves(index, code, [p for _, _, p in inner])
    if t.size > MAX_AUTO_BYTES:
        raise WgslError(f"type {t.text}: over the {MAX_AUTO_BYTES >> 20} MiB this command gives one binding")
    inner = t.leaves()
    return _Leaves(np.array([o // 4 for o, _, _ in inner], dtype=np.int64),
                   np.array([_CODES.index(s) for _, s, _ in inner], dtype=np.int8), [p for _, _, p in inner])


def auto_buffers(source: str, n: int = 1024, seed: int = 0, values: dict[str, float] | None = None,
                 reflection: Reflection | None = None) -> dict[tuple[int, int], bytes]:
    """Buffers for every binding: runtime-sized arrays get `n` elements; read-only storage gets random values
    (f32 in [0, 1), u32 in [0, 100), i32 in [-50, 50)); read_write storage starts at zero; a uniform's u32/i32
    fields get `n` and its f32 fields 1.0, unless `values` names the field (`alpha`, `p.alpha`)."""
    r = reflection or reflect(source)
    rng = np.random.default_rng(seed)
    values = dict(values or {})
    used: set[str] = set()
    out: dict[tuple[int, int], bytes] = {}
    fields: list[str] = []
    for b in r.bindings:
        count = element_count(b, n)
        size = b.type.stride * count if b.type.runtime_sized else b.type.size
        words = np.zeros(ceil_div(size, 4), dtype=np.uint32)
        lv = _leaves(b.type, count)
        if b.space == "uniform":
            fields += [f"{b.name}{p}" for p in lv.paths]
            for k, (i, c) in enumerate(zip(lv.index, lv.code, strict=True)):
                kind = _CODES[c]
                v: float = n if kind != "f32" else 1.0
                p = lv.paths[k % len(lv.paths)]
                for key in (f"{b.name}{p}", p.lstrip(".")):
                    if key in values:
                        v = values[key]
                        used.add(key)
                words[i] = np.array([v]).astype(_DTYPES[kind]).view(np.uint32)[0]
        elif not b.writable:
            for c, kind in enumerate(_CODES):
                sel = lv.code == c
                if sel.any():
                    words[lv.index[sel]] = _RANDOM[kind](rng, int(sel.sum())).view(np.uint32)
        out[(b.group, b.binding)] = words.tobytes()
    unknown = sorted(set(values) - used)
    if unknown:
        if not fields:
            raise WgslError(f"--set {unknown[0]}: the shader has no uniform buffer: drop --set")
        raise WgslError(f"--set {unknown[0]}: no uniform field of that name: use one of {fields}")
    return out


def describe(b: Binding, raw: bytes, n: int, shown: int = 8) -> str:
    """One line: a binding's first values and, for arrays, min/mean/max."""
    count = element_count(b, n)
    lv = _leaves(b.type, count)
    words = np.frombuffer(raw[: len(raw) // 4 * 4], dtype=np.uint32)
    keep = lv.index < len(words)
    index, code = lv.index[keep], lv.code[keep]
    values = np.empty(len(index), dtype=np.float64)
    for c, kind in enumerate(_CODES):
        sel = code == c
        values[sel] = words[index[sel]].view(_DTYPES[kind])
    first = ", ".join(f"{v:.4g}" if _CODES[c] == "f32" else str(int(v))
                      for v, c in zip(values[:shown], code[:shown], strict=True))
    more = ", …" if len(values) > shown else ""
    stats = (f"  min {values.min():.4g} mean {values.mean():.4g} max {values.max():.4g}"
             if b.type.kind == "array" and len(values) and np.isfinite(values).all() else "")
    kind = f"{b.type.text}, {count} element{'s' * (count != 1)}" if b.type.runtime_sized else b.type.text
    return f"binding {b.binding} `{b.name}` ({kind}): [{first}{more}]{stats}"
