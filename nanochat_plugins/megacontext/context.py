"""From a document and its working context to the model's input: raw tokens where a block is resident, one
gist embedding where it is not. The gists enter through the model's `input_stage` hook (engine/gpt.py): the
token ids at gist positions are a placeholder (BOS) whose embedding the hook replaces."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch

from nanochat_plugins.megacontext.nets import GistNet, LensNet, rms
from nanochat_plugins.megacontext.tree import DROPPED, GIST, GIST2, RAW, WorkingContext


@dataclass
class Gists:
    level1: torch.Tensor  # [n_blocks, C]
    level2: torch.Tensor  # [n_groups, C] (whole groups only)
    # each gist's value embeddings, [n, len(value_layers), kv_dim] (block_values), or None: the placeholder's
    values1: torch.Tensor | None = None
    values2: torch.Tensor | None = None
    value_layers: tuple[int, ...] = ()

    def detached(self) -> Gists:
        """The same gists, cut from the graph (LensNet's fit and the distillation teacher train nothing here)."""
        def cut(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.detach()
        return Gists(self.level1.detach(), self.level2.detach(), cut(self.values1), cut(self.values2),
                     self.value_layers)


def block_embeddings(model, history: torch.Tensor, block_size: int) -> torch.Tensor:
    """[n_blocks, block_size, C]: the normed token embeddings of the history, block by block."""
    n = history.numel() // block_size
    return rms(model.transformer.wte(history[:n * block_size].view(n, block_size)))


def block_values(model, history: torch.Tensor, block_size: int) -> tuple[tuple[int, ...], torch.Tensor | None]:
    """(the layers with value embeddings, [n_blocks, len(layers), kv_dim]): each block's value embeddings averaged
    over its tokens, per layer. At a gist's position they stand in for the placeholder id's, which would make
    every gist's values the same; the mean is what attending evenly to the block's tokens would have read."""
    layers = tuple(sorted(int(k) for k in getattr(model, "value_embeds", {})))
    if not layers:
        return (), None
    n = history.numel() // block_size
    tokens = history[:n * block_size].view(n, block_size)
    return layers, torch.stack([model.value_embeds[str(i)](tokens).mean(1) for i in layers], 1)


def block_states(model, history: torch.Tensor, block_size: int, chunk: int, grad: bool = False) -> torch.Tensor:
    """[n_blocks, block_size, C]: the model's last-layer states over the history, normed, read raw `chunk` tokens
    at a time (a multiple of block_size): each token as the model understood it in its context, which says more
    about a block than its token embeddings do. With `grad` (and grad enabled), what is done with the states
    trains the model that read them; otherwise they are constants."""
    n = history.numel() // block_size
    grabbed: list[torch.Tensor] = []
    handle = model.transformer.h[-1].register_forward_hook(lambda _m, _i, out: grabbed.append(out[0]))
    try:
        with torch.set_grad_enabled(grad and torch.is_grad_enabled()):
            for start in range(0, n * block_size, chunk):
                model(history[start:min(start + chunk, n * block_size)][None])
    finally:
        handle.remove()
    return rms(torch.cat(grabbed)).view(n, block_size, -1)


def make_gists(model, gistnet: GistNet, history: torch.Tensor, block_size: int, levels: int,
               states_chunk: int = 0, states_grad: bool = False, values: bool = False) -> Gists:
    """The history's gists; with `states_chunk`, GistNet pools the model's states (block_states, with gradient
    into the model given `states_grad`) instead of the token embeddings; with `values`, each gist also carries
    its block's (a level-2 gist: its blocks') mean value embeddings (block_values)."""
    blocks = (block_states(model, history, block_size, states_chunk, states_grad) if states_chunk
              else block_embeddings(model, history, block_size))
    level1 = gistnet(blocks)
    n_groups = level1.size(0) // block_size if levels >= 2 else 0
    level2 = (gistnet(level1[:n_groups * block_size].view(n_groups, block_size, -1)) if n_groups
              else level1.new_zeros(0, level1.size(1)))
    layers, values1 = block_values(model, history, block_size) if values else ((), None)
    values2 = None
    if values1 is not None:
        values2 = values1[:n_groups * block_size].view(n_groups, block_size, *values1.shape[1:]).mean(1)
    return Gists(level1, level2, values1, values2, layers)


@dataclass
class GistStage:
    """The model's input stage (GPT.forward's `input_stage`) for one assembled working context: the gist vectors
    [G, C] go in at their positions [G] (autograd flows into them), and, when the gists carry them, their value
    embeddings [G, len(layers), kv_dim] replace the placeholder id's."""

    pos: torch.Tensor
    vec: torch.Tensor
    values: torch.Tensor | None = None
    layers: tuple[int, ...] = ()
    spans: tuple[tuple[int, int], ...] = ()  # the history tokens [start, end) each gist stands for

    def __call__(self, idx: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if not self.pos.numel():
            return x
        return x.index_put((torch.zeros_like(self.pos), self.pos), self.vec.to(x.dtype))

    def value_embed(self, layer: int, idx: torch.Tensor, ve: torch.Tensor) -> torch.Tensor:
        if self.values is None or not self.pos.numel() or layer not in self.layers:
            return ve
        rows = self.values[:, self.layers.index(layer)].to(ve.dtype)
        return ve.index_put((torch.zeros_like(self.pos), self.pos), rows)


def assemble(history: torch.Tensor, tail: torch.Tensor, wc: WorkingContext, gists: Gists,
             placeholder: int) -> tuple[torch.Tensor, GistStage]:
    """(idx [1, S], the input stage that puts the gists in) for the working context followed by the tail
    (`wc.used()` + the tail's positions)."""
    bs = wc.block_size
    ids: list[torch.Tensor] = []
    positions: list[int] = []
    vectors: list[torch.Tensor] = []
    rows: list[torch.Tensor] = []  # value embeddings, when the gists carry them
    spans: list[tuple[int, int]] = []
    at = 0
    done_groups: set[int] = set()
    ph = history.new_full((1,), placeholder)
    lead_block, lead = wc.lead_block(), wc.lead()
    for b, lod in enumerate(wc.lod):
        if lod == RAW:
            ids.append(history[b * bs:(b + 1) * bs])
            at += bs
        elif lod == GIST:
            ids.append(ph)
            positions.append(at)
            vectors.append(gists.level1[b])
            spans.append((b * bs, (b + 1) * bs))
            if gists.values1 is not None:
                rows.append(gists.values1[b])
            at += 1
        elif lod == GIST2 and b // bs not in done_groups:
            done_groups.add(b // bs)
            ids.append(ph)
            positions.append(at)
            vectors.append(gists.level2[b // bs])
            spans.append((b // bs * bs * bs, (b // bs + 1) * bs * bs))
            if gists.values2 is not None:
                rows.append(gists.values2[b // bs])
            at += 1
        elif lod not in (DROPPED, GIST2):
            raise ValueError(f"unknown LOD {lod}")
        if b == lead_block and lead:  # the block's newest tokens, raw, after its gist: the budget's spare room
            ids.append(history[(b + 1) * bs - lead:(b + 1) * bs])
            at += lead
    ids.append(tail)
    idx = torch.cat(ids)[None]
    pos = torch.tensor(positions, dtype=torch.long, device=idx.device)
    vec = torch.stack(vectors) if vectors else gists.level1.new_zeros(0, gists.level1.size(1))
    values = torch.stack(rows) if rows and len(rows) == len(vectors) else None
    return idx, GistStage(pos, vec, values, gists.value_layers if values is not None else (), tuple(spans))


def tail_targets(idx: torch.Tensor, tail: torch.Tensor) -> torch.Tensor:
    """Targets for the tail's tokens only: position S-R-1 predicts tail[0], ..., S-2 predicts tail[-1]."""
    y = torch.full_like(idx, -1)
    R, S = tail.numel(), idx.size(1)
    y[0, S - R - 1:S - 1] = tail
    return y


def context_loss(model, history: torch.Tensor, tail: torch.Tensor, wc: WorkingContext, gists: Gists,
                 placeholder: int) -> torch.Tensor:
    """Mean next-token loss over the tail given the working context."""
    idx, st = assemble(history, tail, wc, gists, placeholder)
    return model(idx, tail_targets(idx, tail), input_stage=st)


def context_losses(model, history: torch.Tensor, tail: torch.Tensor, wc: WorkingContext, gists: Gists,
                   placeholder: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean loss over every raw token of the working context, mean loss over the tail) in one forward.

    Training uses the first: every raw token that follows gists is a lesson in reading them (the raw blocks
    nearest the gists see little raw context, so the gists matter most there), several times the tail's
    signal for the same forward. The tail's loss is what is compared with truncation."""
    idx, st = assemble(history, tail, wc, gists, placeholder)
    y = torch.full_like(idx, -1)
    y[0, :-1] = idx[0, 1:]
    if st.pos.numel():
        y[0, st.pos - 1] = -1  # a gist position is an input, never a target
    y[0, -1] = -1
    losses = model(idx, y, loss_reduction="none", input_stage=st).view(-1)
    R, S = tail.numel(), idx.size(1)
    wide = losses.sum() / (y != -1).sum().clamp(min=1)
    return wide, losses[S - R - 1:S - 1].mean()


def distill_loss(model, history: torch.Tensor, tail: torch.Tensor, wc: WorkingContext, gists: Gists,
                 placeholder: int, block: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(distillation, bag loss) from one student forward. The distillation is the ΔNLL objective: KL(teacher ‖
    student) over every raw-token prediction after `block`, where the student sees `wc` (block `block` as its
    gist) and the teacher the same context with that block raw (no gradient). The gist is pushed to say what the
    block would have told the model, and the model to read it. The bag loss is bag_loss on the student's
    gists. `wc` must leave room for the block's raw tokens within the budget."""
    teacher = copy.deepcopy(wc)
    teacher.expand(block)
    idx_s, st_s = assemble(history, tail, wc, gists, placeholder)
    with torch.no_grad():
        idx_t, st_t = assemble(history, tail, teacher, gists.detached(), placeholder)
        t_logits = model(idx_t, input_stage=st_t)[0]
    s_logits = model(idx_s, input_stage=st_s)[0]
    bag = bag_loss(s_logits, st_s, history)
    rows_s, rows_t = distill_rows(wc, block, st_s.pos, idx_s.size(1))
    if not rows_s.numel():
        return s_logits.sum() * 0, bag
    log_t = t_logits[rows_t].log_softmax(-1)
    log_s = s_logits[rows_s].float().log_softmax(-1)
    return (log_t.exp() * (log_t - log_s)).sum(-1).mean(), bag


def bag_loss(logits: torch.Tensor, st: GistStage, history: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the model's output at each gist's position [S, V] against the distribution of the tokens
    its span holds (a block's, or a level-2 gist's blocks'): the model learns to spell out which tokens a gist
    stands for, the unigram memory of far context that a later position can then attend to."""
    if not st.pos.numel():
        return logits.sum() * 0
    V = logits.size(-1)
    bags = torch.stack([torch.bincount(history[a:b], minlength=V)[:V] for a, b in st.spans]).float()
    bags = bags / bags.sum(-1, keepdim=True)
    return -(bags * logits[st.pos].float().log_softmax(-1)).sum(-1).mean()


def distill_rows(wc: WorkingContext, block: int, gist_positions: torch.Tensor,
                 length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(student rows, teacher rows) predicting the same raw token after `block`: the teacher's context is the
    student's with that block's gist replaced by its block_size raw tokens, so later rows sit block_size − 1
    further on. Rows whose next input is a gist are left out (a gist is never a target)."""
    at = wc.position(block)
    gist_at = set(gist_positions.tolist())
    rows = torch.tensor([q for q in range(at + 1, length - 1) if q + 1 not in gist_at], dtype=torch.long,
                        device=gist_positions.device)
    return rows, rows + wc.block_size - 1


def window_loss(model, tokens: torch.Tensor) -> torch.Tensor:
    """Mean next-token loss over every token of `tokens` seen raw (the truncated view of a window)."""
    idx = tokens[None]
    y = torch.full_like(idx, -1)
    y[0, :-1] = idx[0, 1:]
    return model(idx, y)


def raw_loss(model, tokens: torch.Tensor, tail_len: int) -> torch.Tensor:
    """Mean next-token loss over the last `tail_len` tokens given all of `tokens` raw (truncation: the newest
    budget tokens; full: the whole document): the same targets and positions count as in context_loss."""
    idx = tokens[None]
    return model(idx, tail_targets(idx, tokens[-tail_len:]))


def focus_vector(model, recent: torch.Tensor, block_size: int) -> torch.Tensor:
    """LensNet's query: the mean normed embedding of the newest tokens before what is predicted."""
    return rms(model.transformer.wte(recent[-block_size:])).mean(0)


def overlap(history: torch.Tensor, block_size: int, recent: int = 64) -> torch.Tensor:
    """[n_blocks]: the fraction of the distinct token ids of the newest `recent` history tokens that occur in
    each block (a recurring name is what seeing a span raw lets the model copy)."""
    n = history.numel() // block_size
    want = torch.unique(history[-recent:])
    blocks = history[:n * block_size].view(n, block_size)
    hit = (blocks[:, :, None] == want[None, None, :]).any(1)  # [n, distinct recent ids]
    return hit.float().mean(1)


def lens_scores(lensnet: LensNet, gists: Gists, focus: torch.Tensor, wc: WorkingContext,
                lexical: torch.Tensor) -> torch.Tensor:
    """LensNet's score for every block (a level-2 member is scored by its group's gist); `lexical` is
    `overlap(history, ...)`."""
    n = wc.n_blocks
    feats = gists.level1.clone()
    for b in range(n):
        if wc.lod[b] == GIST2 and b // wc.block_size < gists.level2.size(0):
            feats[b] = gists.level2[b // wc.block_size]
    distance = torch.arange(n, 0, -1, dtype=feats.dtype, device=feats.device) / 32.0
    return lensnet(feats, focus, distance, lexical.to(feats.dtype))
