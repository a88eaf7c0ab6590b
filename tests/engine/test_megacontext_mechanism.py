"""MegaContext mechanism: the allocator swaps in the span LensNet scores highest only when it beats the weakest
raw block by the hysteresis margin, the training loss includes the tail loss and trains GistNet, and the
lexical-overlap feature finds the block that shares the recent tokens."""

from __future__ import annotations

import copy

import pytest
import torch

from engine.gpt import GPT, GPTConfig
from nanochat_plugins.megacontext.context import (
    GistStage,
    assemble,
    bag_loss,
    block_states,
    context_loss,
    context_losses,
    distill_loss,
    distill_rows,
    make_gists,
    overlap,
    window_loss,
)
from nanochat_plugins.megacontext.nets import GistNet, LensNet
from nanochat_plugins.megacontext.tree import GIST, RAW, WorkingContext, allocate


def _recent_context() -> tuple[WorkingContext, list[int]]:
    wc = WorkingContext(n_blocks=30, block_size=32, tail=64, budget=256, levels=2)
    wc.fit_recent()
    raw = [b for b, lod in enumerate(wc.lod) if lod == RAW]
    assert raw == [25, 26, 27, 28, 29] and wc.slots() == 249  # a full budget: expanding needs a swap
    return wc, raw


def test_allocator_swaps_the_best_gist_for_the_weakest_raw_block_under_budget():
    wc, raw = _recent_context()
    scores = [0.0] * 30
    for rank, b in enumerate(raw):
        scores[b] = 1.0 + rank  # newer raw blocks matter more
    scores[3], scores[10] = 2.0, 1.5  # block 3 beats the weakest raw block (25, 1.0) by 1.0 nats
    actions = allocate(wc, scores, expand_threshold=0.25, collapse_threshold=-0.25)
    assert [(a.op, a.block) for a in actions] == [("collapse", 25), ("expand", 3)]
    assert wc.lod[3] == RAW and wc.lod[25] == GIST and wc.slots() <= wc.budget
    # block 10 (1.5) no longer beats the weakest raw block (26, 2.0): no swap, and nothing churns
    assert allocate(wc, scores, expand_threshold=0.25, collapse_threshold=-0.25) == []


def test_allocator_keeps_the_context_when_the_gain_is_within_the_margin():
    wc, raw = _recent_context()
    scores = [0.0] * 30
    for b in raw:
        scores[b] = 1.0
    scores[3] = 1.4  # better than the weakest raw block, but by less than the margin 0.5
    before = list(wc.lod)
    assert allocate(wc, scores, expand_threshold=0.25, collapse_threshold=-0.25) == [] and wc.lod == before


def test_a_noisy_lensnet_widens_the_swap_margin_and_old_weights_still_load():
    lens = LensNet(16)
    assert lens.margin(0.5) == 0.5  # nothing measured yet: the configured hysteresis
    lens.track_error(torch.tensor([1.0, -1.0]), torch.tensor([0.0, 0.0]))  # off by 1 nat on every probe
    assert abs(float(lens.swap_error) - 1.0) < 1e-6 and abs(lens.margin(0.5) - 2.0) < 1e-6
    wc, raw = _recent_context()
    scores = [0.0] * 30
    for b in raw:
        scores[b] = 1.0
    scores[3] = 2.5  # 1.5 nats over the weakest raw block: beyond the hysteresis, within LensNet's noise
    assert allocate(copy.deepcopy(wc), scores, 0.25, -0.25) != []
    assert allocate(wc, scores, 0.25, -0.25, margin=lens.margin(0.5)) == []
    state = lens.state_dict()
    del state["swap_error"]  # a LensNet saved before the error was tracked
    old = LensNet(16)
    old.load_state_dict(state)
    assert float(old.swap_error) == 0.0


def test_raw_jitter_is_not_counted_as_swaps_but_the_map_shows_what_trained():
    from nanochat_plugins.megacontext.extension import telemetry

    wc, raw = _recent_context()
    before = list(wc.lod)
    scores = [0.0] * 30
    scores[3] = 5.0
    actions = allocate(wc, scores, 0.25, -0.25)  # one swap: block 3 in, the weakest raw block out
    allocated = list(wc.lod)
    wc.keep_newest_raw(1)  # raw jitter: the older raw blocks back to gists for this step's loss
    data = telemetry(wc, before, actions, allocated)
    assert (data["swap_in"], data["swap_out"]) == (1, 1) and len(data["actions"]) == 2
    assert data["lod"].count("█") == 1 + 2  # the one raw history block and the tail's two blocks


def test_overlap_finds_the_block_sharing_the_recent_ids():
    history = torch.arange(1000, 1000 + 8 * 32)  # every block distinct
    history[-16:] = torch.arange(16)  # the newest tokens ...
    history[2 * 32:2 * 32 + 16] = torch.arange(16)  # ... also in block 2
    lex = overlap(history, 32, recent=16)
    assert int(lex.argmax()) in (2, 7) and float(lex[2]) == 1.0 and float(lex[0]) == 0.0


def test_training_loss_holds_the_tail_loss_reaches_gistnet_and_lens_scores_are_bounded():
    torch.manual_seed(0)
    model = GPT(GPTConfig(sequence_len=256, vocab_size=100, n_layer=2, n_head=2, n_kv_head=2, n_embd=64))
    model.init_weights()
    history, tail = torch.randint(1, 100, (8 * 16,)), torch.randint(1, 100, (16,))
    gistnet = GistNet(64, 16, dim=32, heads=2)
    gists = make_gists(model, gistnet, history, 16, 1)
    wc = WorkingContext(n_blocks=8, block_size=16, tail=16, budget=64, levels=1)
    wc.fit_recent()
    wide, tail_loss = context_losses(model, history, tail, wc, gists, placeholder=0)
    assert torch.allclose(tail_loss, context_loss(model, history, tail, wc, gists, placeholder=0), atol=1e-5)
    wide.backward()  # the gradient reaches GistNet through the gists
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in gistnet.parameters())
    scores = LensNet(64)(gists.level1.detach() * 100, gists.level1[0].detach(), torch.ones(8), torch.ones(8))
    assert scores.abs().max() <= 4.0  # bounded: a wild input cannot force a swap


def test_the_lead_tokens_follow_their_blocks_gist_and_fill_the_budget():
    torch.manual_seed(1)
    model = GPT(GPTConfig(sequence_len=128, vocab_size=100, n_layer=2, n_head=2, n_kv_head=2, n_embd=64))
    model.init_weights()
    history, tail = torch.randint(1, 100, (8 * 16,)), torch.randint(1, 100, (16,))
    gists = make_gists(model, GistNet(64, 16, dim=32, heads=2), history, 16, 1)
    wc = WorkingContext(n_blocks=8, block_size=16, tail=16, budget=66, levels=1, fill=True)
    wc.fit_recent()  # gists 0-5, raw 6-7, the tail: 54 positions, so block 5's newest 12 tokens fill in
    idx, st = assemble(history, tail, wc, gists, placeholder=0)
    pos, vec = st.pos, st.vec
    assert wc.lead_block() == 5 and wc.lead() == 12 and idx.size(1) == wc.used() == 66
    assert pos.tolist() == [0, 1, 2, 3, 4, 5] and torch.equal(vec, gists.level1[:6])
    assert torch.equal(idx[0, 6:18], history[6 * 16 - 12:6 * 16])  # after gist 5: its block's newest tokens
    assert torch.equal(idx[0, 18:50], history[6 * 16:]) and wc.position(6) == 18
    assert torch.isfinite(context_loss(model, history, tail, wc, gists, placeholder=0))


def test_state_gists_pool_what_the_model_read_in_each_chunk_and_train_only_gistnet():
    torch.manual_seed(2)
    model = GPT(GPTConfig(sequence_len=128, vocab_size=100, n_layer=2, n_head=2, n_kv_head=2, n_embd=64))
    model.init_weights()
    with torch.no_grad():  # attention that depends on the context (a fresh model's output projections are zero)
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    history, tail = torch.randint(1, 100, (8 * 16,)), torch.randint(1, 100, (16,))
    states = block_states(model, history, 16, chunk=32)
    changed = history.clone()
    changed[0] = changed[0] % 99 + 1
    other = block_states(model, changed, 16, chunk=32)
    assert states.shape == (8, 16, 64) and not states.requires_grad
    assert not torch.allclose(states[1], other[1])  # block 1 was read after block 0 (the same chunk)
    assert torch.allclose(states[2], other[2])  # block 2 opens the next chunk
    gistnet = GistNet(64, 16, dim=32, heads=2)
    gists = make_gists(model, gistnet, history, 16, 1, states_chunk=32)
    wc = WorkingContext(n_blocks=8, block_size=16, tail=16, budget=64, levels=1)
    wc.fit_recent()
    gists.level1.sum().backward()  # reading the states is gradient-free: only GistNet learns from the gists
    assert all(p.grad is None for p in model.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in gistnet.parameters())
    assert torch.isfinite(context_loss(model, history, tail, wc, gists, placeholder=0))


def _reading_model(seed: int, n_layer: int) -> GPT:
    """A small model whose outputs depend on its inputs (a fresh one zeroes some projections)."""
    torch.manual_seed(seed)
    model = GPT(GPTConfig(sequence_len=128, vocab_size=100, n_layer=n_layer, n_head=2, n_kv_head=2, n_embd=64))
    model.init_weights()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model


def test_trained_state_gists_send_their_gradient_into_the_model_that_read_them():
    model = _reading_model(2, n_layer=2)
    history = torch.randint(1, 100, (8 * 16,))
    gistnet = GistNet(64, 16, dim=32, heads=2)
    gists = make_gists(model, gistnet, history, 16, 1, states_chunk=32, states_grad=True)
    assert torch.allclose(gists.level1, make_gists(model, gistnet, history, 16, 1, states_chunk=32).level1)
    gists.level1.sum().backward()
    block = model.transformer.h[0].attn.c_q.weight  # a weight that shapes the last layer's states
    assert block.grad is not None and block.grad.abs().sum() > 0
    with torch.no_grad():  # inference: the same call builds no graph
        assert not make_gists(model, gistnet, history, 16, 1, states_chunk=32, states_grad=True).level1.requires_grad


def test_gists_carry_their_blocks_mean_value_embeddings_in_place_of_the_placeholders():
    model = _reading_model(5, n_layer=4)
    history, tail = torch.randint(1, 100, (32 * 4,)), torch.randint(1, 100, (8,))
    gistnet = GistNet(64, 4, dim=32, heads=2)
    gists = make_gists(model, gistnet, history, 4, 2, values=True)
    assert gists.value_layers == (1, 3) and gists.values1.shape == (32, 2, 64) and gists.values2.shape == (8, 2, 64)
    assert torch.allclose(gists.values1[2, 1], model.value_embeds["3"](history[8:12]).mean(0))
    assert torch.allclose(gists.values2[1], gists.values1[4:8].mean(0))  # a level-2 gist: its blocks' mean
    wc = WorkingContext(n_blocks=32, block_size=4, tail=8, budget=24, levels=1)
    wc.fit_recent()
    idx, st = assemble(history, tail, wc, gists, placeholder=0)
    gist_blocks = [b for b, lod in enumerate(wc.lod) if lod == GIST]
    assert st.layers == (1, 3) and torch.equal(st.values, gists.values1[gist_blocks])
    plain = make_gists(model, gistnet, history, 4, 2)  # no values: the placeholder's stay
    assert plain.values1 is None and assemble(history, tail, wc, plain, placeholder=0)[1].values is None
    loss = context_loss(model, history, tail, wc, gists, placeholder=0)
    assert not torch.allclose(loss, context_loss(model, history, tail, wc, plain, placeholder=0))
    loss.backward()  # the model learns its value embeddings from what the gists' values tell it, too
    assert model.value_embeds["1"].weight.grad[history[:4]].abs().sum() > 0


def test_distillation_compares_the_rows_that_predict_the_same_token_and_trains_gistnet():
    torch.manual_seed(3)
    model = GPT(GPTConfig(sequence_len=256, vocab_size=100, n_layer=2, n_head=2, n_kv_head=2, n_embd=64))
    model.init_weights()
    with torch.no_grad():  # a model whose predictions depend on the context (a fresh one predicts uniformly)
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    history, tail = torch.randint(1, 100, (8 * 16,)), torch.randint(1, 100, (16,))
    gistnet = GistNet(64, 16, dim=32, heads=2)
    gists = make_gists(model, gistnet, history, 16, 1)
    wc = WorkingContext(n_blocks=8, block_size=16, tail=16, budget=80, levels=1)
    wc.fit_recent()  # gists 0-4, raw 5-7: room for one more raw block
    teacher = copy.deepcopy(wc)
    teacher.expand(2)
    idx_s, st_s = assemble(history, tail, wc, gists, placeholder=0)
    pos_s = st_s.pos
    idx_t, _ = assemble(history, tail, teacher, gists, placeholder=0)
    rows_s, rows_t = distill_rows(wc, 2, pos_s, idx_s.size(1))
    assert wc.position(2) == 2 and int(rows_s[0]) == 4  # gist 4's row predicts the first raw token
    assert torch.equal(idx_s[0, rows_s + 1], idx_t[0, rows_t + 1])  # the same next tokens, every row
    loss, bag = distill_loss(model, history, tail, wc, gists, placeholder=0, block=2)
    assert float(loss.detach()) > 0 and float(bag.detach()) > 0
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in gistnet.parameters())


def test_the_bag_loss_asks_each_gist_position_for_the_tokens_its_span_holds():
    history = torch.tensor([1, 1, 2, 3, 4, 4, 4, 4] * 2)
    st = GistStage(torch.tensor([0, 2]), torch.zeros(2, 8), spans=((0, 4), (4, 8)))
    logits = torch.zeros(5, 6, requires_grad=True)
    loss = bag_loss(logits, st, history)
    assert torch.allclose(loss, torch.log(torch.tensor(6.0)))  # uniform outputs: log V whatever the bags
    loss.backward()
    # the gradient lowers each gist position's loss toward its own bag: ids 1, 1, 2, 3 at position 0; 4s at 2
    assert torch.allclose(-logits.grad[0] * 2, torch.tensor([0, 2, 1, 1, 0, 0]) / 4 - 1 / 6)
    assert torch.allclose(-logits.grad[2] * 2, torch.tensor([0, 0, 0, 0, 1, 0]) - 1 / 6)
    assert not logits.grad[[1, 3, 4]].any()  # raw positions: untouched


def test_the_truncated_view_scores_every_token_of_the_window():
    torch.manual_seed(4)
    model = GPT(GPTConfig(sequence_len=64, vocab_size=100, n_layer=2, n_head=2, n_kv_head=2, n_embd=64))
    model.init_weights()
    tokens = torch.randint(1, 100, (40,))
    per_token = model(tokens[None, :-1], tokens[None, 1:], loss_reduction="none")
    assert torch.allclose(window_loss(model, tokens), per_token.mean(), atol=1e-6)


def _session(budget: int = 96):
    from nanochat_plugins.megacontext.config import MegaContextConfig
    from nanochat_plugins.megacontext.session import MegaContextModel

    torch.manual_seed(1)
    mc = MegaContextModel.__new__(MegaContextModel)  # no checkpoint: a random model and nets
    mc.model = GPT(GPTConfig(sequence_len=128, vocab_size=100, n_layer=2, n_head=2, n_kv_head=2, n_embd=64))
    mc.model.init_weights()
    mc.model.eval()
    mc.cfg = MegaContextConfig(enabled=True, block_size=16, budget=budget, tail_tokens=32, doc_tokens=128,
                               lens_refresh=4, gistnet_dim=32, gistnet_heads=2)
    mc.gistnet, mc.lensnet = GistNet(64, 16, 32, 2).eval(), LensNet(64).eval()
    mc.device, mc.placeholder = "cpu", 0
    mc.max_raw, mc.calibration = None, []
    return mc


def test_the_session_keeps_at_most_max_raw_raw_blocks_and_scores_the_uncapped_layout_too():
    mc = _session(budget=96)
    doc = torch.randint(1, 100, (16 * 8 + 32,))
    history, _ = mc.split(doc, 32)
    assert mc.read(history, 32)[0].wc.resident() == 3  # 3 raw blocks + 5 gists + the tail fill 96
    mc.max_raw = 1
    reading, _ = mc.read(history, 32)
    assert reading.wc.resident() == 1 and reading.wc.lod[-1] == RAW  # the newest block stays raw
    out = mc.losses(doc, 32, 96)
    assert out["raw_blocks"] == 1 and out["mc_uncapped"] != out["mc"]


@pytest.mark.slow  # two greedy decodes through the working context: 2-10 s on a loaded 2-core machine
def test_chat_decoding_with_the_kv_cache_matches_full_recompute():
    mc = _session()
    ids = torch.randint(1, 100, (16 * 8 + 5,)).tolist()
    plain = list(mc.generate(ids, 12, cache=False))
    cached = list(mc.generate(ids, 12, cache=True))
    assert cached == plain
    assert 1 <= mc.rebuilds < 12  # rebuilt only when the working context changed
    assert mc.reading.wc.slots() <= 96


def test_gists_keep_their_blocks_content_however_large_gistnet_grows():
    torch.manual_seed(2)
    gistnet = GistNet(64, 16, dim=32, heads=2)
    with torch.no_grad():
        gistnet.out.weight.fill_(50.0)  # a learned part that alone would map every block to one vector
    blocks = torch.nn.functional.rms_norm(torch.randn(6, 16, 64), (64,))
    with torch.no_grad():
        gists = gistnet(blocks)
    cos = torch.nn.functional.cosine_similarity(gists[:, None], gists[None], dim=-1)
    assert float(cos[~torch.eye(6, dtype=torch.bool)].max()) < 0.9  # distinct blocks, distinct gists
