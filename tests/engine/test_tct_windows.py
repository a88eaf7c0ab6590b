"""The windowed dataloader over `engine.tct.prepare` shards: shapes, position tokens, padding, exact resume,
and one-line errors (wrong context size, missing data for a tct:NAME data dir)."""

from __future__ import annotations

import pytest
import torch
from tct_helpers import prepare_windows

from engine.errors import EngineError
from engine.tct import tokenizer
from engine.tct.vocab import N_POS
from engine.tct_windows import make_window_loader, read_meta, resolve_window_dir


@pytest.fixture(scope="module")
def windows(tmp_path_factory):
    return prepare_windows(tmp_path_factory.mktemp("tct"), context_size=16)


def test_batches_are_windows_with_their_position_token_and_masked_padding(windows):
    vocab = tokenizer().vocab
    loader = make_window_loader(windows, B=4, T=16, split="train")
    x, y, state = next(loader)
    assert x.shape == y.shape == (4, 16) and x.dtype == y.dtype == torch.int64
    first = x[:, 0]
    assert all(vocab.pos_base <= int(t) < vocab.pos_base + N_POS for t in first)  # every row opens with one
    assert (x[:, 1:] == y[:, :-1]).logical_or(y[:, 1:] < 0).all()  # targets: the inputs shifted by one
    seen_start = seen_pad = False
    for _ in range(30):  # over an epoch: document starts (POS_0) and short last windows (padded, -1 targets)
        x, y, state = next(loader)
        seen_start |= bool((x[:, 0] == vocab.position_token(0)).any())
        pad = y < 0
        if pad.any():
            seen_pad = True
            row = int(pad.any(1).nonzero()[0])
            n = int((~pad[row]).sum())
            assert not pad[row, :n].any() and pad[row, n:].all()  # padding only after the window's end
    assert seen_start and seen_pad
    assert state["epoch"] >= 1 and state["kind"] == "tct-windows" and state["batches"] == 31


def test_resume_continues_with_exactly_the_same_batches(windows):
    a = make_window_loader(windows, B=3, T=16, split="train", seed=7)
    for _ in range(5):
        _x, _y, state = next(a)
    want = [next(a)[:2] for _ in range(12)]  # across an epoch boundary: the next permutation too
    b = make_window_loader(windows, B=3, T=16, split="train", seed=7, state=state)
    got = [next(b)[:2] for _ in range(12)]
    assert all(torch.equal(p[0], q[0]) and torch.equal(p[1], q[1]) for p, q in zip(want, got, strict=True))
    assert b.state()["batches"] == 17
    other = make_window_loader(windows, B=3, T=16, split="train", seed=8)
    assert not torch.equal(next(other)[0], make_window_loader(windows, B=3, T=16, split="train", seed=7).__next__()[0])
    with pytest.raises(EngineError, match="dataloader state: seed was 7, now 8"):
        make_window_loader(windows, B=3, T=16, split="train", seed=8, state=state)


def test_ranks_share_the_rows_and_val_is_in_file_order(windows):
    meta = read_meta(windows)
    assert meta["context_size"] == 16 and meta["splits"]["val"]
    r0 = make_window_loader(windows, B=2, T=16, split="val", rank=0, world_size=2)
    r1 = make_window_loader(windows, B=2, T=16, split="val", rank=1, world_size=2)
    assert not torch.equal(next(r0)[0], next(r1)[0])
    again = make_window_loader(windows, B=2, T=16, split="val", rank=0, world_size=2)
    assert torch.equal(next(again)[0], make_window_loader(windows, B=2, T=16, split="val", rank=0,
                                                          world_size=2).__next__()[0])


def test_one_line_errors_name_the_fix(windows, tmp_path, monkeypatch):
    with pytest.raises(EngineError, match=r"max_seq_len 32: the TCT windows in .* hold 16 tokens: set max_seq_len=16"):
        make_window_loader(windows, B=2, T=32, split="train")
    with pytest.raises(EngineError, match="meta.json: missing: prepare the folder"):
        make_window_loader(tmp_path, B=2, T=16, split="train")
    monkeypatch.setenv("NANOCHAT_TCT_SOURCES", str(tmp_path / "nowhere"))
    with pytest.raises(EngineError, match=r"data_dir tct:workflows: no TCT windows at .*workflows-ctx16 and no "
                                          r"workflow folder to prepare them from .*NANOCHAT_TCT_SOURCES=DIR"):
        resolve_window_dir("tct:workflows", tmp_path / "base", 16)
    with pytest.raises(EngineError, match="use tct:NAME"):
        resolve_window_dir("tct:../x", tmp_path / "base", 16)


def test_a_tct_data_dir_is_prepared_on_first_use_from_the_sources(tmp_path, monkeypatch, capsys):
    from tct_helpers import write_workflows

    monkeypatch.setenv("NANOCHAT_TCT_SOURCES", str(write_workflows(tmp_path / "src", copies=2)))
    out = resolve_window_dir("tct:mine", tmp_path / "base", 16)
    assert out == tmp_path / "base" / "tct_data" / "mine-ctx16" and read_meta(out)["context_size"] == 16
    assert "prepared TCT windows" in capsys.readouterr().out
    assert resolve_window_dir("tct:mine", tmp_path / "base", 16) == out  # second use: as it is
