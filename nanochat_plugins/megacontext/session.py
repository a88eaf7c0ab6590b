"""A MegaContext checkpoint at inference: read a long document into a working context under the budget,
score next-token loss three ways (MegaContext, plain truncation, full context), and generate text.
Used by the bench (bench/megacontext_bench.py) and by `nanochat-cli megacontext chat`."""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from engine.checkpoint import load_extra_state
from engine.engine import KVCache
from engine.errors import EngineError
from engine.extensions import extension_file
from engine.inference_load import load_model, resolve_checkpoint
from nanochat_plugins.megacontext.config import MegaContextConfig
from nanochat_plugins.megacontext.context import (
    assemble,
    context_loss,
    focus_vector,
    lens_scores,
    make_gists,
    overlap,
    raw_loss,
)
from nanochat_plugins.megacontext.nets import GistNet, LensNet
from nanochat_plugins.megacontext.tree import DROPPED, LOD_LEGEND, RAW, Action, WorkingContext, allocate

ALLOC_PASSES = 3  # allocator passes when a document is read: the focus settles in a few


@dataclass
class Reading:
    """One document read into a working context: what the panels and the chat show."""

    wc: WorkingContext
    actions: list[Action] = field(default_factory=list)
    alloc_ms: float = 0.0


class MegaContextModel:
    def __init__(self, model: Any, tokenizer: Any, meta: dict[str, Any], ckpt_dir: Path, step: int,
                 device: str = "cpu") -> None:
        """A loaded checkpoint (engine.inference_load.load_model) plus its MegaContext settings and weights;
        raises EngineError when the checkpoint was not trained with MegaContext."""
        self.model, self.tokenizer = model, tokenizer
        settings = (meta.get("user_config") or {}).get("megacontext")
        path = extension_file(ckpt_dir, "megacontext", step)
        if not isinstance(settings, dict) or not settings.get("enabled") or not path.exists():
            raise EngineError(f"{ckpt_dir}: not a MegaContext checkpoint (no megacontext settings or {path.name}): "
                              "train one with megacontext.enabled=true (prefab cpu-tiny-mc)")
        # a checkpoint from before gist_values (extension meta version < 4) trained its gists with the
        # placeholder's value embeddings
        ext_meta = (meta.get("extensions") or {}).get("megacontext") or {}
        self.cfg = MegaContextConfig(**{**({} if ext_meta.get("version", 0) >= 4 else {"gist_values": False}),
                                        **settings})
        self.max_raw: int | None = self.cfg.raw_blocks  # the cap on raw history blocks (None: what fits)
        # what training measured at this checkpoint: tail loss by raw blocks kept, and the best count
        self.calibration: list[float] = list(ext_meta.get("raw_blocks_loss") or [])
        self.best_raw: int | None = ext_meta.get("raw_blocks_best")
        C = self.model.config.n_embd
        self.gistnet = GistNet(C, self.cfg.block_size, self.cfg.gistnet_dim, self.cfg.gistnet_heads).to(device)
        self.lensnet = LensNet(C).to(device)
        state = load_extra_state(path, device, meta)
        try:
            self.gistnet.load_state_dict(state["gistnet"])
            self.lensnet.load_state_dict(state["lensnet"])
        except (RuntimeError, KeyError) as e:
            raise EngineError(f"{path}: GistNet/LensNet weights do not fit this MegaContext version "
                              f"({str(e).splitlines()[0][:120]}): retrain the checkpoint with megacontext on") from None
        self.gistnet.eval()
        self.lensnet.eval()
        self.device = device
        self.placeholder = self.tokenizer.get_bos_token_id()

    @classmethod
    def load(cls, ckpt: str | Path, step: int | None = None, device: str = "cpu") -> MegaContextModel:
        model, tokenizer, meta = load_model(ckpt, step, device)
        ckpt_dir, step = resolve_checkpoint(ckpt, step)
        return cls(model, tokenizer, meta, ckpt_dir, step, device)

    def split(self, tokens: torch.Tensor, tail: int) -> tuple[torch.Tensor, torch.Tensor]:
        n_blocks = (tokens.numel() - tail) // self.cfg.block_size
        start = tokens.numel() - tail - n_blocks * self.cfg.block_size
        return tokens[start:tokens.numel() - tail], tokens[tokens.numel() - tail:]

    @torch.no_grad()
    def read(self, history: torch.Tensor, tail_len: int, budget: int | None = None,
             fill: bool | None = None, gists: Any = None) -> tuple[Reading, Any]:
        """Fit the history into the budget: recency prior, then allocator passes on LensNet's scores. `fill`
        (default: the checkpoint's setting) gives the spare positions to lead tokens; `gists`, the history's
        gists when they are already made."""
        cfg = self.cfg
        if gists is None:
            gists = make_gists(self.model, self.gistnet, history, cfg.block_size, cfg.levels, cfg.states_chunk(),
                               values=cfg.gist_values)
        wc = WorkingContext(history.numel() // cfg.block_size, cfg.block_size, tail_len, budget or cfg.budget,
                            cfg.levels, fill=cfg.fill if fill is None else fill, max_raw=self.max_raw)
        wc.fit_recent()
        focus = focus_vector(self.model, history, cfg.block_size)
        reading = Reading(wc)
        t0 = time.perf_counter()
        lexical = overlap(history, cfg.block_size)
        for _ in range(ALLOC_PASSES):
            scores = lens_scores(self.lensnet, gists, focus, wc, lexical).float().tolist()
            acts = allocate(wc, scores, cfg.expand_threshold, cfg.collapse_threshold,
                            margin=self.lensnet.margin(cfg.expand_threshold - cfg.collapse_threshold))
            reading.actions += acts
            if not acts:
                break
        reading.alloc_ms = 1000 * (time.perf_counter() - t0)
        return reading, gists

    @torch.no_grad()
    def losses(self, doc: torch.Tensor, tail_len: int, budget: int,
               other: torch.Tensor | None = None) -> dict[str, Any]:
        """Mean loss over the document's last `tail_len` tokens: MegaContext, truncation and full context, and
        two controls on what the gists carry: the same working context with its gist slots removed
        (`no_gists`), and, given `other` (another document as long), with that document's gists in the same
        slots (`other_gists`). If MC beats truncation through what its gists say, both controls lose."""
        doc = doc.to(self.device)
        history, tail = self.split(doc, tail_len)
        reading, gists = self.read(history, tail_len, budget)
        wc = reading.wc
        mc = float(context_loss(self.model, history, tail, wc, gists, self.placeholder))
        prior = WorkingContext(wc.n_blocks, self.cfg.block_size, tail_len, budget, self.cfg.levels, fill=wc.fill,
                               max_raw=self.max_raw)
        prior.fit_recent()  # the allocator's starting shape (newest blocks raw, the rest gists), for comparison
        no_alloc = float(context_loss(self.model, history, tail, prior, gists, self.placeholder))
        every = copy.deepcopy(prior)  # no cap on raw blocks: as many as the budget holds
        every.max_raw = None
        every.fit_recent()
        uncapped = float(context_loss(self.model, history, tail, every, gists, self.placeholder))
        bare = copy.deepcopy(wc)
        bare.lod = [lod if lod == RAW else DROPPED for lod in wc.lod]
        out = {"mc": mc, "mc_recency": no_alloc, "mc_uncapped": uncapped, "raw_blocks": wc.resident(),
               "trunc": float(raw_loss(self.model, doc[-budget:], tail_len)),
               "full": float(raw_loss(self.model, doc, tail_len)), "lod": wc.lod_map(), "slots": wc.used(),
               "alloc_ms": reading.alloc_ms, "actions": len(reading.actions),
               "no_gists": float(context_loss(self.model, history, tail, bare, gists, self.placeholder))}
        if other is not None:
            foreign, _ = self.split(other.to(self.device), tail_len)
            swapped = make_gists(self.model, self.gistnet, foreign, self.cfg.block_size, self.cfg.levels,
                                 self.cfg.states_chunk(), values=self.cfg.gist_values)
            out["other_gists"] = float(context_loss(self.model, history, tail, wc, swapped, self.placeholder))
            lean = copy.deepcopy(prior)  # one raw block before the tail: the gists are nearly all it has
            lean.keep_newest_raw(1)
            out["lean_own"] = float(context_loss(self.model, history, tail, lean, gists, self.placeholder))
            out["lean_other"] = float(context_loss(self.model, history, tail, lean, swapped, self.placeholder))
        return out

    @torch.no_grad()
    def generate(self, ids: list[int], max_tokens: int, temperature: float = 0.0, top_k: int | None = None,
                 seed: int = 42, cache: bool = True) -> Iterator[int]:
        """Tokens continuing `ids` (a long document and a question, say), the ids read through the working
        context: whole blocks of the history as the allocator places them, the newest tokens (the partial last
        block, then what is generated) raw. The context is re-read every lens_refresh tokens; `self.reading`
        holds the latest reading (its LOD map is what the chat shows).

        With `cache`, the working context is prefilled into a KV cache once and each new token is decoded
        against it; the cache is rebuilt only when the working context changes (the allocator moved a block,
        or the raw tail outgrew the budget). `self.rebuilds` counts the prefills."""
        cfg = self.cfg
        cut = max(0, len(ids) - cfg.block_size) // cfg.block_size * cfg.block_size
        history = torch.tensor(ids[:cut], dtype=torch.long, device=self.device)
        recent = list(ids[cut:])
        gen = torch.Generator(device=self.device).manual_seed(seed)
        gists = None
        self.reading = None
        self.rebuilds = 0
        kv: KVCache | None = None
        cached: tuple[list[int], int, int] | None = None  # (LOD, tail start, tail length) in the cache
        out: list[int] = []
        for i in range(max_tokens):
            tail = torch.tensor(recent + out, dtype=torch.long, device=self.device)
            if self.reading is None or i % cfg.lens_refresh == 0:
                # whole blocks only: a lead would shrink with every token the tail grows by, and the KV cache
                # would be rebuilt each time
                self.reading, gists = self.read(history, min(tail.numel(), cfg.budget - 2), fill=False,
                                                gists=gists)  # the history does not change: nor do its gists
            wc = self.reading.wc
            start = max(0, tail.numel() - (cfg.budget - 2))  # the raw tail alone fills the budget: keep its newest
            tail = tail[start:]
            wc.tail = tail.numel()
            while wc.slots() > wc.budget:  # a growing tail takes room from the lowest-value raw blocks
                allocate(wc, [0.0] * wc.n_blocks, float("inf"), float("-inf"), max_actions=0)
            if cache and kv is not None and cached == (wc.lod, start, tail.numel() - 1):
                logits = self.model(tail[None, -1:], kv_cache=kv)[0, -1].float()  # one decode step
            else:
                idx, st = assemble(history, tail, wc, gists, self.placeholder)
                if cache:
                    kv = self._cache(wc.budget + 1)
                    self.rebuilds += 1
                logits = self.model(idx, kv_cache=kv, input_stage=st)[0, -1].float()
            cached = (list(wc.lod), start, tail.numel())
            if temperature <= 0:
                token = int(logits.argmax())
            else:
                if top_k is not None:
                    kth = torch.topk(logits, min(top_k, logits.numel())).values[-1]
                    logits = logits.masked_fill(logits < kth, float("-inf"))
                token = int(torch.multinomial((logits / temperature).softmax(-1), 1, generator=gen))
            out.append(token)
            yield token

    def _cache(self, positions: int) -> KVCache:
        c = self.model.config
        param = next(self.model.parameters())
        return KVCache(1, c.n_kv_head, positions, c.n_embd // c.n_head, c.n_layer, device=param.device,
                       dtype=param.dtype)

    def continue_text(self, document: str, prompt: str = "", max_tokens: int = 64) -> tuple[str, Reading]:
        """Greedy continuation of `document` + `prompt` (stops at BOS); the text and the last reading."""
        ids = self.tokenizer.encode(document + prompt, prepend=self.placeholder)
        out = []
        for token in self.generate(ids, max_tokens):
            if token == self.placeholder:
                break
            out.append(token)
        return self.tokenizer.decode(out), self.reading

    def status(self) -> str:
        """The latest reading as text: the LOD map (one character per block) and what it holds."""
        r = getattr(self, "reading", None)
        if r is None:
            return ""
        wc = r.wc
        return (f"MegaContext {wc.used()}/{wc.budget} positions, {wc.resident()} of {wc.n_blocks} history blocks "
                f"resident, {len(r.actions)} allocator actions\n{wc.lod_map()}\n{LOD_LEGEND}")
