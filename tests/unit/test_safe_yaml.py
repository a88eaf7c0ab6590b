"""engine/safe_yaml.py: the bounds sit where the docstring says, ordinary YAML (anchors, merge keys) still loads,
and every refusal is one line naming the source."""

from __future__ import annotations

import time

import pytest
import yaml

from engine.safe_yaml import MAX_ALIAS_NODES, MAX_BYTES, MAX_DEPTH, YamlError, load_yaml_file, load_yaml_text


def test_plain_yaml_loads_as_safe_load_does():
    text = "a: 1\nb: [x, {c: 2.5}]\nd: &d {p: 1, q: 2}\ne:\n  <<: *d\n  q: 3\nf: *d\ng: null\nh: 2024-01-02\n"
    assert load_yaml_text(text, "t") == yaml.safe_load(text)
    assert load_yaml_text("", "t") is None


def test_python_tags_stay_refused():
    with pytest.raises(YamlError, match=r"t: not valid YAML \(line 1, column 4: .*python/object"):
        load_yaml_text("a: !!python/object:os.system {}", "t")


def test_depth_limit_is_exact():
    def flow(n: int) -> str:
        return "[" * n + "]" * n

    def block(n: int) -> str:  # n - 1 nested mappings and the scalar 1
        return "".join("  " * i + f"k{i}:\n" for i in range(n - 2)) + "  " * (n - 2) + "k: 1\n"

    # every node counts, from the document's root to a scalar
    assert load_yaml_text(flow(MAX_DEPTH), "t") is not None
    with pytest.raises(YamlError, match=f"t: line 1, column {MAX_DEPTH + 1}: nested more than {MAX_DEPTH} levels"):
        load_yaml_text(flow(MAX_DEPTH + 1), "t")
    assert load_yaml_text(block(MAX_DEPTH), "t") is not None
    with pytest.raises(YamlError, match=f"nested more than {MAX_DEPTH} levels"):
        load_yaml_text(block(MAX_DEPTH + 1), "t")


def test_alias_expansion_limit_counts_nested_fan_out():
    ten = "[" + ", ".join(["x"] * 9) + "]"  # 10 nodes with its sequence
    uses = MAX_ALIAS_NODES // 10
    ok = f"a: &a {ten}\nb: [" + ", ".join(["*a"] * uses) + "]\n"
    assert len(load_yaml_text(ok, "t")["b"]) == uses
    with pytest.raises(YamlError, match=r"t: line 2, column \d+: aliases expand to more than 10,000 nodes"):
        load_yaml_text(f"a: &a {ten}\nb: [" + ", ".join(["*a"] * (uses + 1)) + "]\n", "t")
    # fan-out through a second anchor multiplies: 10 x 100 uses of b = 1,000 expanded ... refused past the cap
    nested = f"a: &a {ten}\nb: &b [" + ", ".join(["*a"] * 10) + "]\nc: [" + ", ".join(["*b"] * 100) + "]\n"
    with pytest.raises(YamlError, match="alias bomb"):
        load_yaml_text(nested, "t")


def test_recursive_alias_is_refused():
    with pytest.raises(YamlError, match=r"alias \*x is used inside the node it names"):
        load_yaml_text("a: &x {b: *x}\n", "t")


def test_messages_are_one_short_line():
    long_name = "n" * 5000
    with pytest.raises(YamlError) as e:
        load_yaml_text(f"a: *{long_name}\n", "t")
    message = str(e.value)
    assert "\n" not in message and len(message) < 400 and "undefined alias" in message


def test_constructor_value_errors_are_one_line():
    with pytest.raises(YamlError, match=r"t: a value cannot be read \(invalid literal"):
        load_yaml_text("a: !!int abc\n", "t")


def test_file_size_cap(tmp_path):
    f = tmp_path / "f.yaml"
    f.write_text("a: '" + "x" * (MAX_BYTES - 6) + "'\n")
    assert f.stat().st_size == MAX_BYTES and len(load_yaml_file(f)["a"]) == MAX_BYTES - 6
    f.write_text("a: '" + "x" * (MAX_BYTES - 5) + "'\n")
    with pytest.raises(YamlError, match=rf"{f}: too large for a config file \(over 256 KiB\)"):
        load_yaml_file(f)


def test_only_the_cap_is_read_from_an_endless_file():
    t0 = time.monotonic()
    with pytest.raises(YamlError, match="too large for a layout"):
        load_yaml_file("/dev/zero", what="layout")
    assert time.monotonic() - t0 < 5


def test_unreadable_files(tmp_path):
    with pytest.raises(YamlError, match=rf"{tmp_path / 'nope.yaml'}: file not found: check the path"):
        load_yaml_file(tmp_path / "nope.yaml")
    with pytest.raises(YamlError, match="is a directory"):
        load_yaml_file(tmp_path)
    bad = tmp_path / "latin.yaml"
    bad.write_bytes(b"a: caf\xe9\n")
    with pytest.raises(YamlError, match=r"latin.yaml: not UTF-8 text \(byte 0xe9 at offset 6\): save it as UTF-8"):
        load_yaml_file(bad)
