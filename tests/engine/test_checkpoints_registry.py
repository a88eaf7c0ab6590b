"""Checkpoint registry: listing ours, stock nanochat's, truncated and incompatible checkpoints with the right
status, reasons and remedies; the index cache; baselines for resume / init-from; delete."""

import json
import shutil
from pathlib import Path

import pytest
import torch
from ckpt_helpers import (
    STOCK_FIXTURE,
    corpus_texts,
    save_ours,
    tiny_config_overrides,
    tiny_model,
    train_tokenizer,
    write_data_dir,
)
from plugin_helpers import plugin_registered, register_megacontext

from engine.checkpoint import PHASE_DIRS as ENGINE_PHASE_DIRS
from engine.checkpoint import checkpoint_dir
from engine.errors import EngineError
from engine.gpt import GPT, GPTConfig
from engine.shared import model_dim
from engine.tokenizer import Tokenizer
from nanochat_cli.services.checkpoints import entries
from nanochat_cli.services.checkpoints import registry as reg
from nanochat_cli.services.checkpoints.compat import arch_overrides
from nanochat_cli.services.checkpoints.registry import CheckpointRegistry
from nanochat_cli.services.config.prefabs import PrefabStore

MC = "megacontext.enabled"


@pytest.fixture
def megacontext():
    """A plugin that makes MegaContext's on/off a checkpoint field (no such plugin ships yet)."""
    with plugin_registered("megacontext", register_megacontext):
        yield


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    root = tmp_path_factory.mktemp("shared")
    tok = train_tokenizer(root / "tok")
    data = write_data_dir(root / "data")
    return tok, data, root


@pytest.fixture
def base(tmp_path, shared):
    """A base dir holding: tiny@5 (ours, complete) + tiny@10 (model only: interrupted), the stock fixture d4,
    trunc@3 (model file cut in half), deep@7 (depth 3), badmeta@1 (meta not JSON)."""
    tok, data, _ = shared
    base = tmp_path / "base"
    d = save_ours(base, "tiny", 5, tiny_model(300), tok, data)
    torch.save(tiny_model(300).state_dict(), d / "model_000010.pt")
    t = save_ours(base, "trunc", 3, tiny_model(300), tok, data)
    blob = (t / "model_000003.pt").read_bytes()
    (t / "model_000003.pt").write_bytes(blob[: len(blob) // 2])
    save_ours(base, "deep", 7, tiny_model(300, depth=3), tok, data)
    b = checkpoint_dir(base, "badmeta")
    b.mkdir(parents=True)
    torch.save(tiny_model(300).state_dict(), b / "model_000001.pt")
    (b / "meta_000001.json").write_text("{not json")
    if STOCK_FIXTURE.is_dir():
        s = checkpoint_dir(base, "d4")
        s.mkdir(parents=True)
        for name in ("model_000000.pt", "meta_000000.json"):
            shutil.copy(STOCK_FIXTURE / name, s / name)
    return base


@pytest.fixture
def resolved(base, shared):
    tok, data, _ = shared
    return PrefabStore().resolve("cpu-tiny", tiny_config_overrides(base, data, tok.directory))


def by_key(entries):
    return {(e.tag, e.step): e for e in entries}


def test_phase_dirs_are_the_engines():
    assert entries.PHASE_DIRS is ENGINE_PHASE_DIRS  # one table, in engine.shared


def test_listing_statuses_fields_and_compat(base, resolved, shared, megacontext):
    tok, data, _ = shared
    rows = {(e.tag, e.step): (e, c) for e, c in CheckpointRegistry(base).with_compat(resolved)}
    expected = {("tiny", 5), ("tiny", 10), ("trunc", 3), ("deep", 7), ("badmeta", 1)}
    if STOCK_FIXTURE.is_dir():
        expected.add(("d4", 0))
    assert set(rows) == expected

    ours, compat = rows[("tiny", 5)]
    assert (ours.status, ours.origin, ours.phase, ours.run, ours.val_bpb) == ("complete", "ours", "base", "tiny", 2.5)
    assert ours.params == tiny_model(300).num_params()
    assert (ours.depth, ours.vocab_size, ours.sequence_len, ours.window_pattern) == (2, 300, 64, "SL")
    assert ours.tokenizer_hash == tok.fingerprint and ours.setting(MC) is False and ours.resumable
    assert ours.size_bytes == sum(p.stat().st_size for p in ours.files()) and ours.date > 0
    assert compat.level == "compatible" and compat.reasons == []

    cut, compat = rows[("tiny", 10)]
    assert cut.status == "incomplete" and "interrupted" in cut.problem
    assert compat.level == "incompatible" and "delete it" in compat.reasons[0].remedy

    trunc, compat = rows[("trunc", 3)]
    assert trunc.status == "corrupt" and "truncated" in trunc.problem
    assert compat.level == "incompatible" and "never loaded" in compat.reasons[0].message

    deep, compat = rows[("deep", 7)]
    assert deep.status == "complete" and compat.level == "incompatible"
    (reason,) = compat.reasons
    assert "depth 3 (config: 2)" in reason.message
    assert reason.remedy == "set model.depth=3" and reason.overrides == {"model.depth": 3}

    bad, _ = rows[("badmeta", 1)]
    assert bad.status == "corrupt" and "not valid JSON" in bad.problem

    if STOCK_FIXTURE.is_dir():
        stock, compat = rows[("d4", 0)]
        meta = json.loads((STOCK_FIXTURE / "meta_000000.json").read_text())
        assert (stock.origin, stock.run, stock.label, stock.status) == ("stock", None, "d4", "complete")
        assert stock.params == GPT(GPTConfig(**meta["model_config"])).num_params()
        assert stock.setting(MC) is False and stock.tokenizer_hash is None and not stock.resumable
        messages = " | ".join(r.message for r in compat.reasons)
        remedies = " | ".join(r.remedy for r in compat.reasons)
        assert compat.level == "incompatible"
        assert "depth 4 (config: 2)" in messages and "vocab differs: 320 tokens (config: 300)" in messages
        assert "set model.depth=4 model.max_seq_len=128 model.window_pattern=SSSL" in remedies
        assert "no optimizer state" in messages


def test_arch_overrides_rebuild_the_shape():
    for mc in ({"n_layer": 12, "n_embd": 768, "n_head": 6, "n_kv_head": 6, "sequence_len": 2048, "vocab_size": 32768,
                "window_pattern": "SSSL"},
               {"n_layer": 3, "n_embd": 64, "n_head": 2, "n_kv_head": 1, "sequence_len": 64, "vocab_size": 300,
                "window_pattern": "L"}):
        o = arch_overrides(mc)
        assert model_dim(o["model.depth"], o["model.aspect_ratio"], o["model.head_dim"]) == mc["n_embd"]
        assert o["model.n_kv_head"] == (None if mc["n_kv_head"] == mc["n_head"] else mc["n_kv_head"])


def test_tokenizer_mc_and_data_differences(tmp_path, shared, resolved, base, megacontext):
    tok, data, root = shared
    other_tok = train_tokenizer(tmp_path / "other-tok")  # same texts: same tokens…
    assert other_tok.fingerprint == tok.fingerprint
    rev = Tokenizer.train_from_iterator([t[::-1] for t in corpus_texts()], 300)  # …reversed text: other merges
    rev.save(tmp_path / "rev-tok")
    rev = Tokenizer.from_directory(tmp_path / "rev-tok")
    other_data = write_data_dir(tmp_path / "other-data")
    save_ours(base, "revtok", 1, tiny_model(300), rev, data)
    save_ours(base, "mc", 2, tiny_model(300), tok, other_data, extra_user={"megacontext": {"enabled": True}})
    rows = {e.tag: (e, c) for e, c in CheckpointRegistry(base).with_compat(resolved)}

    entry, compat = rows["revtok"]
    (reason,) = compat.reasons
    assert compat.level == "incompatible" and "tokenizer differs" in reason.message
    assert reason.remedy == f"use its tokenizer: set data.tokenizer_dir={rev.directory}"

    entry, compat = rows["mc"]
    assert entry.setting(MC) is True and compat.level == "warnings"
    text = [(r.message, r.remedy) for r in compat.reasons]
    assert ("MegaContext is on in the checkpoint, off in the config", "set megacontext.enabled=true") in text
    assert any("trained on other data" in m and f"data.data_dir={other_data}" in r for m, r in text)


real_read_entry = reg.read_entry


def test_index_is_reused_until_files_change(base, monkeypatch):
    first = by_key(CheckpointRegistry(base).scan())
    assert reg.index_path().is_file()
    monkeypatch.setattr(reg, "read_entry", lambda *a: pytest.fail("unchanged steps must come from the index"))
    again = by_key(CheckpointRegistry(base).scan())
    assert {k: e.to_dict() for k, e in again.items()} == {k: e.to_dict() for k, e in first.items()}

    meta_path = first[("tiny", 5)].meta_file
    meta = json.loads(meta_path.read_text())
    meta["val_bpb"] = 1.25
    meta_path.write_text(json.dumps(meta))
    calls = []
    monkeypatch.setattr(reg, "read_entry", lambda *a: calls.append(a[2]) or real_read_entry(*a))
    assert by_key(CheckpointRegistry(base).scan())[("tiny", 5)].val_bpb == 1.25
    assert calls == [5]


def test_a_damaged_index_is_rebuilt(base):
    reg.index_path().parent.mkdir(parents=True, exist_ok=True)
    reg.index_path().write_text("{half")
    assert ("tiny", 5) in by_key(CheckpointRegistry(base).scan())
    assert json.loads(reg.index_path().read_text())["version"] == reg.INDEX_VERSION


def test_find_accepts_dirs_and_model_files(base):
    r = CheckpointRegistry(base)
    tiny = checkpoint_dir(base, "tiny")
    assert r.find(tiny).step == 5  # the latest COMPLETE step, not the interrupted 10
    assert r.find(tiny / "model_000010.pt").status == "incomplete"
    assert r.find(tiny, step=10).step == 10
    with pytest.raises(EngineError, match="no step 4: pick one of 10, 5"):
        r.find(tiny, step=4)
    with pytest.raises(EngineError, match="no complete checkpoint"):
        r.find(checkpoint_dir(base, "trunc"))
    with pytest.raises(EngineError, match="no such checkpoint dir"):
        r.find(base / "nowhere")


def test_baseline_resume_and_weights(base, resolved, shared):
    tok, data, _ = shared
    r = CheckpointRegistry(base)
    tiny = r.find(checkpoint_dir(base, "tiny"))
    b = r.baseline(tiny, resolved, "resume")
    assert b.resume and b.spec.config.resume and b.spec.config.resume_from_step == 5
    assert (b.spec.config.run, b.spec.config.model_tag, b.spec.config.base_dir) == ("tiny", "tiny", str(base.resolve()))
    assert b.spec.config.tokenizer_dir == str(tok.directory) and b.spec.config.data_dir == str(data)
    assert b.spec.nproc_per_node == 1  # the checkpoint has one rank's optimizer state; the prefab said 2
    assert b.spec.config.total_batch_size == 512  # the run's own training settings

    w = r.baseline(tiny, resolved, "weights")
    assert not w.resume and w.spec.config.init_from == str(tiny.model_file) and not w.spec.config.resume
    assert w.spec.config.run == "cpu-tiny"

    deep = r.find(checkpoint_dir(base, "deep"))
    w = r.baseline(deep, {**resolved, "run.name": "tiny"}, "weights")
    assert w.spec.config.depth == 3 and w.spec.config.run == "tiny-2"  # 'tiny' has checkpoints already
    with pytest.raises(EngineError, match="corrupt"):
        r.baseline(r.find(checkpoint_dir(base, "trunc"), step=3), resolved, "weights")
    if STOCK_FIXTURE.is_dir():
        stock = r.find(checkpoint_dir(base, "d4"))
        with pytest.raises(EngineError, match="cannot resume .optimizer files are missing.: start from its weights"):
            r.baseline(stock, resolved, "resume")
        w = r.baseline(stock, resolved, "weights")
        assert (w.spec.config.depth, w.spec.config.max_seq_len, w.spec.config.vocab_size) == (4, 128, 320)


def test_sft_phase_is_listed_and_weights_only(base, resolved, shared):
    tok, data, _ = shared
    d = save_ours(base, "tiny-sft", 4, tiny_model(300), tok, data)
    sft = checkpoint_dir(base, "tiny-sft", "sft")
    sft.parent.mkdir(parents=True)
    d.rename(sft)
    rows = {(e.phase, e.tag): (e, c) for e, c in CheckpointRegistry(base).with_compat(resolved)}
    entry, compat = rows[("sft", "tiny-sft")]
    assert compat.level == "warnings" and "only its weights" in compat.reasons[0].message
    with pytest.raises(EngineError, match="not a base-phase checkpoint"):
        CheckpointRegistry(base).baseline(entry, resolved, "resume")


def test_delete_removes_meta_first_and_the_empty_dir(base, monkeypatch):
    r = CheckpointRegistry(base)
    tiny = checkpoint_dir(base, "tiny")
    entry = r.find(tiny, step=5)
    order = []
    real_unlink = Path.unlink
    with monkeypatch.context() as m:  # record the deletion order (undoes only this patch)
        m.setattr(Path, "unlink", lambda self, missing_ok=False: order.append(self.name) or
                  real_unlink(self, missing_ok=missing_ok))
        removed = r.delete(entry)
    assert order[:3] == ["meta_000005.json", "model_000005.pt", "optim_000005_rank0.pt"]
    assert [p.name for p in removed] == order
    assert sorted(p.name for p in tiny.iterdir()) == ["model_000010.pt"]
    assert ("tiny", 5) not in by_key(r.scan())
    r.delete(r.find(tiny, step=10))
    assert not tiny.exists()
    assert not any(k.startswith(str(tiny.resolve())) for k in json.loads(reg.index_path().read_text())["entries"])


def test_registry_import_stays_torch_free():
    import subprocess
    import sys

    code = "import sys, nanochat_cli.services.checkpoints.registry; print('torch' in sys.modules)"
    repo = Path(reg.__file__).parents[3]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=repo)
    assert out.stdout.strip() == "False"


def test_listing_is_newest_first_and_knows_how_many_tokens_val_bpb_covered(base):
    import os

    for i, d in enumerate(sorted((base / "base_checkpoints").iterdir())):  # dates in name order: a, b, … oldest
        for p in d.iterdir():
            os.utime(p, (1_700_000_000 + 60 * i, 1_700_000_000 + 60 * i))
    listed = CheckpointRegistry(base).scan()
    assert [e.date for e in listed] == sorted((e.date for e in listed), reverse=True)
    assert [(e.tag, e.step) for e in listed][:3] == [("trunc", 3), ("tiny", 10), ("tiny", 5)]  # same date: step
    tiny = by_key(listed)[("tiny", 5)]
    # save_ours: eval_tokens 10 × 524288, 8 rows × 64 tokens, one rank: whole batches of 512 tokens
    assert tiny.user_config["eval_tokens"] == 5_242_880 and tiny.val_tokens == 5_242_880


def test_an_index_from_before_val_tokens_is_read_again_and_keeps_its_evaluations(base):
    registry = CheckpointRegistry(base)
    entry = by_key(registry.scan())[("tiny", 5)]
    index = json.loads(reg.index_path().read_text())
    for cached in index["entries"].values():
        cached["entry"].pop("val_tokens")
    index["evals"][entry.key] = {"sig": [[entry.model_file.name, entry.model_file.stat().st_size,
                                          entry.model_file.stat().st_mtime_ns]],
                                 "report": {"checkpoint": str(entry.model_file), "step": 5, "val_bpb": 2.0,
                                            "eval_tokens": 512, "data_dir": None}}
    reg.index_path().write_text(json.dumps(index))
    again = by_key(CheckpointRegistry(base).scan())[("tiny", 5)]
    assert again.val_tokens == 5_242_880 and again.eval.val_bpb == 2.0
