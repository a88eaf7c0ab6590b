"""The shipped NL -> WGSL dataset: size, split by family, reproducible from its seeds (no GPU needed)."""

import json

import pytest

from nanochat_plugins.wgsl import dataset, templates
from nanochat_plugins.wgsl.errors import WgslError
from nanochat_plugins.wgsl.templates.common import Family

RECORDS = dataset.load()


def test_the_shipped_dataset_is_large_enough_small_enough_and_split_by_family():
    assert len(RECORDS) >= 300
    assert sum(p.stat().st_size for p in dataset.BUNDLED.iterdir()) < 1_000_000
    splits_of = {}
    for r in RECORDS:
        splits_of.setdefault(r.family, set()).add(r.split)
    assert all(len(s) == 1 for s in splits_of.values())  # no family straddles two splits
    assert set(splits_of) == set(templates.FAMILIES)
    by_split = {s: {f for f, ss in splits_of.items() if s in ss} for s in dataset.SPLITS}
    assert by_split["test"] == set(dataset.TEST_FAMILIES) and by_split["val"] == set(dataset.VAL_FAMILIES)
    for s in ("val", "test"):  # every held-out category is also trained on
        assert {templates.FAMILIES[f].category for f in by_split[s]} <= {
            templates.FAMILIES[f].category for f in by_split["train"]}
    assert len({r.id for r in RECORDS}) == len(RECORDS)
    assert len({(r.prompt, r.shader) for r in RECORDS}) == len(RECORDS)
    assert {c for c in templates.CATEGORIES} == {r.category for r in RECORDS}


def test_every_record_is_rebuilt_exactly_from_its_family_and_seed():
    for r in RECORDS:
        s = templates.sample(r.family, r.seed)
        assert (s.prompt, s.shader, s.params) == (r.prompt, r.shader, r.params), r.id


def test_generation_is_deterministic_and_written_atomically(tmp_path):
    fams = ["chromatic.mix", "image.flip", "elementwise.lerp"]
    a = dataset.generate(3, seed=5, families=fams, check=False)
    b = dataset.generate(3, seed=5, families=fams, check=False)
    assert [r.to_json() for r in a.records] == [r.to_json() for r in b.records]
    assert [r.split for r in a.records] == ["train"] * 3 + ["val"] * 3 + ["test"] * 3
    assert [r.to_json() for r in dataset.generate(3, seed=6, families=fams, check=False).records] != [
        r.to_json() for r in a.records]
    dataset.write(a, tmp_path, "cmd", 3, 5)
    assert [r.id for r in dataset.load(tmp_path)] == [r.id for r in a.records]
    readme = (tmp_path / "README.md").read_text()
    assert "NOT validated or run" in readme and "| test | 3 | elementwise.lerp |" in readme
    assert not list(tmp_path.glob(".*.tmp"))


class OnePair(Family):
    name, category, summary = "test.one_pair", "elementwise", "always the same pair"

    def draw(self, rng):
        return {}

    def shader(self, p):
        return "@compute @workgroup_size(1) fn main() {}\n"

    def prompt(self, p, rng):
        return "an empty kernel"


def test_bad_arguments_and_bad_files_are_one_line_errors(tmp_path, monkeypatch):
    with pytest.raises(WgslError, match="in both val_families and test_families"):
        dataset.generate(1, val=["image.flip"], test=["image.flip"], check=False)
    with pytest.raises(WgslError, match="template family 'nope': unknown"):
        dataset.generate(1, families=["nope"], check=False)
    monkeypatch.setitem(templates.FAMILIES, OnePair.name, OnePair())
    with pytest.raises(WgslError, match="family test.one_pair gave only 1 distinct pairs in 80 draws"):
        dataset.generate(2, families=[OnePair.name], check=False)
    with pytest.raises(WgslError, match="per_family=0: must be at least 1"):
        dataset.generate(0, check=False)
    with pytest.raises(WgslError, match="not found: make the dataset"):
        dataset.load(tmp_path)
    good = json.loads(RECORDS[0].to_json())
    for s in dataset.SPLITS:
        (tmp_path / f"{s}.jsonl").write_text("")
    (tmp_path / "train.jsonl").write_text(json.dumps(good) + "\n{oops\n")
    with pytest.raises(WgslError, match=r"train.jsonl:2: not JSON"):
        dataset.load(tmp_path)
    (tmp_path / "train.jsonl").write_text(json.dumps({**good, "seed": "1"}) + "\n")
    with pytest.raises(WgslError, match=r"train.jsonl:1: key 'seed' missing or not a int"):
        dataset.load(tmp_path)
    with pytest.raises(WgslError, match="no record 'x-000'"):
        dataset.find("x-000")
