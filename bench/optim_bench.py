"""Optimizer step time: one process vs N gloo ranks, and how gradient bucketing changes the cost.

A depth-4 GPT (config_from_depth(4, 64, 64, 256, 8192): dim 256, ~10M params) gets realistic
gradients from one backward pass; then opt.step() is timed alone (the gradients are left in place,
so every timed step does the full work: averaging, AdamW, Muon, gather). Also times the gradient
averaging alone for several bucket caps (a tiny cap = one all_reduce per parameter).

    .venv/bin/python bench/optim_bench.py [--nproc 1 2] [--steps 20] [--threads N]
        [--bucket-mb 0.001 4 16 64]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import tempfile
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from engine.gpt import GPT, config_from_depth
from engine.optim import apply_schedules, build_optimizer

LRS = dict(embedding_lr=0.3, unembedding_lr=0.008, matrix_lr=0.02, scalar_lr=0.5, weight_decay=0.2)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def timed(fn, steps: int) -> str:
    """'median (best)' milliseconds of fn() over `steps` calls after two warm-ups; best resists a busy machine."""
    for _ in range(2):
        fn()
    times = []
    for _ in range(steps):
        if dist.is_initialized():
            dist.barrier()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return f"{1000 * statistics.median(times):.1f} ms (best {1000 * min(times):.1f})"


def worker(rank: int, world: int, port: int, args, out: str) -> None:
    torch.set_num_threads(args.threads)
    if world > 1:
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    torch.manual_seed(0)
    model = GPT(config_from_depth(4, 64, 64, 256, 8192))
    model.init_weights()
    with torch.no_grad():  # non-zero blocks so every gradient is a real one
        for block in model.transformer.h:
            block.attn.c_proj.weight.normal_(std=0.02)
            block.mlp.c_proj.weight.normal_(std=0.02)
    g = torch.Generator().manual_seed(rank)
    x = torch.randint(0, 8192, (2, 256), generator=g)
    model(x, torch.roll(x, -1, 1)).backward()
    lines = [f"world={world} threads/rank={args.threads} params={model.num_params() / 1e6:.2f}M"]
    for cap in args.bucket_mb:
        opt = build_optimizer(model, **LRS, world_size=world)
        opt.bucket_cap_mb = cap
        apply_schedules(opt, 100, 1000)
        step_ms = timed(opt.step, args.steps)
        line = f"  step {step_ms}"
        if world > 1:
            line = f"  bucket_cap={cap:g} MB:" + line
            avg_ms = timed(lambda opt=opt: opt._average_grads(world), args.steps)
            line += (f" | grad averaging alone {avg_ms} | collectives/step: "
                     f"{len(opt.grad_buckets())} all_reduce + 1 all_gather")
        lines.append(line)
        if world == 1:
            break  # no collectives: the cap does not matter
    if rank == 0:
        with open(out, "w") as f:
            f.write("\n".join(lines))
    if world > 1:
        dist.destroy_process_group()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nproc", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=0, help="torch threads per rank (0 = cores / nproc)")
    ap.add_argument("--bucket-mb", type=float, nargs="+", default=[0.001, 4, 16, 64])
    args = ap.parse_args()
    for world in args.nproc:
        run_args = argparse.Namespace(**vars(args))
        run_args.threads = args.threads or max(1, (os.cpu_count() or 1) // world)
        with tempfile.TemporaryDirectory() as d:
            out = os.path.join(d, "result.txt")
            mp.spawn(worker, args=(world, free_port(), run_args, out), nprocs=world, join=True)
            with open(out) as f:
                print(f.read(), flush=True)


if __name__ == "__main__":
    main()
