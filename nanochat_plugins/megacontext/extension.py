"""The engine side of MegaContext: an `engine.extensions.Extension` the engine loads by name from the run
config (`extensions: [{name: megacontext, entry: nanochat_plugins.megacontext.extension:MegaContextExtension}]`).
It imports only the engine and this package, never the app.

Each micro-batch it adds, next to the plain LM loss, the next-token loss of the tail of a long document seen
through a working context of `budget` positions: the newest blocks raw, older ones as GistNet gists, reshaped by
the focus allocator from LensNet's scores. The gradient reaches GistNet through the gists (the ΔNLL objective:
replacing a block by its gist should cost little loss) and teaches the model to read them. Every `lens_refresh`
steps LensNet is fitted to measured ΔNLLs: how much loss expanding each of a few gists actually saves.
"""

from __future__ import annotations

import copy
import random
import time
from typing import Any

import torch
import torch.nn.functional as F

from engine.dataset import iter_texts
from engine.extensions import Extension, ExtensionContext
from nanochat_plugins.megacontext.config import MegaContextConfig
from nanochat_plugins.megacontext.context import (
    Gists,
    context_loss,
    context_losses,
    distill_loss,
    focus_vector,
    lens_scores,
    make_gists,
    overlap,
    raw_loss,
    window_loss,
)
from nanochat_plugins.megacontext.docs import LongDocs
from nanochat_plugins.megacontext.nets import GistNet, LensNet
from nanochat_plugins.megacontext.tree import GIST, RAW, WorkingContext, allocate

LENS_PROBES = 8  # blocks whose raw-vs-gist loss is measured per LensNet refresh
CALIBRATION_DOCS, CALIBRATION_WINDOWS = 24, 4  # training documents, back-to-back windows of each, that raw_blocks
# is measured on at each checkpoint: about a hundred windows, so a layout's mean loss is good to a few thousandths


def telemetry(wc: WorkingContext, before: list[int], actions: list, allocated: list[int] | None = None,
              **extra: Any) -> dict[str, Any]:
    """The `context` event's data for a working context (see docs/protocol.md, plugin kinds). Swaps count the
    allocator's changes from `before` to `allocated` (default: the context's LOD), not raw jitter's."""
    after = wc.lod if allocated is None else allocated
    swapped_in = sum(1 for b, lod in enumerate(after) if lod == RAW and before[b] != RAW)
    swapped_out = sum(1 for b, lod in enumerate(after) if lod != RAW and before[b] == RAW)
    tail_blocks = -(-wc.tail // wc.block_size)
    return {"lod": wc.lod_map(), "block_size": wc.block_size, "budget": wc.budget, "slots": wc.used(),
            "resident": wc.resident() + tail_blocks, "swapped": wc.n_blocks - wc.resident(),
            "swap_in": swapped_in, "swap_out": swapped_out, "actions": [a.to_dict() for a in actions], **extra}


class MegaContextExtension(Extension):
    name = "megacontext"

    def __init__(self, settings: dict[str, Any], ctx: ExtensionContext) -> None:
        super().__init__(settings, ctx)
        self.cfg = MegaContextConfig(**settings)
        C = ctx.model.config.n_embd
        self.gistnet = GistNet(C, self.cfg.block_size, self.cfg.gistnet_dim, self.cfg.gistnet_heads)
        self.lensnet = LensNet(C)
        self.placeholder = ctx.tokenizer.get_bos_token_id()
        bos = self.placeholder
        self.docs = LongDocs(lambda: iter_texts(ctx.data_dir, "train", ctx.rank, ctx.world_size),
                             lambda text: ctx.tokenizer.encode(text, prepend=bos), self.cfg.doc_tokens,
                             seed=ctx.seed + ctx.rank)
        self.rng = random.Random(ctx.seed)
        self.step = 0
        self.last: dict[str, Any] = {}
        # its own reader of the training split: measuring layouts must not move the training sampler
        self.calibration_docs = LongDocs(lambda: iter_texts(ctx.data_dir, "train"),
                                         lambda text: ctx.tokenizer.encode(text, prepend=bos), self.cfg.doc_tokens,
                                         keep=CALIBRATION_DOCS)
        self.raw_blocks_best: int | None = None
        self.calibration: list[float] = []

    def modules(self) -> dict[str, torch.nn.Module]:
        return {"gistnet": self.gistnet, "lensnet": self.lensnet}

    def param_groups(self) -> list[dict[str, Any]]:
        params = list(self.gistnet.parameters()) + list(self.lensnet.parameters())
        return [{"name": "megacontext", "params": params, "lr": self.cfg.lr, "betas": (0.9, 0.95)}]

    def meta(self) -> dict[str, Any]:
        self.calibrate()
        return {"version": 4, "gistnet_params": sum(p.numel() for p in self.gistnet.parameters()),
                "lensnet_params": sum(p.numel() for p in self.lensnet.parameters()),
                "raw_blocks_best": self.raw_blocks_best, "raw_blocks_loss": [round(v, 4) for v in self.calibration]}

    @torch.no_grad()
    def calibrate(self) -> None:
        """Measure, on windows of training documents, the tail loss of the recency layout keeping 0, 1, ... raw
        history blocks (up to what the budget holds, the rest gists), and record the best count
        (`raw_blocks_best`): a guide for setting `raw_blocks`, not applied by itself (on about a hundred windows
        the layouts differ by less than the noise, and a count picked there need not hold on other documents)."""
        cfg, model = self.cfg, self.ctx.model
        windows = self.calibration_docs.windows(CALIBRATION_DOCS, CALIBRATION_WINDOWS)
        totals: list[float] = []
        for _, doc in windows:
            history, tail = self.split(doc.to(self.ctx.device))
            gists = make_gists(model, self.gistnet, history, cfg.block_size, cfg.levels, cfg.states_chunk(),
                               values=cfg.gist_values)
            wc = WorkingContext(history.numel() // cfg.block_size, cfg.block_size, cfg.tail_tokens, cfg.budget,
                                cfg.levels, fill=cfg.fill)
            wc.fit_recent()
            losses = []
            for keep in range(wc.resident() + 1):
                probe = copy.deepcopy(wc)
                probe.keep_newest_raw(keep)
                losses.append(float(context_loss(model, history, tail, probe, gists, self.placeholder)))
            totals = losses if not totals else [a + b for a, b in zip(totals, losses, strict=True)]
        if totals:
            self.calibration = [t / len(windows) for t in totals]
            self.raw_blocks_best = min(range(len(totals)), key=totals.__getitem__)

    def split(self, doc: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(history of whole blocks, tail) of a document window."""
        cfg = self.cfg
        n_blocks = (doc.numel() - cfg.tail_tokens) // cfg.block_size
        start = doc.numel() - cfg.tail_tokens - n_blocks * cfg.block_size
        return doc[start:-cfg.tail_tokens], doc[-cfg.tail_tokens:]

    def train_loss(self, x, y, base):
        loss = base(x, y)
        cfg, model = self.cfg, self.ctx.model
        refresh = self.step % cfg.lens_refresh == 0
        mc_total = 0.0
        for _ in range(cfg.docs_per_step):
            doc = self.docs.sample().to(self.ctx.device)
            history, tail = self.split(doc)
            gists = make_gists(model, self.gistnet, history, cfg.block_size, cfg.levels, cfg.states_chunk(),
                               cfg.states_grad(), cfg.gist_values)
            wc = WorkingContext(history.numel() // cfg.block_size, cfg.block_size, cfg.tail_tokens, cfg.budget,
                                cfg.levels, fill=cfg.fill, max_raw=None if cfg.raw_jitter else cfg.raw_blocks)
            wc.fit_recent()
            before = list(wc.lod)
            t0 = time.perf_counter()
            with torch.no_grad():
                focus = focus_vector(model, history, cfg.block_size)
                lexical = overlap(history, cfg.block_size)
                scores = lens_scores(self.lensnet, gists, focus, wc, lexical).float().tolist()
            actions = allocate(wc, scores, cfg.expand_threshold, cfg.collapse_threshold,
                               margin=self.lensnet.margin(cfg.expand_threshold - cfg.collapse_threshold))
            alloc_ms = 1000 * (time.perf_counter() - t0)
            allocated = list(wc.lod)
            if cfg.raw_jitter:
                wc.keep_newest_raw(self.rng.randint(0, wc.resident()))
            wide, mc = context_losses(model, history, tail, wc, gists, self.placeholder)
            mc_total = mc_total + wide
            if cfg.distill_weight or cfg.bag_weight:
                kl, bag = self._distill(history, tail, wc, gists)
                mc_total = mc_total + cfg.distill_weight * kl + cfg.bag_weight * bag
            if cfg.truncation_weight:
                mc_total = mc_total + cfg.truncation_weight * window_loss(model, doc[-cfg.budget:])
            extra: dict[str, Any] = {"mc_loss": float(mc.detach()), "alloc_ms": alloc_ms}
            if refresh:
                lens_loss, probes = self._fit_lens(history, tail, wc, gists, focus, lexical, scores,
                                                    float(mc.detach()))
                loss = loss + lens_loss / cfg.docs_per_step
                with torch.no_grad():
                    extra["full_loss"] = float(raw_loss(model, doc, cfg.tail_tokens))
                    extra["trunc_loss"] = float(raw_loss(model, doc[-cfg.budget:], cfg.tail_tokens))
                extra["delta_nll"] = extra["mc_loss"] - extra["full_loss"]
                extra["lens_loss"] = float(lens_loss.detach())
                extra["lens_error"] = float(self.lensnet.swap_error)
                extra["probes"] = probes
            self.last = telemetry(wc, before, actions, allocated, **extra)
        return loss + cfg.loss_weight * mc_total / cfg.docs_per_step

    def _distill(self, history, tail, wc: WorkingContext, gists: Gists) -> tuple[torch.Tensor, torch.Tensor]:
        """distill_loss (the distillation and the bag loss) on one random level-1 gist, in a context with room for
        its raw block (the oldest raw block collapsed if need be)."""
        student = copy.deepcopy(wc)
        student.fill = False  # the teacher's expanded block takes the spare room: no lead, so the rows align
        if student.slots() + student.block_size - 1 > student.budget:
            raw = [b for b, lod in enumerate(student.lod) if lod == RAW]
            if raw:
                student.collapse(raw[0])
        candidates = [b for b, lod in enumerate(student.lod) if lod == GIST]
        if not candidates or student.slots() + student.block_size - 1 > student.budget:
            zero = torch.zeros((), device=self.ctx.device)
            return zero, zero
        block = self.rng.choice(candidates)
        return distill_loss(self.ctx.model, history, tail, student, gists, self.placeholder, block)

    def _fit_lens(self, history, tail, wc, gists, focus, lexical, scores: list[float], base_loss: float):
        """Measure what seeing a few blocks raw saves (nats over the tail) and fit LensNet's scores to it, where
        the allocator decides: a raw block it could swap out is collapsed (its score should be the loss that
        costs); a gist it could swap in is swapped for the raw block(s) the allocator would give up, inside the
        budget (the score difference should be the swap's gain; a probe over the budget would push the oldest
        positions out of the model's attention window and measure that instead). Of the gists probed, a third
        are LensNet's own favourites (on-policy: its overconfident scores get corrected, and its tracked error
        covers the swaps it would make) and a third share the most ids with the recent tokens."""
        if wc.fill:  # probes compare whole-block contexts: a lead would give back most of what a collapse frees
            wc = copy.deepcopy(wc)
            wc.fill = False
            with torch.no_grad():
                base_loss = float(context_loss(self.ctx.model, history, tail, wc, gists, self.placeholder))
        raws = [b for b, lod in enumerate(wc.lod) if lod == RAW]
        gist_blocks = [b for b, lod in enumerate(wc.lod) if lod > RAW]
        picks = self.rng.sample(raws, min(len(raws), LENS_PROBES // 3))
        n_gist = min(len(gist_blocks), LENS_PROBES - len(picks))
        # a third the gists LensNet itself rates best (the ones the allocator would swap in: where an
        # overconfident score costs loss, so it must be measured), a third the best by id overlap, the rest random
        top = sorted(gist_blocks, key=lambda b: -scores[b])[:n_gist // 3]
        top += sorted((b for b in gist_blocks if b not in top), key=lambda b: -float(lexical[b]))[:n_gist // 3]
        rest = [b for b in gist_blocks if b not in top]
        swaps = top + self.rng.sample(rest, min(len(rest), n_gist - len(top)))
        if not picks and not swaps:
            return torch.zeros((), device=self.ctx.device), []
        model, R = self.ctx.model, tail.numel()
        collapsed, gains, given = [], [], []
        with torch.no_grad():
            for b in picks:
                probe = copy.deepcopy(wc)
                probe.collapse(b)
                collapsed.append(R * (float(context_loss(model, history, tail, probe, gists, self.placeholder))
                                      - base_loss))
            for b in swaps:
                probe = copy.deepcopy(wc)
                while probe.lod[b] != RAW:  # a level-2 member: down to its own raw block
                    probe.expand(b)
                out = []
                while probe.slots() > probe.budget:  # make room as the allocator would: lowest-scored raw first
                    victim = min((v for v, lod in enumerate(probe.lod) if lod == RAW and v != b),
                                 key=lambda v: scores[v], default=None)
                    if victim is None:
                        break
                    probe.collapse(victim)
                    out.append(victim)
                given.append(out)
                gains.append(R * (base_loss - float(context_loss(model, history, tail, probe, gists,
                                                                   self.placeholder))))
        pred = lens_scores(self.lensnet, gists.detached(), focus.detach(), wc, lexical)
        terms = []
        if picks:
            terms.append(F.mse_loss(pred[picks], torch.tensor(collapsed, dtype=pred.dtype, device=pred.device)))
        if swaps:
            diff = torch.stack([pred[b] - pred[out].sum() for b, out in zip(swaps, given, strict=True)])
            measured = torch.tensor(gains, dtype=pred.dtype, device=pred.device)
            self.lensnet.track_error(diff.detach(), measured)
            terms.append(F.mse_loss(diff, measured))
        probes = ([{"block": b, "saved": round(v, 4)} for b, v in zip(picks, collapsed, strict=True)]
                  + [{"block": b, "saved": round(v, 4), "swap_out": out}
                     for b, v, out in zip(swaps, gains, given, strict=True)])
        return sum(terms) / len(terms), probes

    def after_step(self, step: int) -> None:
        self.step = step
        if self.last:
            self.emit("context", self.last, step)

