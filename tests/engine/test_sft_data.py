"""SFT packing: rows equal a plain best-fit reference, targets are -1 exactly off the assistant's tokens,
ranks split the data, and a loader rebuilt from a saved state yields the same next batches."""

import random

import pytest
import torch

from engine.errors import EngineError
from engine.sft_data import PackedBatches, render_task
from engine.tasks import ListTask, SkipReport, build_task
from engine.tokenizer import Tokenizer

PAD = 0


def reference_rows(docs, n_rows, width, buffer_size):
    """Best fit written out plainly: keep the buffer full from the stream, then put in the longest
    buffered doc that fits (the first of equal ones) until none fits; pad the rest."""
    stream = iter(range(10**9))
    buffer, rows = [], []
    for _ in range(n_rows):
        while len(buffer) < buffer_size:
            buffer.append(next(stream) % len(docs))
        ids, mask = [], []
        while True:
            fitting = [d for d in buffer if len(docs[d][0]) <= width - len(ids)]
            if not fitting:
                break
            longest = max(len(docs[d][0]) for d in fitting)
            pick = next(d for d in fitting if len(docs[d][0]) == longest)
            buffer.remove(pick)
            ids += docs[pick][0]
            mask += docs[pick][1]
        rows.append((ids + [PAD] * (width - len(ids)), mask + [0] * (width - len(mask))))
    return rows


def random_docs(n, seed=0, longest=30):
    rng = random.Random(seed)
    docs = []
    for _ in range(n):
        length = rng.randint(2, longest)
        docs.append(([rng.randint(1, 99) for _ in range(length)], [rng.randint(0, 1) for _ in range(length)]))
    return docs


@pytest.mark.parametrize("buffer_size", [1, 4, 16])
def test_packing_and_masks_equal_the_reference(buffer_size):
    docs, T, B = random_docs(57), 24, 3  # docs up to 30 tokens, rows of 25: long docs are cut by render only
    docs = [(ids[:T + 1], m[:T + 1]) for ids, m in docs]
    loader = PackedBatches(docs, B, T, PAD, buffer_size=buffer_size)
    ref = reference_rows(docs, 8 * B, T + 1, buffer_size)
    for b in range(8):
        x, y, _ = next(loader)
        for r in range(B):
            ids, mask = ref[b * B + r]
            assert x[r].tolist() == ids[:-1]
            expect = [t if m else -1 for t, m in zip(ids[1:], mask[1:], strict=True)]
            assert y[r].tolist() == expect


def test_rendered_conversations_learn_only_assistant_tokens():
    tok = Tokenizer.train_from_iterator(["hello there, how many apples? 12 + 7 = 19 #### 19 " * 50], 280)
    task = build_task("arithmetic", size=6)
    report = SkipReport("render")
    docs = render_task(tok, task, 400, report)
    assert report.kept == 6 and len(docs) == 6
    x, y, _ = next(PackedBatches(docs, 2, 200, tok.get_bos_token_id()))
    sp = tok.encode_special
    learned = set(y[y >= 0].tolist())
    assert sp("<|assistant_end|>") in learned and sp("<|python_start|>") in learned
    assert not learned & {sp("<|user_start|>"), sp("<|user_end|>"), sp("<|output_start|>"), sp("<|output_end|>"),
                          sp("<|assistant_start|>"), tok.get_bos_token_id()}
    # a conversation whose assistant part falls past the cut is skipped, counted
    long_user = ListTask([{"messages": [{"role": "user", "content": "apples " * 100},
                                        {"role": "assistant", "content": "ok"}]}], "long")
    report = SkipReport("render")
    assert render_task(tok, long_user, 20, report) == [] and report.skipped == {
        "no assistant tokens within max_seq_len": 1}


def test_ranks_split_the_docs_and_state_resumes_exactly():
    docs = random_docs(40, seed=3)
    docs = [(ids[:17], m[:17]) for ids, m in docs]
    seen = []
    for rank in (0, 1):
        loader = PackedBatches(docs, 2, 16, PAD, rank=rank, world_size=2, buffer_size=4, epochs=1)
        seen += [loader.doc_of(k) for k in range(loader.limit)]
    assert sorted(seen) == list(range(40))

    loader = PackedBatches(docs, 2, 16, PAD, buffer_size=4)
    for _ in range(5):
        _, _, state = next(loader)
    expected = [next(loader)[:2] for _ in range(4)]
    resumed = PackedBatches(docs, 2, 16, PAD, buffer_size=4, state=state)
    for (x, y), (x2, y2, _) in zip(expected, resumed, strict=False):
        assert torch.equal(x, x2) and torch.equal(y, y2)
    with pytest.raises(EngineError, match="same tasks"):
        PackedBatches(docs[:-1], 2, 16, PAD, state=state)


def test_finite_pass_pads_the_last_batch_and_stops():
    docs = [([1] * 10, [1] * 10)] * 5  # one doc per row of 16
    batches = list(PackedBatches(docs, 2, 15, PAD, epochs=1))
    assert len(batches) == 3 and (batches[-1][1][1] == -1).all()
