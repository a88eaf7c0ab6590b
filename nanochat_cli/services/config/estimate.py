"""Size, compute, memory, wall time and cost of a run, computed from its config alone.

Mirrors the engine's own rules without importing torch, so every prefab's compatibility matrix shows
instantly: shapes as engine/gpt.py builds them (vocab padded to 64, value embeddings on alternating
layers, tiled window pattern), FLOPs/token as GPT.estimate_flops, steps as engine/train.py's horizon().
tests/test_prefabs_estimate.py checks the counts against the engine's real model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from engine.shapes import config_from_depth, padded_vocab, window_sizes
from engine.shared import PEAK_FLOPS

# --- throughput and price assumptions (change these, not the formulas) ---
# NVIDIA H100 SXM dense BF16 tensor-core peak: the engine's table, which its MFU figures use too.
H100_BF16_PEAK_FLOPS = PEAK_FLOPS["H100"]
# Model FLOPs utilisation assumed for a compiled bf16 nanochat-style run on H100; a guess on the safe side of
# what such runs log. Compare with the `mfu` the engine prints and adjust.
GPU_MFU = 0.40
# On-demand price of one H100 SXM GPU-hour on common GPU clouds (8×H100 nodes rent for about $24/h).
GPU_HOURLY_USD = 3.00
# fp32 matmul throughput of one CPU core: torch sgemm measured single-threaded on the dev VM (AMD EPYC Zen 5,
# AVX-512), 93–105 GFLOP/s for [2048, 256–384] × [256–384, 256–1536] shapes.
CPU_CORE_FLOPS = 100e9
# Fraction of that a training step reaches: engine GPT + MuonAdamW steps (cpu-tiny and cpu-small shapes, one
# thread) measured 43-56 GFLOP/s of model FLOPs in process CPU time on the same VM.
CPU_MFU = 0.45
# CPU runs use your own machine: no hourly price.
CPU_HOURLY_USD = 0.0

# --- memory assumptions, bytes per element ---
WEIGHT_BYTES = 4  # fp32 master weights (autocast computes in bf16 on CUDA)
GRAD_BYTES = 4  # fp32 grads
ADAMW_STATE_BYTES = 8  # exp_avg + exp_avg_sq, fp32, replicated on every rank (engine/optim.py)
MUON_STATE_BYTES = 4  # one fp32 momentum buffer per matrix
# Saved activations per token per layer, in multiples of model_dim: 34 bytes·dim at 2 bytes/element for a GPT
# block with flash attention (Korthikanti et al. 2022, "Reducing Activation Recomputation in Large
# Transformer Models", without the attention-score term) -> 17 elements; bf16 on CUDA, fp32 on CPU.
ACT_ELEMS_PER_TOKEN_LAYER_DIM = 17
LOGIT_COPIES = 2  # fp32 logits and their softcapped copy are kept for the backward pass
CUDA_OVERHEAD_BYTES = int(1.5 * 2**30)  # CUDA context, cuBLAS/NCCL workspaces, allocator slack
CPU_PROCESS_OVERHEAD_BYTES = int(0.5 * 2**30)  # a process that imported torch measured ~220 MiB RSS, plus data buffers


@dataclass(frozen=True)
class Shape:
    n_layer: int
    n_embd: int
    n_head: int
    n_kv_head: int
    head_dim: int
    seq_len: int
    vocab_size: int
    padded_vocab: int
    windows: tuple[int, ...]  # per-layer attention window in tokens


def shape_of(r: dict[str, Any]) -> Shape:
    cfg = config_from_depth(r["model.depth"], r["model.aspect_ratio"], r["model.head_dim"], r["model.max_seq_len"],
                            r["model.vocab_size"], r["model.window_pattern"], r["model.n_kv_head"])
    return Shape(cfg.n_layer, cfg.n_embd, cfg.n_head, cfg.n_kv_head, r["model.head_dim"], cfg.sequence_len,
                 cfg.vocab_size, padded_vocab(cfg.vocab_size), tuple(window_sizes(cfg)))


def param_counts(s: Shape) -> dict[str, int]:
    """Parameters by group, as in shared/specs/nanochat-model.md."""
    c, kv = s.n_embd, s.n_kv_head * s.head_dim
    ve_layers = sum(1 for i in range(s.n_layer) if i % 2 == (s.n_layer - 1) % 2)
    counts = {
        "wte": s.padded_vocab * c,
        "lm_head": s.padded_vocab * c,
        "blocks": s.n_layer * (2 * c * c + 2 * kv * c + 8 * c * c),  # c_q, c_proj, c_k, c_v, mlp c_fc, c_proj
        "value_embeds": ve_layers * s.padded_vocab * kv,
        "gates": ve_layers * s.n_kv_head * 12 + 24,  # ve_gate per value-embed layer, smear_gate
        "scalars": 2 * s.n_layer + 2,  # resid_lambdas, x0_lambdas, smear_lambda, backout_lambda
    }
    counts["total"] = sum(counts.values())
    return counts


def flops_per_token(s: Shape, counts: dict[str, int]) -> int:
    """GPT.estimate_flops: 6 per matmul weight (lookups and scalars excluded) + attention, window-aware."""
    matmul = counts["total"] - counts["wte"] - counts["value_embeds"] - counts["scalars"]
    attn = sum(12 * s.n_head * s.head_dim * min(w, s.seq_len) for w in s.windows)
    return 6 * matmul + attn


def scaling_params(counts: dict[str, int]) -> int:
    """Params the tokens:params ratio counts: all but the embedding lookups (engine/train.py horizon)."""
    return counts["total"] - counts["wte"] - counts["value_embeds"]


def num_steps(r: dict[str, Any], counts: dict[str, int], fpt: int) -> int:
    """engine/train.py horizon(): explicit steps, else a FLOPs budget, else the tokens:params ratio."""
    total = r["training.total_batch_size"]
    if r["training.num_iterations"] > 0:
        return r["training.num_iterations"]
    if r["training.target_flops"] > 0:
        return max(1, round(r["training.target_flops"] / (fpt * total)))
    return max(1, round(r["training.target_param_data_ratio"] * scaling_params(counts) / total))


def memory_per_device(r: dict[str, Any], s: Shape, counts: dict[str, int], device: str,
                      device_batch_size: int | None = None) -> int:
    """Estimated peak bytes per process: weights, grads, optimizer state, activations, logits, overhead."""
    b = device_batch_size or r["training.device_batch_size"]
    tokens = b * s.seq_len
    muon = counts["blocks"] + counts["gates"] - 24  # every matrix under transformer.h (ve_gate included)
    adamw = counts["total"] - muon
    states = counts["total"] * (WEIGHT_BYTES + GRAD_BYTES) + adamw * ADAMW_STATE_BYTES + muon * MUON_STATE_BYTES
    act_bytes = 2 if device == "cuda" else 4
    acts = tokens * s.n_layer * s.n_embd * ACT_ELEMS_PER_TOKEN_LAYER_DIM * act_bytes
    logits = tokens * s.padded_vocab * 4 * LOGIT_COPIES
    overhead = CUDA_OVERHEAD_BYTES if device == "cuda" else CPU_PROCESS_OVERHEAD_BYTES
    return states + acts + logits + overhead


def estimate_device(r: dict[str, Any], has_gpu: bool | None = None) -> str:
    """'cuda' or 'cpu'; 'auto' counts as cuda only when told a GPU is present."""
    device = r["hardware.device"]
    return ("cuda" if has_gpu else "cpu") if device == "auto" else device


@dataclass(frozen=True)
class CompatInfo:
    device: str  # "cuda" | "cpu": what the estimate assumes
    hardware: str  # e.g. "8× NVIDIA H100 SXM"
    gpus: int
    vram_gb_per_gpu: float  # estimated need per GPU (0 on CPU)
    ram_gb: float  # estimated host RAM for all processes on a CPU run (0 on GPU)
    processes: int
    params: int
    scaling_params: int
    tokens: int
    steps: int
    grad_accum: int
    flops_per_token: int
    flops: float  # training + evaluation
    tokens_per_second: float
    est_hours: float
    est_cost_usd: float
    model_dim: int
    n_head: int
    n_kv_head: int
    assumptions: str  # the throughput/price assumption, in words


def compat_matrix(resolved: dict[str, Any], has_gpu: bool | None = None) -> CompatInfo:
    """What a resolved config needs and what it costs, from the analytic counts and the constants above."""
    r = resolved
    s = shape_of(r)
    counts = param_counts(s)
    fpt = flops_per_token(s, counts)
    steps = num_steps(r, counts, fpt)
    total = r["training.total_batch_size"]
    world = r["hardware.nproc_per_node"] * r["hardware.nnodes"]
    unit = r["training.device_batch_size"] * s.seq_len * world
    tokens = steps * total
    evals = math.ceil(steps / r["telemetry.eval_every"]) if r["telemetry.eval_every"] > 0 else 1
    eval_tokens = evals * max(1, r["telemetry.eval_tokens"] // unit) * unit
    flops = fpt * tokens + fpt / 3 * eval_tokens  # a forward pass is a third of forward+backward
    device = estimate_device(r, has_gpu)
    mem = memory_per_device(r, s, counts, device)
    if device == "cuda":
        rate, price = world * H100_BF16_PEAK_FLOPS * GPU_MFU, world * GPU_HOURLY_USD
        hardware, gpus = f"{world}× NVIDIA H100 SXM", world
        assumptions = (f"H100 bf16 peak {H100_BF16_PEAK_FLOPS / 1e12:.0f} TFLOP/s at {GPU_MFU:.0%} MFU, "
                       f"${GPU_HOURLY_USD:.2f}/GPU-hour")
    else:
        rate, price = world * CPU_CORE_FLOPS * CPU_MFU, world * CPU_HOURLY_USD
        hardware, gpus = f"{world}× CPU process (1 core each)", 0
        assumptions = f"{CPU_CORE_FLOPS / 1e9:.0f} GFLOP/s fp32 per core at {CPU_MFU:.0%} utilisation, no hourly cost"
    hours = flops / rate / 3600
    return CompatInfo(
        device=device, hardware=hardware, gpus=gpus,
        vram_gb_per_gpu=mem / 1e9 if device == "cuda" else 0.0,
        ram_gb=mem * r["hardware.nproc_per_node"] / 1e9 if device == "cpu" else 0.0,
        processes=world, params=counts["total"], scaling_params=scaling_params(counts), tokens=tokens,
        steps=steps, grad_accum=total // unit if total % unit == 0 else 0, flops_per_token=fpt, flops=flops,
        tokens_per_second=rate / fpt, est_hours=hours, est_cost_usd=hours * price, model_dim=s.n_embd,
        n_head=s.n_head, n_kv_head=s.n_kv_head, assumptions=assumptions)
