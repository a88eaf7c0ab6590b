"""A MegaContext checkpoint at inference: read a long document into a working context under the budget,
score next-token loss three ways (MegaContext, plain truncation, full context), and generate text.
Used by the bench (bench/megacontext_bench.py) and by `nanochat-cli megacontext chat`."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from engine.checkpoint import load_extra_state
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
    raw_loss,
    stage,
)
from nanochat_plugins.megacontext.nets import GistNet, LensNet
from nanochat_plugins.megacontext.tree import Action, WorkingContext, allocate

ALLOC_PASSES = 3  # allocator passes when a document is read: the focus settles in a few


@dataclass
class Reading:
    """One document read into a working context: what the panels and the chat show."""

    wc: WorkingContext
    actions: list[Action] = field(default_factory=list)
    alloc_ms: float = 0.0


class MegaContextModel:
    def __init__(self, ckpt: str | Path, step: int | None = None, device: str = "cpu") -> None:
        self.model, self.tokenizer, meta = load_model(ckpt, step, device)
        settings = (meta.get("user_config") or {}).get("megacontext")
        ckpt_dir, step = resolve_checkpoint(ckpt, step)
        path = extension_file(ckpt_dir, "megacontext", step)
        if not isinstance(settings, dict) or not path.exists():
            raise EngineError(f"{ckpt_dir}: not a MegaContext checkpoint (no megacontext settings or {path.name}): "
                              "train one with megacontext.enabled=true (prefab cpu-tiny-mc)")
        self.cfg = MegaContextConfig(**settings)
        C = self.model.config.n_embd
        self.gistnet = GistNet(C, self.cfg.block_size, self.cfg.gistnet_dim, self.cfg.gistnet_heads).to(device)
        self.lensnet = LensNet(C).to(device)
        state = load_extra_state(path, device, meta)
        self.gistnet.load_state_dict(state["gistnet"])
        self.lensnet.load_state_dict(state["lensnet"])
        self.gistnet.eval()
        self.lensnet.eval()
        self.device = device
        self.placeholder = self.tokenizer.get_bos_token_id()

    def split(self, tokens: torch.Tensor, tail: int) -> tuple[torch.Tensor, torch.Tensor]:
        n_blocks = (tokens.numel() - tail) // self.cfg.block_size
        start = tokens.numel() - tail - n_blocks * self.cfg.block_size
        return tokens[start:tokens.numel() - tail], tokens[tokens.numel() - tail:]

    @torch.no_grad()
    def read(self, history: torch.Tensor, tail_len: int, budget: int | None = None) -> tuple[Reading, Any]:
        """Fit the history into the budget: recency prior, then allocator passes on LensNet's scores."""
        cfg = self.cfg
        gists = make_gists(self.model, self.gistnet, history, cfg.block_size, cfg.levels)
        wc = WorkingContext(history.numel() // cfg.block_size, cfg.block_size, tail_len, budget or cfg.budget,
                            cfg.levels)
        wc.fit_recent()
        focus = focus_vector(self.model, history, cfg.block_size)
        reading = Reading(wc)
        t0 = time.perf_counter()
        for _ in range(ALLOC_PASSES):
            scores = lens_scores(self.lensnet, gists, focus, wc).float().tolist()
            acts = allocate(wc, scores, cfg.expand_threshold, cfg.collapse_threshold)
            reading.actions += acts
            if not acts:
                break
        reading.alloc_ms = 1000 * (time.perf_counter() - t0)
        return reading, gists

    @torch.no_grad()
    def losses(self, doc: torch.Tensor, tail_len: int, budget: int) -> dict[str, Any]:
        """Mean loss over the document's last `tail_len` tokens: MegaContext, truncation and full context."""
        doc = doc.to(self.device)
        history, tail = self.split(doc, tail_len)
        reading, gists = self.read(history, tail_len, budget)
        mc = float(context_loss(self.model, history, tail, reading.wc, gists, self.placeholder))
        return {"mc": mc, "trunc": float(raw_loss(self.model, doc[-budget:], tail_len)),
                "full": float(raw_loss(self.model, doc, tail_len)), "lod": reading.wc.lod_map(),
                "slots": reading.wc.slots(), "alloc_ms": reading.alloc_ms, "actions": len(reading.actions)}

    @torch.no_grad()
    def generate(self, document: str, prompt: str, max_tokens: int = 64) -> tuple[str, Reading]:
        """Greedy answer to `prompt` after `document`, the document read through the working context. The
        newest `tail` tokens (the prompt and what is generated) stay raw; the working context is re-read
        every lens_refresh tokens."""
        cfg = self.cfg
        doc = self.tokenizer.encode(document, prepend=self.placeholder)
        ask = self.tokenizer.encode(prompt) if prompt else []
        tail_room = max(cfg.block_size, cfg.budget // 4)
        history_ids, recent = doc, list(ask)
        if len(history_ids) % cfg.block_size:  # the partial last block stays raw, with the prompt
            cut = len(history_ids) - len(history_ids) % cfg.block_size
            history_ids, recent = history_ids[:cut], history_ids[cut:] + recent
        history = torch.tensor(history_ids, dtype=torch.long, device=self.device)
        out: list[int] = []
        reading = None
        gists = None
        for i in range(max_tokens):
            if reading is None or i % cfg.lens_refresh == 0:
                reading, gists = self.read(history, min(tail_room, len(recent) + max_tokens))
            tail = torch.tensor(recent + out, dtype=torch.long, device=self.device)
            reading.wc.tail = tail.numel()
            while reading.wc.slots() > reading.wc.budget:  # a growing tail: give room from the oldest raw block
                if not allocate(reading.wc, [0.0] * reading.wc.n_blocks, 1e9, -1e9, max_actions=1):
                    break
            idx, pos, vec = assemble(history, tail, reading.wc, gists, self.placeholder)
            logits = self.model(idx, input_stage=stage(pos, vec))[0, -1]
            token = int(logits.argmax())
            if token == self.placeholder:
                break
            out.append(token)
        return self.tokenizer.decode(out), reading
