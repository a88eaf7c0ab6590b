"""naga validation through wgpu: valid shaders pass, planted errors come back with naga's line and column."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from nanochat_plugins.wgsl.validate import parse_naga_report, validate_source

BASE = """@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    y[i] = 2.0 * x[i];
}
"""


def diag(src):
    v = validate_source(src)
    assert not v.ok and len(v.diagnostics) == 1
    return v.diagnostics[0]


def test_a_valid_shader_passes():
    v = validate_source(BASE)
    assert v.ok and v.diagnostics == [] and v.seconds >= 0


@pytest.mark.parametrize("name,old,new,line,col,words", [
    ("type mismatch", "2.0 * x[i]", "2u * x[i]", 7, 12, "Operation Multiply can't work with"),
    ("type mismatch in a let", "let i = gid.x;", "let i: f32 = gid.x;", 6, 9, "type of `i` is expected to be `f32`"),
    ("unknown identifier", "2.0 * x[i]", "2.0 * z[i]", 7, 18, "no definition in scope for identifier: `z`"),
    ("binding missing", "@group(0) @binding(1) var", "@group(0) var", 2, 1, "needs a 'binding' attribute"),
    ("binding used twice", "@binding(1)", "@binding(0)", 2, 23, "Bindings for [1] conflict with other resource"),
    ("binding of the wrong kind", "var<storage, read> x", "var<uniform> x", 1, 23,
     "Alignment requirements for address space Uniform are not met"),
    ("write to a read-only binding", "y[i] = 2.0 * x[i];", "x[i] = 1.0;", 7, 5, "writing to this location is not"),
    ("syntax", "let i = gid.x;", "let i = gid.x", 7, 5, "expected `;`"),
])
def test_planted_errors_come_back_with_the_right_line(name, old, new, line, col, words):
    src = BASE.replace(old, new)
    assert src != BASE
    d = diag(src)
    assert (d.line, d.column) == (line, col), name
    assert words in d.message, d.message
    assert "\n" not in d.message
    assert d.format("k.wgsl").startswith(f"k.wgsl:{line}:{col}: error: ")


def test_columns_count_characters_as_naga_does():
    d = diag("fn f() -> f32 {\n    /* ééé 日本 */ return nope;\n}\n")
    assert (d.line, d.column) == (2, 25)  # 30 if it counted UTF-8 bytes


def test_reports_of_another_shape_still_give_one_line():
    d = parse_naga_report("Validation Error\n\nCaused by:\n  In wgpuDeviceCreateShaderModule\n\nsomething odd\n")
    assert (d.line, d.message) == (0, "something odd")
    assert d.format("a.wgsl") == "a.wgsl: error: something odd"


def run_cli(env_extra, *argv):
    code = "import sys; from nanochat_cli.cli import main; sys.exit(main(sys.argv[1:]))"
    env = {**os.environ, **env_extra}
    Path(env["HOME"]).mkdir(exist_ok=True)  # Mesa warns on stderr when it cannot make its cache under HOME
    return subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, env=env, timeout=120)


def test_without_an_adapter_validation_says_so_in_one_line_and_the_rest_works(tmp_path):
    shader = tmp_path / "k.wgsl"
    shader.write_text(BASE)
    no_vulkan = {"VK_ICD_FILENAMES": str(tmp_path / "none.json"), "WGPU_BACKEND_TYPE": "Vulkan"}
    r = run_cli(no_vulkan, "wgsl", "validate", str(shader))
    assert r.returncode == 2
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in r.stderr
    assert lines[0].startswith("nanochat-cli: error: WebGPU: no adapter (")
    assert "apt-get install mesa-vulkan-drivers" in lines[0]
    r = run_cli(no_vulkan, "wgsl", "templates", "chromatic.mix")  # no device needed: works
    assert r.returncode == 0 and "fn chromatic_mix" in r.stdout


def test_without_wgpu_installed_the_error_says_how_to_install_it(tmp_path):
    shader = tmp_path / "k.wgsl"
    shader.write_text(BASE)
    code = ("import sys; sys.modules['wgpu'] = None; from nanochat_cli.cli import main; "
            f"sys.exit(main(['wgsl', 'validate', {str(shader)!r}]))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().startswith("nanochat-cli: error: wgpu: not installed")
    assert "pip install 'nanochat-cli[wgsl]'" in r.stderr
