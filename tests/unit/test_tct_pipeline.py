"""TCT pipeline: `engine.tct.prepare` (files → windows → shards + report), `engine.tct.train_merges`, BPE."""

import itertools
import json

import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.errors import EngineError
from engine.tct import bpe, decode, encode, file_to_json, load_merges, tokenizer
from engine.tct.prepare import main as prepare_main
from engine.tct.prepare import prepare
from engine.tct.train_merges import main as train_main


def workflow_yaml(i: int) -> str:
    steps = "".join(f"      - name: step {j} of job {i}\n        run: echo {i}-{j} && make target{j}\n"
                    for j in range(3 + i % 7))
    return (f"name: wf {i}\non:\n  push:\n    branches: [main, release-{i}]\n  pull_request:\n"
            f"env:\n  LEVEL: {i}\njobs:\n  build{i}:\n    runs-on: ubuntu-latest\n    timeout-minutes: {10 + i}\n"
            f"    steps:\n      - uses: actions/checkout@v4\n{steps}")


@pytest.fixture
def workflow_dir(tmp_path):
    d = tmp_path / "wf"
    (d / "nested").mkdir(parents=True)
    for i in range(12):
        (d / ("nested" if i % 3 == 0 else "") / f"w{i:02d}.yml").write_text(workflow_yaml(i))
    (d / "doc.json").write_text(json.dumps({"on": "push", "jobs": {"j": {"runs-on": "x", "steps": [{"run": "y"}]}}}))
    (d / "two.yaml").write_text("on: push\n---\non: pull_request\n")
    (d / "latin1.yml").write_bytes("name: caf\xe9\n".encode("latin-1"))
    (d / "notes.txt").write_text("not a workflow")
    (d / ".hidden").mkdir()
    (d / ".hidden" / "x.yml").write_text("on: push\n")
    return d


def test_prepare_writes_windows_shards_meta_and_report(workflow_dir, tmp_path, capsys):
    out = tmp_path / "out"
    assert prepare_main(["--input", str(workflow_dir), "--output", str(out), "--context-size", "64",
                         "--val-fraction", "0.25"]) == 0
    printed = capsys.readouterr().out
    assert "2 skipped" in printed and "two.yaml" in printed and "latin1.yml" in printed
    report = json.loads((out / "report.json").read_text())
    meta = json.loads((out / "meta.json").read_text())
    assert report["files"] == {"found": 15, "used": 13, "skipped": 2}
    reasons = {r["file"].rsplit("/", 1)[-1]: r["reason"] for r in report["skipped"]}
    assert "2 YAML documents" in reasons["two.yaml"] and "not UTF-8" in reasons["latin1.yml"]
    assert meta["window_len"] == 65 and meta["vocab_size"] == 8192
    shards = sorted(p.name for p in out.glob("shard_*.parquet"))
    assert shards == meta["splits"]["train"] + meta["splits"]["val"]  # val is the last shard
    tok = tokenizer()
    by_doc: dict[str, list[tuple[int, list[int]]]] = {}
    total_windows = 0
    for split in ("train", "val"):
        rows = [r for s in meta["splits"][split] for r in pq.read_table(out / s).to_pylist()]
        assert len(rows) == report["splits"][split]["windows"] > 0
        total_windows += len(rows)
        for r in rows:
            assert 2 <= len(r["tokens"]) <= 65
            assert r["tokens"][0] == tok.vocab.position_token(r["start"])
            by_doc.setdefault(r["doc"], []).append((r["start"], r["tokens"][1:]))
    assert len(by_doc) == 13
    assert sum(s["tokens"] for s in report["splits"].values()) == sum(
        len(w) for ws in by_doc.values() for _, w in ws)
    long_docs = 0
    for name, ws in by_doc.items():  # the windows of a document put back together are the document
        ws.sort()
        tokens = [t for _, w in ws for t in w]
        assert [s for s, _ in ws] == list(range(0, len(tokens), 64))
        long_docs += len(ws) > 1
        original = next(p for p in workflow_dir.rglob(name))
        assert decode(tokens)[0] == file_to_json(original) and encode(file_to_json(original)) == tokens
    assert long_docs > 0
    # a second run refuses to overwrite, unless asked
    assert prepare_main(["--input", str(workflow_dir), "--output", str(out)]) == 1
    assert "--overwrite" in capsys.readouterr().err
    report2 = prepare([str(workflow_dir)], str(out), 64, val_fraction=0.25, overwrite=True)
    assert report2["splits"] == report["splits"]  # deterministic


def test_prepare_stride_overlaps_windows(workflow_dir, tmp_path):
    report = prepare([str(workflow_dir)], str(tmp_path / "o"), 32, stride=16)
    meta = json.loads((tmp_path / "o" / "meta.json").read_text())
    rows = [r for s in meta["splits"]["train"] for r in pq.read_table(tmp_path / "o" / s).to_pylist()]
    starts = {r["start"] for r in rows}
    assert 16 in starts and meta["stride"] == 16 and report["splits"]["train"]["windows"] == len(rows)


@pytest.mark.parametrize("args, needle", [
    (["--context-size", "1"], "must be at least 2"),
    (["--stride", "0"], "--stride 0"),
    (["--val-fraction", "1.5"], "--val-fraction"),
])
def test_prepare_bad_arguments_are_one_line_errors(workflow_dir, tmp_path, capsys, args, needle):
    assert prepare_main(["--input", str(workflow_dir), "--output", str(tmp_path / "o"), *args]) == 1
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1


def test_prepare_input_problems(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (tmp_path / "file").write_text("x")
    with pytest.raises(EngineError, match="no usable workflow files"):
        prepare([str(empty)], str(tmp_path / "o"), 16)
    with pytest.raises(EngineError, match="no such folder"):
        prepare([str(tmp_path / "missing")], str(tmp_path / "o"), 16)
    (empty / "w.yml").write_text("on: push\njobs: {}\n")
    with pytest.raises(EngineError, match="is a file"):
        prepare([str(empty)], str(tmp_path / "file"), 16)


def test_train_merges_cli_is_deterministic(workflow_dir, tmp_path, capsys):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    for out in (a, b):
        assert train_main(["--input", str(workflow_dir), "--output", str(out), "--merges", "300"]) == 0
    assert a.read_text() == b.read_text()
    merges = load_merges(a.read_text())
    assert 0 < len(merges) <= 300
    header = [line for line in a.read_text().splitlines() if line.startswith("#")]
    assert any("made by: python -m engine.tct.train_merges --input" in line for line in header)
    assert train_main(["--input", str(workflow_dir), "--output", str(a), "--merges", "99999"]) == 1
    assert "--merges 99999" in capsys.readouterr().err


def test_load_merges_rejects_garbage():
    with pytest.raises(EngineError, match="line 2: expected two token ids"):
        load_merges("# header\n1 2 3\n")


def test_bpe_training_merges_the_most_frequent_pair_first():
    merges = bpe.train([[1, 2, 3, 1, 2, 3, 1, 2, 3], [9, 9, 9]], 10, first_id=256)
    assert merges[0] == (1, 2)
    assert merges[1] == (256, 3)  # (1 2) 3 is now the most frequent pair
    assert (9, 9) in merges  # 9 9 9 holds the pair twice (overlapping)
    assert bpe.train([[5, 6]], 10) == []  # nothing occurs twice: nothing to merge


@settings(max_examples=40, deadline=None, database=None, derandomize=True)
@given(st.lists(st.lists(st.integers(0, 3), min_size=1, max_size=12), min_size=1, max_size=6),
       st.lists(st.integers(0, 3), min_size=1, max_size=10))
def test_segmenter_finds_the_fewest_tokens(streams, probe):
    merges = bpe.train(streams, 8, first_id=4, max_atoms=4)
    seg = bpe.Segmenter(merges, 4, range(4))
    tokens = seg.encode(probe)
    assert [a for t in tokens for a in seg.expansion[t]] == probe

    def fewest(seq: list[int]) -> int:  # brute force over every split point set
        n = len(seq)
        best = n
        for k in range(1, n):
            for cuts in itertools.combinations(range(1, n), k - 1):
                bounds = (0, *cuts, n)
                parts = [tuple(seq[i:j]) for i, j in itertools.pairwise(bounds)]
                if all(p in seg.by_atoms for p in parts):
                    best = min(best, len(parts))
        return best

    assert len(tokens) == fewest(probe)
