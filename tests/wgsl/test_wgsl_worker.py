"""Shader runs in a worker process: a shader that runs too long is killed after --timeout with one error line,
and the next run gets a fresh worker."""

import pytest

from nanochat_cli.cli import main
from nanochat_plugins.wgsl import templates
from nanochat_plugins.wgsl.worker import ShaderTimeout, ShaderWorker

SLOW = """@group(0) @binding(0) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    var x = f32(id.x);
    for (var i = 0u; i < 60000u; i++) {
        x = sin(x) * 1.0001 + f32(i);
    }
    out[id.x % 1024u] = x;
}
"""


@pytest.mark.slow
def test_a_long_run_times_out_in_one_line_and_the_worker_comes_back(capsys, tmp_path):
    (tmp_path / "slow.wgsl").write_text(SLOW)
    code = main(["wgsl", "run", str(tmp_path / "slow.wgsl"), "--grid", "16000000", "--timeout", "1"])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err.startswith("nanochat-cli: error: shader run: no result after ") and err.count("\n") == 1
    assert "killed it; raise --timeout if it needs longer" in err
    s = templates.sample("elementwise.scale", 0)
    with ShaderWorker(30) as w:
        assert w.run_case(s.shader, s.family, s.params, s.seed).ok
        w.timeout = 0.5
        with pytest.raises(ShaderTimeout):
            w.dispatch(SLOW, {(0, 0): bytes(4096)}, [(0, 0)], (16_000_000, 1, 1))
        w.timeout = 30
        assert w.run_case(s.shader, s.family, s.params, s.seed).ok  # a new process took over
