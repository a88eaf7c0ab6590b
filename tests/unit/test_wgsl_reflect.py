"""Reading bindings, struct layouts and entry points from a shader (what `wgsl run` binds buffers by)."""

import pytest

from nanochat_plugins.wgsl.errors import WgslError
from nanochat_plugins.wgsl.reflect import parse_type, reflect

SHADER = """
const WG: u32 = 128u;
struct Params { n: u32, alpha: f32, m: mat4x4<f32>, v: vec3<f32>, }
@group(0) @binding(0) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> y: array<f32, 64>;
@group(1) @binding(0) var<uniform> p: Params;
var<workgroup> scratch: array<f32, 64>;
fn helper(a: f32) -> f32 { if (a > 0.0) { return a; } return 0.0; }
@compute @workgroup_size(WG, 2)
fn main(@builtin(global_invocation_id) id: vec3<u32>) { let i = id.x; }
"""


def test_bindings_structs_and_entry_points():
    r = reflect(SHADER)
    got = [(b.group, b.binding, b.name, b.space, b.access, b.writable, b.line) for b in r.bindings]
    assert got == [(0, 0, "x", "storage", "read", False, 4), (0, 1, "y", "storage", "read_write", True, 5),
                   (1, 0, "p", "uniform", "read", False, 6)]
    params = r.structs["Params"]
    assert [(name, off) for name, _, off in params.members] == [("n", 0), ("alpha", 4), ("m", 16), ("v", 80)]
    assert (params.align, params.size) == (16, 96)
    assert r.compute_entry().workgroup_size == (128, 2, 1)


@pytest.mark.parametrize("text,align,size", [
    ("f32", 4, 4), ("vec2<f32>", 8, 8), ("vec3f", 16, 12), ("vec4<u32>", 16, 16), ("mat3x3<f32>", 16, 48),
    ("mat2x2f", 8, 16), ("array<vec3<f32>, 4>", 16, 64), ("atomic<u32>", 4, 4), ("array<f32>", 4, 4),
])
def test_layouts_follow_wgsl_alignment_rules(text, align, size):
    t = parse_type(text, {}, {})
    assert (t.align, t.size) == (align, size)


def test_what_the_reader_cannot_read_is_one_line():
    with pytest.raises(WgslError, match="no @group/@binding"):
        reflect("@group(0) var<storage, read> x: array<f32>;")
    with pytest.raises(WgslError, match="no @compute entry point"):
        reflect("fn f() {}").compute_entry()
    with pytest.raises(WgslError, match="2 @compute entry points"):
        reflect("@compute @workgroup_size(1) fn a() {}\n@compute @workgroup_size(1) fn b() {}").compute_entry()
    with pytest.raises(WgslError, match="not a buffer type"):
        parse_type("sampler", {}, {})
