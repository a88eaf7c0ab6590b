"""services/masking.py: which values are masked, in what, and that the stream wrapper behaves like a stream."""

from __future__ import annotations

import io
import sys
from collections import namedtuple
from dataclasses import dataclass, field

from nanochat_cli.services.masking import (
    MASK,
    MaskingStream,
    SecretMasker,
    masked_std_streams,
)

LONG = "abcdefgh" * 5
LONGER = LONG + "-suffix"


def test_env_values_and_remembered_values_are_masked(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_" + "t" * 30)
    m = SecretMasker()
    m.remember(LONG)
    assert m.mask(f"a {LONG} b hf_{'t' * 30} c") == f"a {MASK} b {MASK} c"
    monkeypatch.delenv("HF_TOKEN")
    assert m.mask(f"hf_{'t' * 30}") == f"hf_{'t' * 30}"  # env values are read when masking, not kept


def test_short_values_are_ignored_and_longest_wins(monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    m = SecretMasker(env_vars=())
    m.remember("abc")  # would garble every "abc" in the log
    m.remember(None)
    m.remember(LONG)
    m.remember(LONGER)
    assert m.values() == [LONGER, LONG]
    assert m.mask(f"abc {LONGER} {LONG}") == f"abc {MASK} {MASK}"


def test_mask_data_walks_containers_and_dataclasses():
    Pair = namedtuple("Pair", "a b")

    @dataclass
    class Frame:
        text: str
        items: list = field(default_factory=list)

    m = SecretMasker(env_vars=())
    m.remember(LONG)
    data = {"k": [LONG, (1, LONG)], LONG: Frame(f"x{LONG}", [Pair(LONG, 2)]), "n": 3}
    out = m.mask_data(data)
    assert out == {"k": [MASK, (1, MASK)], MASK: Frame(f"x{MASK}", [Pair(MASK, 2)]), "n": 3}
    assert data["k"][0] == LONG  # a copy: the original is untouched


def test_masking_stream_masks_and_delegates():
    m = SecretMasker(env_vars=())
    m.remember(LONG)
    target = io.StringIO()
    stream = MaskingStream(target, m)
    assert stream.write(f"key={LONG}\n") == len(f"key={LONG}\n")
    stream.writelines(["a", LONG])
    stream.flush()
    assert target.getvalue() == f"key={MASK}\na{MASK}"
    assert stream.isatty() is False and stream.getvalue() == target.getvalue()
    follow = MaskingStream(lambda: target, m)  # a callable: looked up at each write
    follow.write(LONG)
    assert target.getvalue().endswith(MASK)


def test_masked_std_streams_restores_the_originals(capsys):
    before = sys.stdout, sys.stderr
    with masked_std_streams():
        assert isinstance(sys.stdout, MaskingStream) and isinstance(sys.stderr, MaskingStream)
        print("hello")
    assert (sys.stdout, sys.stderr) == before
    assert capsys.readouterr().out == "hello\n"
