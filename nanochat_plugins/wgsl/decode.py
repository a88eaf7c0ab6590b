"""Writing shaders with a trained GPT: greedy, beam search and sampling, all with the engine's KV cache.

Decoding is constrained to the shader side of the joint vocabulary (WGSL tokens and <|wgsl_end|>): after
<|wgsl_start|> nothing else is a legal continuation, so the model's mass on other ids is dropped.
Greedy is beam search with one beam.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from engine.engine import KVCache
from nanochat_plugins.wgsl.errors import WgslError
from nanochat_plugins.wgsl.joint import WGSL_END, JointTokenizer


@dataclass
class Candidate:
    ids: list[int]  # generated ids (without the prompt and <|wgsl_end|>)
    logprob: float  # sum over the generated ids (and the end)
    finished: bool  # it wrote <|wgsl_end|> before the token limit

    @property
    def score(self) -> float:
        """Mean log-probability per token: long and short shaders compare fairly."""
        return self.logprob / max(1, len(self.ids) + self.finished)


class ShaderModel:
    """A GPT and its joint tokenizer, ready to write shaders for prompts."""

    def __init__(self, model: Any, tok: JointTokenizer, meta: dict | None = None):
        self.model, self.tok, self.meta = model.eval(), tok, meta or {}
        self.device = next(model.parameters()).device
        self.end = tok.special(WGSL_END)
        allowed = torch.full((model.config.vocab_size,), float("-inf"))
        allowed[tok.wgsl_offset:tok.special_offset] = 0.0
        allowed[self.end] = 0.0
        self.allowed = allowed.to(self.device)

    @classmethod
    def load(cls, checkpoint: str | Path, step: int | None = None, device: str = "cpu") -> ShaderModel:
        """A checkpoint written by a WGSL training run (its meta names the joint tokenizer's folder)."""
        from engine.checkpoint import load_meta, load_model_state, meta_file
        from engine.inference_load import build_model, model_config_from_meta, resolve_checkpoint

        ckpt_dir, step = resolve_checkpoint(checkpoint, step)
        meta = load_meta(ckpt_dir, step)
        tok_dir = Path(str(meta.get("tokenizer_dir") or ""))
        if not (tok_dir / "joint.json").is_file():
            raise WgslError(f"{meta_file(ckpt_dir, step)}: not a WGSL checkpoint (its tokenizer folder {tok_dir} has "
                            "no joint.json): train one with `nanochat-cli wgsl train`")
        tok = JointTokenizer.load(tok_dir)
        if meta.get("tokenizer_hash") not in (None, tok.fingerprint):
            raise WgslError(f"{tok_dir}: tokenizer changed since {ckpt_dir} was trained: retrain, or restore it")
        config = model_config_from_meta(meta, meta_file(ckpt_dir, step))
        model = build_model(config, load_model_state(ckpt_dir, step, device, meta), device)
        return cls(model, tok, {**meta, "step": step, "checkpoint": str(ckpt_dir)})

    # ---- decoding

    def _limit(self, prompt_ids: list[int], max_new: int) -> int:
        room = self.model.config.sequence_len - len(prompt_ids)
        if room < 2:
            raise WgslError(f"prompt: {len(prompt_ids)} tokens fill the model's context of "
                            f"{self.model.config.sequence_len}: shorten it")
        return room if max_new <= 0 else min(room, max_new)

    def _prefill(self, prompt_ids: list[int], width: int, limit: int) -> tuple[KVCache, torch.Tensor]:
        c = self.model.config
        param = next(self.model.parameters())
        cache = KVCache(1, c.n_kv_head, len(prompt_ids) + limit, c.n_embd // c.n_head, c.n_layer,
                        device=self.device, dtype=param.dtype)
        x = torch.tensor([prompt_ids], dtype=torch.long, device=self.device)
        logits = self.model(x, kv_cache=cache)[:, -1, :].float()
        if width > 1:
            cache = cache.expand(width)
            logits = logits.expand(width, -1)
        return cache, logits

    def _logprobs(self, logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
        logits = logits[:, :self.allowed.numel()] / max(temperature, 1e-6) + self.allowed
        return torch.log_softmax(logits, dim=-1)

    @torch.inference_mode()
    def beam(self, prompt: str, k: int = 1, max_new: int = 0) -> list[Candidate]:
        """Beam search with `k` beams; the finished candidates (and the unfinished ones if none finished), best
        first by mean log-probability. k=1 is greedy."""
        if k < 1:
            raise WgslError(f"--beam {k}: must be at least 1")
        prompt_ids = self.tok.render_prompt(prompt)
        limit = self._limit(prompt_ids, max_new)
        cache, logits = self._prefill(prompt_ids, 1, limit)
        beams: list[tuple[list[int], float]] = [([], 0.0)]
        done: list[Candidate] = []
        for _ in range(limit):
            logp = self._logprobs(logits) + torch.tensor([s for _, s in beams], device=self.device)[:, None]
            top = torch.topk(logp.view(-1), min(2 * k, logp.numel()))
            vocab = logp.size(1)
            keep: list[tuple[int, list[int], float]] = []
            for score, flat in zip(top.values.tolist(), top.indices.tolist(), strict=True):
                src, token = divmod(flat, vocab)
                if score == float("-inf"):
                    break
                if token == self.end:
                    done.append(Candidate(beams[src][0], score, True))
                else:
                    keep.append((src, beams[src][0] + [token], score))
                if len(keep) == k:
                    break
            if len(done) >= k or not keep:
                break
            idx = torch.tensor([s for s, _, _ in keep], device=self.device)
            cache.kv = cache.kv[:, :, idx]
            if cache.prev_embed is not None:
                cache.prev_embed = cache.prev_embed[idx]
            beams = [(ids, score) for _, ids, score in keep]
            feed = torch.tensor([[ids[-1]] for ids, _ in beams], dtype=torch.long, device=self.device)
            logits = self.model(feed, kv_cache=cache)[:, -1, :].float()
        # finished candidates first (best mean log-probability first), then the beams the limit cut off
        cut = [Candidate(ids, score, False) for ids, score in beams]
        return (sorted(done, key=lambda c: -c.score) + sorted(cut, key=lambda c: -c.score))[:k]

    @torch.inference_mode()
    def sample(self, prompt: str, n: int = 1, temperature: float = 0.8, top_k: int | None = 40, seed: int = 0,
               max_new: int = 0) -> list[Candidate]:
        """`n` shaders sampled at `temperature` from the `top_k` most likely tokens."""
        prompt_ids = self.tok.render_prompt(prompt)
        limit = self._limit(prompt_ids, max_new)
        cache, logits = self._prefill(prompt_ids, n, limit)
        rng = torch.Generator(device=self.device).manual_seed(seed)
        ids: list[list[int]] = [[] for _ in range(n)]
        total = [0.0] * n
        finished = [False] * n
        for _ in range(limit):
            logp = self._logprobs(logits, temperature)
            if top_k is not None and top_k < logp.size(1):
                kth = torch.topk(logp, top_k, dim=-1).values[:, -1:]
                logp = torch.where(logp < kth, torch.full_like(logp, float("-inf")), logp)
            probs = torch.softmax(logp, dim=-1)
            picked = torch.multinomial(probs, 1, generator=rng)[:, 0]
            chosen = logp.gather(1, picked[:, None])[:, 0].tolist()
            for i, token in enumerate(picked.tolist()):
                if finished[i]:
                    continue
                total[i] += chosen[i]
                if token == self.end:
                    finished[i] = True
                else:
                    ids[i].append(token)
            if all(finished):
                break
            logits = self.model(picked[:, None], kv_cache=cache)[:, -1, :].float()
        return [Candidate(ids[i], total[i], finished[i]) for i in range(n)]

    def text(self, c: Candidate) -> str:
        return self.tok.decode_shader(c.ids)
