"""Parquet shards: listing, rank striding, the text-folder converter, downloads, corrupt files, the embedded corpus."""

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from engine import corpus, dataset
from engine.dataset import (
    convert_text_folder,
    data_id,
    download_shards,
    iter_texts,
    list_parquet_files,
    rank_row_groups,
)
from engine.errors import EngineError

REPO = Path(__file__).resolve().parents[2]


def write_shard(path: Path, groups: list[list[str]]) -> None:
    schema = pa.schema([("text", pa.string())])
    with pq.ParquetWriter(path, schema) as w:
        for g in groups:
            w.write_table(pa.table({"text": g}, schema=schema))


@pytest.fixture
def shards(tmp_path: Path) -> Path:
    """3 train shards with 3, 2, 4 row groups and a val shard with 2; doc text = 'f<file>g<group>r<row>'."""
    for f, n_groups in enumerate([3, 2, 4, 2]):
        write_shard(tmp_path / f"shard_{f:05d}.parquet",
                    [[f"f{f}g{g}r{r}" for r in range(g + 1)] for g in range(n_groups)])
    return tmp_path


def test_listing_and_splits(shards: Path):
    (shards / "notes.txt").write_text("ignored")
    (shards / ".shard_00009.parquet.123.tmp").write_text("ignored: hidden temp file")
    files = list_parquet_files(shards)
    assert [p.name for p in files] == [f"shard_{i:05d}.parquet" for i in range(4)]
    assert set(iter_texts(shards, "val")) == {"f3g0r0", "f3g1r0", "f3g1r1"}
    assert not any(t.startswith("f3") for t in iter_texts(shards, "train"))


def test_missing_or_empty_dir_names_the_dir_and_fix(tmp_path: Path):
    with pytest.raises(EngineError, match=r"missing.*no such folder.*download"):
        list_parquet_files(tmp_path / "missing")
    with pytest.raises(EngineError, match=r"no \*\.parquet shards"):
        list_parquet_files(tmp_path)
    write_shard(tmp_path / "shard_00000.parquet", [["only"]])
    with pytest.raises(EngineError, match="needs at least 2"):
        list(iter_texts(tmp_path, "train"))
    with pytest.raises(EngineError, match="split 'test'"):
        list(iter_texts(tmp_path, "test"))


def test_two_ranks_stride_row_groups_disjoint_and_covering(shards: Path):
    r0 = rank_row_groups(shards, "train", 0, 2)
    r1 = rank_row_groups(shards, "train", 1, 2)
    # global row groups over the train files: f0:g0 g1 g2, f1:g0 g1, f2:g0..g3 -> rank 1 gets 1, 3, 5, 7
    assert [(p.name[6:11], i) for p, i in r1] == [("00000", 1), ("00001", 0), ("00002", 0), ("00002", 2)]
    assert len(r0) == 5 and not set(r0) & set(r1)
    t0, t1 = list(iter_texts(shards, "train", 0, 2)), list(iter_texts(shards, "train", 1, 2))
    everything = list(iter_texts(shards, "train"))
    assert not set(t0) & set(t1)
    assert Counter(t0 + t1) == Counter(everything) and len(everything) == 6 + 3 + 10
    with pytest.raises(EngineError, match="fewer than world_size=3"):
        rank_row_groups(shards, "val", 2, 3)
    with pytest.raises(EngineError, match="rank 2 of world_size 2"):
        rank_row_groups(shards, "train", 2, 2)


def test_data_id_is_stable_and_tracks_changes(shards: Path):
    a = data_id(shards)
    assert a == data_id(shards) and a.startswith(shards.name)
    write_shard(shards / "shard_00001.parquet", [["changed text"]])
    assert data_id(shards) != a


def test_corrupt_or_wrong_shards_raise_engine_error_naming_file(shards: Path):
    bad = shards / "shard_00001.parquet"
    bad.write_bytes(b"this is not parquet at all")
    with pytest.raises(EngineError, match=r"shard_00001\.parquet: not a readable parquet file.*re-download"):
        list(iter_texts(shards, "train"))
    data = (shards / "shard_00000.parquet").read_bytes()
    bad.write_bytes(data[: len(data) // 2])  # truncated mid-file
    with pytest.raises(EngineError, match=r"shard_00001\.parquet"):
        list(iter_texts(shards, "train"))
    pq.write_table(pa.table({"body": ["x"]}), bad)
    with pytest.raises(EngineError, match="has no 'text' column"):
        list(iter_texts(shards, "train"))


def test_corrupt_row_group_data_raises_engine_error(shards: Path):
    path = shards / "shard_00000.parquet"
    data = bytearray(path.read_bytes())
    meta = pq.ParquetFile(path).metadata.row_group(0).column(0)
    start = meta.dictionary_page_offset or meta.data_page_offset
    data[start + 4: start + 4 + 40] = b"\xff" * 40  # scribble over the first page, keep the footer intact
    path.write_bytes(bytes(data))
    with pytest.raises(EngineError, match=r"shard_00000\.parquet"):
        list(iter_texts(shards, "train"))


def make_text_folder(root: Path) -> dict[str, str]:
    docs = {f"a/doc{i:02d}.txt": f"document {i}\n" + "héllo wörld " * (i * 7 + 1) for i in range(40)}
    docs["b/nested/deep.md"] = "# deep\nnested text"
    for rel, text in docs.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    (root / "binary.bin").write_bytes(b"\x89PNG\x00\x00\x01")
    (root / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    (root / "empty.txt").write_text("  \n")
    (root / ".hidden").mkdir()
    (root / ".hidden" / "secret.txt").write_text("never read")
    return docs


def test_convert_round_trip_is_deterministic_and_counts_skips(tmp_path: Path):
    src = tmp_path / "src"
    docs = make_text_folder(src)
    files = convert_text_folder(src, tmp_path / "out", shard_chars=2000, val_fraction=0.2, row_group_chars=500)
    assert len(files) >= 3 and files == list_parquet_files(tmp_path / "out")
    train, val = list(iter_texts(tmp_path / "out", "train")), list(iter_texts(tmp_path / "out", "val"))
    assert Counter(train + val) == Counter(docs.values())
    assert 0 < len(val) < len(train)
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["skipped"] == {"binary": 1, "not_utf8": 1, "empty": 1}
    assert manifest["train_documents"] == len(train) and manifest["val_documents"] == len(val)
    assert pq.ParquetFile(files[0]).metadata.num_row_groups > 1
    again = convert_text_folder(src, tmp_path / "out2", shard_chars=2000, val_fraction=0.2, row_group_chars=500)
    assert [f.read_bytes() for f in again] == [f.read_bytes() for f in files]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folder left behind


def test_convert_refuses_bad_input(tmp_path: Path):
    src = tmp_path / "src"
    make_text_folder(src)
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(EngineError, match="not empty"):
        convert_text_folder(src, out)
    with pytest.raises(EngineError, match="no such folder"):
        convert_text_folder(tmp_path / "nope", tmp_path / "o2")
    (tmp_path / "one").mkdir()
    (tmp_path / "one" / "a.txt").write_text("only one document")
    with pytest.raises(EngineError, match="need at least 2"):
        convert_text_folder(tmp_path / "one", tmp_path / "o3")
    assert not (tmp_path / "o3").exists()


def test_convert_tiny_folder_still_gets_a_val_shard(tmp_path: Path):
    (tmp_path / "src").mkdir()
    for name in "ab":
        (tmp_path / "src" / f"{name}.txt").write_text(f"text {name}")
    convert_text_folder(tmp_path / "src", tmp_path / "out", val_fraction=0.001)
    assert list(iter_texts(tmp_path / "out", "train")) == ["text a"]
    assert list(iter_texts(tmp_path / "out", "val")) == ["text b"]


def test_convert_cli(tmp_path: Path):
    src = tmp_path / "src"
    make_text_folder(src)
    r = subprocess.run([sys.executable, "-m", "engine.dataset", "convert", str(src), str(tmp_path / "out"),
                        "--shard-chars", "3000"], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert f"wrote {len(manifest['shards'])} shards" in r.stdout
    assert manifest["train_documents"] + manifest["val_documents"] == 41
    r = subprocess.run([sys.executable, "-m", "engine.dataset", "convert", str(src), str(tmp_path / "out")],
                       cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 1 and r.stderr.startswith("error: ") and "not empty" in r.stderr


def test_download_from_file_url(shards: Path, tmp_path: Path):
    dst = tmp_path / "dl"
    got = download_shards([0, 1, 3], dst, base_url=shards.as_uri(), backoff=0)
    assert [p.name for p in got] == ["shard_00000.parquet", "shard_00001.parquet", "shard_00003.parquet"]
    for p in got:
        assert p.read_bytes() == (shards / p.name).read_bytes()
    assert not [p for p in dst.iterdir() if p.name.startswith(".")]
    # present and valid -> skipped (the source is gone, so a re-fetch would fail)
    (shards / "shard_00000.parquet").unlink()
    assert download_shards([0], dst, base_url=shards.as_uri(), backoff=0)[0] == dst / "shard_00000.parquet"
    # a corrupt local copy is replaced
    (dst / "shard_00001.parquet").write_bytes(b"junk")
    download_shards([1], dst, base_url=shards.as_uri(), backoff=0)
    assert pq.ParquetFile(dst / "shard_00001.parquet").metadata.num_rows > 0


def test_download_failures_name_the_url(shards: Path, tmp_path: Path):
    with pytest.raises(EngineError, match=r"shard_00007\.parquet: failed after 3 attempts"):
        download_shards([7], tmp_path / "dl", base_url=shards.as_uri(), retries=2, backoff=0)
    (shards / "shard_00002.parquet").write_bytes(b"an html error page, not parquet")
    with pytest.raises(EngineError, match="not a parquet shard"):
        download_shards([2], tmp_path / "dl", base_url=shards.as_uri(), retries=0, backoff=0)
    assert not (tmp_path / "dl" / "shard_00002.parquet").exists()
    assert not list((tmp_path / "dl").iterdir())
    with pytest.raises(EngineError, match="out of range"):
        download_shards([5000], tmp_path / "dl", base_url=shards.as_uri())


def test_resolve_data_dir(shards: Path, tmp_path: Path):
    assert corpus.resolve_data_dir(str(shards), tmp_path) == shards
    with pytest.raises(EngineError, match="no such folder"):
        corpus.resolve_data_dir(str(tmp_path / "nothing"), tmp_path)


def test_small_embedded_corpus_serves_two_ranks(tmp_path: Path):
    d = corpus.ensure_embedded_corpus(tmp_path, max_docs=60, row_group_chars=20_000)
    assert d.parent == tmp_path / "data" and d.name.startswith("embedded-")
    info = json.loads((d / "manifest.json").read_text())
    assert info["documents"] == 60 and info["max_docs"] == 60
    train0 = list(iter_texts(d, "train", 0, 2))
    train1 = list(iter_texts(d, "train", 1, 2))
    assert train0 and train1 and len(train0) + len(train1) == info["train_documents"]
    expected = [text for _, text in corpus.documents(max_docs=60)]
    assert Counter(train0 + train1 + list(iter_texts(d, "val"))) == Counter(expected)
    assert corpus.ensure_embedded_corpus(tmp_path, max_docs=60, row_group_chars=20_000) == d  # cached


def test_full_embedded_corpus_builds_once_and_is_honest(tmp_path: Path):
    d = corpus.resolve_data_dir(None, tmp_path)
    info = json.loads((d / "manifest.json").read_text())
    assert info["kind"] == "embedded-python-stdlib" and info["python"] == sys.version.split()[0]
    assert info["documents"] > 1000 and info["chars"] > 10_000_000
    assert info["shards"] == [p.name for p in list_parquet_files(d)]
    readme = (d / "README.md").read_text()
    assert "standard library" in readme and f"{info['documents']:,} documents" in readme
    for split in ("train", "val"):  # enough row groups for 8 ranks
        assert len(rank_row_groups(d, split, 7, 8)) >= 1
    assert any("def " in t for t in iter_texts(d, "val"))
    mtime = (d / "manifest.json").stat().st_mtime_ns
    assert corpus.resolve_data_dir(None, tmp_path) == d and (d / "manifest.json").stat().st_mtime_ns == mtime


def test_incomplete_corpus_dir_is_reported(tmp_path: Path):
    d = corpus.corpus_dir(tmp_path, max_docs=5)
    d.mkdir(parents=True)
    (d / "shard_00000.parquet").write_bytes(b"half")
    with pytest.raises(EngineError, match="incomplete.*delete the folder"):
        corpus.ensure_embedded_corpus(tmp_path, max_docs=5)


def test_concurrent_builders_agree(tmp_path: Path):
    code = ("import sys; from pathlib import Path; from engine.corpus import ensure_embedded_corpus; "
            "print(ensure_embedded_corpus(Path(sys.argv[1]), max_docs=300))")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], cwd=REPO, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(3)]
    outs = [p.communicate(timeout=60) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    assert len({o.strip() for o, _ in outs}) == 1
    assert [p.name for p in (tmp_path / "data").iterdir()] == [Path(outs[0][0].strip()).name]  # no temp dirs
    assert dataset.publish_dir(tmp_path / "absent-tmp", Path(outs[0][0].strip())) is False


def test_split_text_cuts_at_top_level_blocks_and_rebuilds_exactly():
    src = "import os\n\n\ndef a():\n    x = 1\n\n    return x\n\n\nclass B:\n    pass\n" * 30
    pieces = corpus.split_text(src, 200)
    assert "".join(pieces) == src and len(pieces) > 5
    assert all(len(p) <= 200 for p in pieces)
    assert all(p.startswith(("import", "def", "class")) for p in pieces)  # never inside a function
    long_line = "x" * 500 + "\n"
    assert corpus.split_text(long_line, 100) == [long_line]  # no boundary: one piece, cropped later
    prose = ("word " * 30 + "\n") * 20  # no blank lines: falls back to line ends
    assert "".join(p := corpus.split_text(prose, 400)) == prose and all(len(x) <= 400 for x in p)
    assert corpus.split_text("short", 10) == ["short"]


def test_pieces_of_one_file_share_a_split(tmp_path: Path):
    docs = [(f"file{i}", f"file{i} piece{j}") for i in range(50) for j in range(4)]
    info = dataset.write_dataset(docs, tmp_path, val_fraction=0.2)
    val = list(iter_texts(tmp_path, "val"))
    assert info["val_documents"] == len(val) and 0 < len(val) < 200
    val_files = {t.split()[0] for t in val}
    assert all(t.split()[0] not in val_files for t in iter_texts(tmp_path, "train"))


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts open files via /proc")
def test_reader_keeps_few_files_open(tmp_path: Path):
    for f in range(12):
        write_shard(tmp_path / f"shard_{f:05d}.parquet", [[f"doc {f}"]])
    reader = dataset.ShardReader(max_open=2)
    before = len(list(Path("/proc/self/fd").iterdir()))
    groups = rank_row_groups(tmp_path, "train", reader=reader)
    assert [reader.read(p, i) for p, i in groups] == [[f"doc {f}"] for f in range(11)]
    assert len(list(Path("/proc/self/fd").iterdir())) - before <= 2


def test_download_cli(shards: Path, tmp_path: Path, capsys):
    assert dataset.main(["download", "-n", "2", "--dir", str(tmp_path / "dl"), "--base-url", shards.as_uri()]) == 0
    assert [p.name for p in list_parquet_files(tmp_path / "dl")] == ["shard_00000.parquet", "shard_00001.parquet"]
    assert "2 shards in" in capsys.readouterr().out
    assert dataset.main(["download", "-n", "0", "--dir", str(tmp_path / "dl")]) == 1
    assert "-n 0: must be 1..1823" in capsys.readouterr().err
