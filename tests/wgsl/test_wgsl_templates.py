"""Every template family: its shader validates, and run on the adapter it matches the numpy reference;
a wrong shader does not."""

import numpy as np
import pytest

from nanochat_plugins.wgsl import dataset, templates
from nanochat_plugins.wgsl.runner import TestCase, run_case
from nanochat_plugins.wgsl.validate import validate_source


@pytest.mark.parametrize("name", list(templates.FAMILIES))
def test_each_family_validates_and_matches_numpy(name):
    s = templates.sample(name, 1)
    v = validate_source(s.shader)
    assert v.ok, v.diagnostics[0].format(name)
    r = run_case(s.shader, templates.case_for(name, s.params, s.seed))
    assert r.ok, r.message
    assert r.outputs and all(np.isfinite(o.astype(np.float64)).all() for o in r.outputs.values())


@pytest.mark.parametrize("name", ["chromatic.mix", "chromatic.filter", "chromatic.complement", "chromatic.saturate"])
def test_the_four_chromatic_ops_compute_what_they_say(name):
    """The reference itself, checked on hand-made colours (not only shader == reference)."""
    s = templates.sample(name, 3)
    case = templates.case_for(name, s.params, s.seed)
    ref = next(iter(case.expected.values()))
    src = case.inputs[0]
    if name == "chromatic.complement" and s.params["t"] == 1.0:
        hsv_rot = (src[:, :3].max(1) + src[:, :3].min(1))[:, None] - src[:, :3]
        assert np.allclose(ref[:, :3], hsv_rot)
    assert ((ref >= -1e-6) & (ref <= 1 + 1e-6)).all()  # channels stay in [0, 1]
    assert np.allclose(ref[:, 3], src[:, 3]) or name == "chromatic.mix"


def test_complement_is_a_180_degree_hue_rotation():
    import colorsys

    s = templates.sample("chromatic.complement", 0)
    assert s.params["t"] == 1.0
    colors = np.array([[1.0, 0.5, 0.0, 1.0], [0.2, 0.4, 0.9, 0.5], [0.3, 0.3, 0.3, 1.0]], dtype=np.float32)
    h = [colorsys.rgb_to_hsv(*c[:3]) for c in colors]
    rotated = [colorsys.hsv_to_rgb((hh + 0.5) % 1.0, ss, vv) for hh, ss, vv in h]
    expected = np.concatenate([np.array(rotated, dtype=np.float32), colors[:, 3:]], 1)
    r = run_case(s.shader, TestCase({0: colors}, {1: expected}, (3, 1, 1), 1e-6, 1e-5))
    assert r.ok, r.message


def test_a_wrong_shader_runs_but_fails_the_comparison():
    s = templates.sample("elementwise.scale", 2)
    assert not s.params["uniform"]
    case = templates.case_for(s.family, s.params, s.seed)
    wrong = s.shader.replace("* x", "* x + 0.001")
    assert wrong != s.shader
    r = run_case(wrong, case)
    assert not r.ok and "values differ" in r.message and r.max_abs_err > 0
    r = run_case(s.shader.replace("@binding(1)", "@binding(3)"), case)
    assert not r.ok and "binding 3" in r.message


def test_some_shipped_pairs_run_true():
    recs = dataset.load(splits=["test"])
    for rec in recs[::10]:
        r = run_case(rec.shader, templates.case_for(rec.family, rec.params, rec.seed))
        assert r.ok, (rec.id, r.message)
