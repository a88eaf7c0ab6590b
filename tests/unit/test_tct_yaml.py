"""yaml_to_json: GitHub's reading of workflow YAML (1.2 core scalars), key order, anchors, one-line errors."""

import json

import pytest

from engine.errors import EngineError
from engine.tct import yaml_to_json
from engine.tct.yamljson import file_to_json


def load(text: str) -> dict:
    return json.loads(yaml_to_json(text))


def test_on_key_stays_the_string_on_and_yaml11_booleans_stay_strings():
    doc = load("on: push\njobs: {}\nflags: [yes, no, on, off, y, n, true, False]\n")
    assert list(doc) == ["on", "jobs", "flags"]
    assert doc["on"] == "push"
    assert doc["flags"] == ["yes", "no", "on", "off", "y", "n", True, False]


def test_key_order_is_kept():
    keys = ["zeta", "alpha", "mid", "on", "jobs", "beta"]
    assert list(load("".join(f"{k}: 1\n" for k in keys))) == keys


def test_core_schema_scalars():
    doc = load("a: 012\nb: 0o17\nc: 0x1F\nd: 3.10\ne: 12:30\nf: 2024-01-01\ng: ~\nh: null\ni: -5\nj: 1e3\nk:\n")
    assert doc == {"a": 12, "b": 15, "c": 31, "d": 3.1, "e": "12:30", "f": "2024-01-01", "g": None,
                   "h": None, "i": -5, "j": 1000.0, "k": None}


def test_keys_keep_their_source_text():
    doc = load("3.10: a\ntrue: b\n1: c\n~: d\n")
    assert list(doc) == ["3.10", "true", "1", "~"]


def test_anchors_aliases_and_merge_keys_are_resolved():
    doc = load("base: &b {runs-on: ubuntu-latest, timeout-minutes: 5}\n"
               "jobs:\n  a: *b\n  c:\n    <<: *b\n    timeout-minutes: 9\n    steps: [{run: x}]\n")
    assert doc["jobs"]["a"] == {"runs-on": "ubuntu-latest", "timeout-minutes": 5}
    assert doc["jobs"]["c"] == {"runs-on": "ubuntu-latest", "timeout-minutes": 9, "steps": [{"run": "x"}]}
    assert list(doc["jobs"]["c"]) == ["runs-on", "timeout-minutes", "steps"]


def test_block_scalars_and_unicode_survive():
    doc = load("run: |\n  echo héllo ✓\n  exit 0\nname: >-\n  folded\n  text\n")
    assert doc == {"run": "echo héllo ✓\nexit 0\n", "name": "folded text"}


def test_bytes_with_bom_are_accepted():
    assert load("\ufeffon: push\n".encode()) == {"on": "push"}


@pytest.mark.parametrize("text, needle", [
    ("on: push\n---\njobs: {}\n", "2 YAML documents"),
    ("- a\n- b\n", "a list, not a mapping"),
    ("just text\n", "a string, not a mapping"),
    ("", "holds no YAML document"),
    ("# only a comment\n", "holds no YAML document"),
    ("~\n", "empty, not a mapping"),
    ("on: [push\n", "not valid YAML"),
    ("? [a, b]\n: c\n", "mapping key is itself"),
    ("x: .inf\n", "has no JSON form"),
    ("a: &a [*a]\n", "not valid YAML"),
])
def test_bad_yaml_is_one_line_error(text, needle):
    with pytest.raises(EngineError) as err:
        yaml_to_json(text, "wf.yml")
    msg = str(err.value)
    assert needle in msg and msg.startswith("wf.yml: ") and "\n" not in msg


def test_non_utf8_bytes_are_one_line_error():
    with pytest.raises(EngineError, match=r"^wf.yml: not UTF-8 text \(byte 4\)") as err:
        yaml_to_json(b"on: \xff\xfe\n", "wf.yml")
    assert "\n" not in str(err.value)


def test_file_to_json_reads_yaml_and_json(tmp_path):
    (tmp_path / "a.yml").write_text("on: push\njobs: {}\n")
    (tmp_path / "b.json").write_text('{"on": "push", "jobs": {}}')
    (tmp_path / "c.json").write_text('{"on": NaN}')
    (tmp_path / "d.json").write_bytes(b'{"on": "\xff"}')
    assert file_to_json(tmp_path / "a.yml") == file_to_json(tmp_path / "b.json") == '{"on":"push","jobs":{}}'
    for name, needle in (("c.json", "not valid JSON"), ("d.json", "not UTF-8"), ("missing.yml", "cannot read")):
        with pytest.raises(EngineError, match=needle) as err:
            file_to_json(tmp_path / name)
        assert "\n" not in str(err.value)
