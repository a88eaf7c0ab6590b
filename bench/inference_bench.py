"""Inference speed: KV-cache decoding vs recomputing the whole sequence each step, and time to first token.

A depth-4 GPT (config_from_depth(4, 64, 64, 1024, 8192)) with fresh weights; speed does not depend on
the weights. The tokenizer is trained on the local Python stdlib with 8192 ordinary tokens, so its
special tokens lie past the model's vocab and greedy decoding never stops early.

    .venv/bin/python bench/inference_bench.py [--new-tokens 256] [--prompt-tokens 256] [--device cpu]
        [--threads N] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import sysconfig
import time
from pathlib import Path

import torch

from engine.engine import Engine
from engine.gpt import GPT, config_from_depth
from engine.tokenizer import SPECIAL_TOKENS, Tokenizer, limit_chars

VOCAB = 8192


def stdlib_text() -> list[str]:
    files = sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py"))
    return list(limit_chars((f.read_text(errors="replace") for f in files), 5_000_000))


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def cached_decode(engine: Engine, prompt: list[int], n: int, device: torch.device) -> tuple[list[int], float, float]:
    """Greedy tokens, tokens/s over all n tokens (prefill included) and over the n-1 decode steps."""
    out, t_first = [], 0.0
    sync(device)
    t0 = time.perf_counter()
    for column, _ in engine.generate(prompt, max_tokens=n, temperature=0.0):
        out.append(column[0])
        if len(out) == 1:
            t_first = time.perf_counter()
    sync(device)
    t1 = time.perf_counter()
    return out, len(out) / (t1 - t0), (len(out) - 1) / (t1 - t_first)


@torch.inference_mode()
def full_recompute(model: GPT, prompt: list[int], n: int, device: torch.device) -> tuple[list[int], float]:
    """Greedy tokens without a cache: each step runs the whole sequence so far through the model."""
    ids = torch.tensor([prompt], dtype=torch.long, device=device)
    sync(device)
    t0 = time.perf_counter()
    for _ in range(n):
        nxt = model(ids)[:, -1].argmax(-1, keepdim=True)
        ids = torch.cat([ids, nxt], dim=1)
    sync(device)
    return ids[0, len(prompt):].tolist(), n / (time.perf_counter() - t0)


def time_to_first_token(engine: Engine, prompt: list[int], device: torch.device, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        sync(device)
        t0 = time.perf_counter()
        next(iter(engine.generate(prompt, max_tokens=1, temperature=0.0)))
        sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--new-tokens", type=int, default=256)
    ap.add_argument("--short-prompt", type=int, default=16, help="prompt tokens for the decode comparison")
    ap.add_argument("--prompt-tokens", type=int, default=256, help="prompt tokens for time to first token")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    ap.add_argument("--repeats", type=int, default=3, help="runs of each decode method; the best is reported")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    text = stdlib_text()
    tok = Tokenizer.train_from_iterator(text, VOCAB + len(SPECIAL_TOKENS))
    torch.manual_seed(0)
    model = GPT(config_from_depth(4, 64, 64, 1024, VOCAB)).to(device)
    model.init_weights()
    model.eval()
    engine = Engine(model, tok)
    ids = tok.encode(text[0])
    short, long = ids[:args.short_prompt], ids[:args.prompt_tokens]
    print(f"model: depth 4, n_embd {model.config.n_embd}, {model.num_params() / 1e6:.1f}M params, vocab {VOCAB}; "
          f"device {device}, torch threads {torch.get_num_threads()}")

    cached_decode(engine, short, 8, device)  # warm-up
    full_recompute(model, short, 8, device)
    # best of several interleaved runs: on a shared machine other processes only ever slow a run down
    runs = [(cached_decode(engine, short, args.new_tokens, device), full_recompute(model, short, args.new_tokens,
                                                                                  device))
            for _ in range(args.repeats)]
    cached, cached_tps, decode_tps = max((r[0] for r in runs), key=lambda c: c[1])
    recomputed, full_tps = max((r[1] for r in runs), key=lambda f: f[1])
    ttft = time_to_first_token(engine, long, device)

    n = args.new_tokens
    print(f"{n} new tokens after a {len(short)}-token prompt (greedy, best of {args.repeats}):")
    print(f"  KV cache:       {cached_tps:8.1f} tok/s  ({decode_tps:.1f} tok/s over the decode steps alone)")
    print(f"  full recompute: {full_tps:8.1f} tok/s")
    print(f"  speedup:        {cached_tps / full_tps:8.1f}x   same tokens: {cached == recomputed}")
    print(f"time to first token, {len(long)}-token prompt: {ttft * 1000:.1f} ms (median of 5)")


if __name__ == "__main__":
    main()
