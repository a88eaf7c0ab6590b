"""Checkpoint evaluation (val bpb through engine.loss_eval.evaluate_bpb + the eval prompts' completions, cached in the
index) and the editable eval prompt set."""

import math
import shutil
from contextlib import nullcontext

import pytest
import torch
from ckpt_helpers import STOCK_FIXTURE, corpus_texts, save_ours, tiny_model, train_tokenizer, write_data_dir

from engine.checkpoint import checkpoint_dir
from engine.dataloader import make_loader
from engine.errors import EngineError
from engine.loss_eval import evaluate_bpb
from engine.tokenizer import Tokenizer
from nanochat_cli.errors import AppError
from nanochat_cli.services.checkpoints.prompts import (
    SHIPPED,
    EvalPrompt,
    load_prompt_set,
    reset_prompt_set,
    save_prompt_set,
    user_prompts_path,
)
from nanochat_cli.services.checkpoints.registry import CheckpointRegistry

PROMPTS = [EvalPrompt("code", "def main():", "continue"), EvalPrompt("hi", "Hello!", "chat")]


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    return train_tokenizer(tmp_path_factory.mktemp("tok") / "tokenizer")


@pytest.fixture
def setup(tmp_path, tok):
    data = write_data_dir(tmp_path / "data")
    base = tmp_path / "base"
    save_ours(base, "tiny", 5, tiny_model(300), tok, data)
    return base, data


def test_eval_report_measures_bpb_and_completes_the_prompts(setup, tok):
    base, data = setup
    registry = CheckpointRegistry(base)
    entry = registry.find(checkpoint_dir(base, "tiny"))
    report = registry.evaluate(entry, tokens=512, max_new_tokens=6, prompts=PROMPTS)
    # the same number as the trainer's own evaluation of these weights on the same batches
    loader = make_loader(tok, 8, 64, "val", data)
    expected = evaluate_bpb(tiny_model(300), loader, 1, tok.token_bytes(), nullcontext())
    assert math.isfinite(report.val_bpb) and report.val_bpb == pytest.approx(expected, rel=1e-6)
    assert report.eval_tokens == 512 and report.data_dir == str(data) and report.step == 5
    assert [(s.name, s.mode) for s in report.samples] == [("code", "continue"), ("hi", "chat")]
    assert all(s.tokens <= 6 and s.seconds >= 0 for s in report.samples)
    assert report.checkpoint == str(entry.model_file) and report.seconds > 0

    cached = {e.step: e for e in CheckpointRegistry(base).scan()}[5].eval  # shown inline by the screen
    assert cached == report
    torch.save(tiny_model(300, seed=1).state_dict(), entry.model_file)  # new weights: the report is stale
    assert {e.step: e for e in CheckpointRegistry(base).scan()}[5].eval is None


def test_eval_is_deterministic_and_tokens_zero_skips_bpb(setup):
    base, _ = setup
    registry = CheckpointRegistry(base)
    entry = registry.find(checkpoint_dir(base, "tiny"))
    a = registry.evaluate(entry, tokens=0, max_new_tokens=5, prompts=PROMPTS)
    b = registry.evaluate(entry, tokens=0, max_new_tokens=5, prompts=PROMPTS)
    assert a.val_bpb is None and a.eval_tokens == 0
    assert [s.completion for s in a.samples] == [s.completion for s in b.samples]


@pytest.mark.skipif(not STOCK_FIXTURE.is_dir(), reason="needs ../shared/fixtures")
def test_stock_checkpoint_needs_a_data_dir(tmp_path, setup):
    base, data = setup
    d = checkpoint_dir(base, "d4")
    d.mkdir(parents=True)
    for name in ("model_000000.pt", "meta_000000.json"):
        shutil.copy(STOCK_FIXTURE / name, d / name)
    Tokenizer.train_from_iterator(corpus_texts(), 320).save(base / "tokenizer")
    registry = CheckpointRegistry(base)
    entry = registry.find(d)
    with pytest.raises(EngineError, match="no held-out data known .*--data-dir"):
        registry.evaluate(entry, tokens=256, max_new_tokens=0)
    report = registry.evaluate(entry, tokens=256, max_new_tokens=0, data_dir=data)
    assert math.isfinite(report.val_bpb) and report.eval_tokens == 256 and report.samples == []


def test_prompt_set_default_edit_persist_reset():
    shipped = load_prompt_set()
    assert not user_prompts_path().exists() and SHIPPED.is_file()
    assert {p.mode for p in shipped} == {"continue", "chat"} and len({p.name for p in shipped}) == len(shipped)
    edited = shipped[:1] + [EvalPrompt("mine", "Tell me a story.", "chat")]
    path = save_prompt_set(edited)
    assert path == user_prompts_path() and load_prompt_set() == edited
    with pytest.raises(AppError, match=r"prompts\[0\] \(x\): mode 'poem': use continue or chat"):
        save_prompt_set([EvalPrompt("x", "y", "poem")])
    with pytest.raises(AppError, match="name 'mine' is used twice"):
        save_prompt_set(edited + [EvalPrompt("mine", "z")])
    assert load_prompt_set() == edited  # a refused save leaves the file alone
    user_prompts_path().write_text("prompts: [oops")
    with pytest.raises(AppError, match="not valid YAML"):
        load_prompt_set()
    reset_prompt_set()
    assert load_prompt_set() == shipped


def test_eval_runs_with_the_chosen_thread_count(setup, monkeypatch):
    """`nanochat-cli eval` on a busy machine crawled with torch's default thread per core: it picks its count."""
    from nanochat_cli.services import compute

    base, _ = setup
    registry = CheckpointRegistry(base)
    entry = registry.find(checkpoint_dir(base, "tiny"))
    monkeypatch.setattr(compute, "available_cpus", lambda: 7)  # a count no default would give
    before = torch.get_num_threads()
    try:
        for load, threads in ((0.0, 7), (6.5, 1)):
            monkeypatch.setattr(compute.psutil, "getloadavg", lambda load=load: (load, load, load))
            registry.evaluate(entry, tokens=512, max_new_tokens=0, prompts=PROMPTS)
            assert torch.get_num_threads() == threads
    finally:
        torch.set_num_threads(before)
