"""MuonAdamW: nanochat's mixed optimizer, its parameter groups, and the training schedules.

Muon trains every matrix inside the transformer blocks; AdamW trains the embeddings, lm_head and the
small scalars (see shared/specs/nanochat-model.md, "Optimizer"). One optimizer object holds both so a
training loop has a single step(), state_dict() and set of param groups to schedule.

Distributed training does not use DDP: step() itself averages gradients across ranks when
torch.distributed is initialised, so the same class serves one process, gloo (CPU) and NCCL (GPU).
Each rank orthogonalises only its share of the Muon matrices and the results are all-gathered, so the
expensive part of the step is split across ranks and every rank applies the very same update.
Optimizer state is replicated on every rank, so a state_dict from any rank resumes any world size.

Differences from stock nanochat, on purpose: no NorMuon variance reduction / row equilibration /
norm snapping after the polar iteration (nanochat's newest Muon has them), and AdamW state is not
sharded across ranks (ZeRO-2) — memory is traded for world-size-independent checkpoints.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.distributed as dist
from torch import Tensor

from engine.errors import EngineError
from engine.gpt import GPT

__all__ = ["MuonAdamW", "build_optimizer", "orthogonalize", "lr_multiplier", "muon_momentum",
           "weight_decay_multiplier", "apply_schedules"]

# Polar Express coefficients (Amsel, Persson, Musco, Gower 2025, arXiv:2505.16932), one (a, b, c) per
# iteration of X <- a X + b (X X^T) X + c (X X^T)^2 X; tuned for 5 iterations in bf16.
POLAR_EXPRESS = (
    (8.156554524902461, -22.48329292557795, 15.878769915207462),
    (4.042929935166739, -2.808917465908714, 0.5000178451051316),
    (3.8916678022926607, -2.772484153217685, 0.5060648178503393),
    (3.285753657755655, -2.3681294933425376, 0.46449024233003106),
    (2.3465413258596377, -1.7097828382687081, 0.42323551169305323),
)

# nanochat fixes the smear/backout lr rather than deriving it from scalar_lr
SMEAR_LR = 0.2
MOMENTUM_START, MOMENTUM_PEAK, MOMENTUM_END, MOMENTUM_WARMUP = 0.85, 0.97, 0.90, 400


def orthogonalize(G: Tensor, steps: int = 5) -> Tensor:
    """Approximately U V^T for G = U S V^T, batched over leading dims (bf16 on CUDA, fp32 elsewhere).

    Singular values land in a band around 1 rather than exactly on it; Muon does not need more.
    """
    X = G.bfloat16() if G.is_cuda else G.float()
    shape = X.shape
    X = X.reshape(-1, *shape[-2:])  # one batch dim, for the fused baddbmm below
    tall = X.size(-2) > X.size(-1)
    if tall:  # iterate on the smaller Gram matrix
        X = X.mT
    # Frobenius norm bounds the spectral norm, so every singular value starts inside (0, 1)
    X = X / (X.norm(dim=(-2, -1), keepdim=True) * 1.02 + 1e-6)
    for a, b, c in POLAR_EXPRESS[:steps]:
        A = X @ X.mT
        B = torch.baddbmm(A, A, A, beta=b, alpha=c)  # b A + c A², one call
        X = torch.baddbmm(X, B, X, beta=a)  # a X + B X
    return (X.mT if tall else X).reshape(shape)


def _undecorated(fn: Callable) -> Callable:
    """The function under functools.wraps-style decorators (itself where there are none)."""
    return getattr(fn, "__wrapped__", fn)


def _fusable(params: list[Tensor]) -> bool:
    """torch's fused AdamW kernel needs one device (CPU or CUDA) and one floating dtype across the list."""
    p0 = params[0]
    return (hasattr(torch, "_fused_adamw_") and p0.device.type in ("cpu", "cuda") and p0.is_floating_point()
            and all(p.device == p0.device and p.dtype == p0.dtype and p.grad.dtype == p0.dtype for p in params))


def _all_gather_flat() -> Callable:
    # all_gather_single replaces all_gather_into_tensor in newer torch; same semantics
    return getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor


class MuonAdamW(torch.optim.Optimizer):
    """Muon for matrices, AdamW for everything else; one group per `kind`.

    AdamW groups: lr, betas, eps (default 1e-10), weight_decay (decoupled: p *= 1 - lr*wd), bias-corrected.
    Muon groups (all params of one group share a shape, so their updates stack into one batch):
    lr, momentum (0.95), ns_steps (5), weight_decay. Per step: Nesterov momentum, Polar Express
    orthogonalisation, lr scaled by max(1, rows/cols)**0.5, and *cautious* decoupled weight decay —
    decay only the entries where the update and the parameter have the same sign, so decay never
    fights the gradient's direction (nanochat's rule).

    Every group keeps `initial_lr` (and Muon groups `initial_weight_decay`) for `apply_schedules`.
    `world_size` must match torch.distributed's when it is initialised; with more than one rank,
    step() averages the gradients first (SUM then divide: gloo has no AVG on older torch), packed
    into flat buckets of at most `bucket_cap_mb` to keep the number of collectives low (default 4 MB
    on CPU, measured best for gloo in bench/optim_bench.py; 64 MB on CUDA, untested here).
    A parameter without a gradient is skipped by AdamW; in Muon (and across ranks) it counts as zero.
    """

    def __init__(self, param_groups: list[dict], world_size: int = 1, bucket_cap_mb: float | None = None):
        for i, g in enumerate(param_groups):
            kind = g.get("kind")
            if kind == "adamw":
                g.setdefault("eps", 1e-10)
                g.setdefault("weight_decay", 0.0)
                missing = {"lr", "betas"} - g.keys()
            elif kind == "muon":
                g.setdefault("momentum", 0.95)
                g.setdefault("ns_steps", 5)
                g.setdefault("weight_decay", 0.0)
                g.setdefault("initial_weight_decay", g["weight_decay"])
                missing = {"lr"} - g.keys()
                shapes = {tuple(p.shape) for p in g["params"]}
                if len(shapes) != 1 or len(next(iter(shapes))) != 2:
                    raise EngineError(f"optimizer group {i}: Muon needs 2-D params of one shape, got {sorted(shapes)}: "
                                      "make one Muon group per matrix shape")
                if not 1 <= g["ns_steps"] <= len(POLAR_EXPRESS):
                    raise EngineError(f"optimizer group {i}: ns_steps={g['ns_steps']}: use 1..{len(POLAR_EXPRESS)}")
            else:
                raise EngineError(f"optimizer group {i}: kind={kind!r}: use 'adamw' or 'muon'")
            if missing:
                raise EngineError(f"optimizer group {i}: missing {sorted(missing)}: set them in the group dict")
            g.setdefault("initial_lr", g["lr"])
        if world_size < 1:
            raise EngineError(f"optimizer: world_size={world_size}: must be >= 1")
        super().__init__(param_groups, defaults={})
        self.world_size = world_size
        self.bucket_cap_mb = bucket_cap_mb
        self.fused_adamw = True  # False forces the op-by-op AdamW (tests compare the two)

    # torch.optim.Optimizer wraps these in torch._disable_dynamo, whose first call imports torch._dynamo: 1.3 s
    # of a 2-core machine before the first step. We never compile the optimizer, so call the plain functions.
    def add_param_group(self, param_group: dict) -> None:
        _undecorated(torch.optim.Optimizer.add_param_group)(self, param_group)

    def state_dict(self) -> dict:
        return _undecorated(torch.optim.Optimizer.state_dict)(self)

    def load_state_dict(self, state_dict: dict) -> None:
        _undecorated(torch.optim.Optimizer.load_state_dict)(self, state_dict)

    def _ranks(self) -> tuple[int, int]:
        """(rank, world) of the running job; checks it matches what the optimizer was built for."""
        world = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
        if world != self.world_size:
            raise EngineError(f"optimizer: built for world_size={self.world_size} but {world} ranks are running: "
                              f"pass world_size={world} to build_optimizer")
        return (dist.get_rank() if world > 1 else 0), world

    @torch.no_grad()
    def step(self, closure: Callable | None = None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        rank, world = self._ranks()
        if world > 1:
            self._average_grads(world)
        muon = self._start_muon(rank, world)  # the gather (if any) overlaps with the AdamW work below
        for group in self.param_groups:
            if group["kind"] == "adamw":
                self._step_adamw(group)
        self._finish_muon(muon, world)
        return loss

    # ---- distributed gradient averaging

    def grad_buckets(self) -> list[list[Tensor]]:
        """Params packed for the gradient all_reduce: consecutive ones of one device/dtype, up to the cap."""
        params = [p for g in self.param_groups for p in g["params"]]
        cap = self.bucket_cap_mb * 2**20 if self.bucket_cap_mb else (64 if params[0].is_cuda else 4) * 2**20
        buckets: list[list[Tensor]] = []
        size = 0
        for p in params:
            nbytes = p.numel() * p.element_size()
            last = buckets[-1][-1] if buckets else None
            if last is None or size + nbytes > cap or (last.device, last.dtype) != (p.device, p.dtype):
                buckets.append([])
                size = 0
            buckets[-1].append(p)
            size += nbytes
        return buckets

    def _average_grads(self, world: int) -> None:
        for g in self.param_groups:
            for p in g["params"]:
                if p.grad is None:
                    p.grad = torch.zeros_like(p)
        buckets = self.grad_buckets()
        pending = []
        for bucket in buckets:
            alone = len(bucket) == 1 and bucket[0].grad.is_contiguous()  # reduce in place, no copies
            flat = bucket[0].grad.view(-1) if alone else torch.cat([p.grad.reshape(-1) for p in bucket])
            pending.append((bucket, alone, flat, dist.all_reduce(flat, async_op=True)))
        for bucket, alone, flat, work in pending:
            work.wait()
            flat.div_(world)
            if not alone:
                for p, g in zip(bucket, flat.split([p.numel() for p in bucket]), strict=True):
                    p.grad.copy_(g.view_as(p))

    # ---- AdamW

    def _step_adamw(self, group: dict) -> None:
        lr, wd, eps = group["lr"], group["weight_decay"], group["eps"]
        beta1, beta2 = group["betas"]
        params = [p for p in group["params"] if p.grad is not None]
        if not params:
            return
        for p in params:
            state = self.state[p]
            if not state:
                state["step"] = 0
                state["exp_avg"] = torch.zeros_like(p)
                state["exp_avg_sq"] = torch.zeros_like(p)
            state["step"] += 1
        states = [self.state[p] for p in params]
        if self.fused_adamw and _fusable(params):
            # torch's own fused AdamW kernel: one pass over p, grad, m, v instead of eight; the same update
            # (its denominator is sqrt(v)/sqrt(1-beta2^t) + eps, ours below sqrt(v/(1-beta2^t)) + eps: rounding)
            dev = params[0].device
            steps = [torch.tensor(float(s["step"]), device=dev) for s in states]
            torch._fused_adamw_(params, [p.grad for p in params], [s["exp_avg"] for s in states],
                                [s["exp_avg_sq"] for s in states], [], steps, lr=lr, beta1=beta1, beta2=beta2,
                                weight_decay=wd, eps=eps, amsgrad=False, maximize=False)
            # the fused kernel writes the params without bumping their version counters: bump them, so that
            # caches keyed on (storage, version), e.g. gpt.DecodeWeights, see the update
            torch.autograd.graph.increment_version(params)
            return
        for p, state in zip(params, states, strict=True):
            t, g = state["step"], p.grad
            if wd:
                p.mul_(1 - lr * wd)
            state["exp_avg"].lerp_(g, 1 - beta1)
            state["exp_avg_sq"].mul_(beta2).addcmul_(g, g, value=1 - beta2)
            denom = (state["exp_avg_sq"] / (1 - beta2 ** t)).sqrt_().add_(eps)
            p.addcdiv_(state["exp_avg"], denom, value=-lr / (1 - beta1 ** t))

    # ---- Muon

    def _start_muon(self, rank: int, world: int) -> tuple:
        """Momentum for every matrix, orthogonalise this rank's share; with world > 1 launch the gather.

        Returns (gather work or None, gathered buffer [world, n] or None, [(group, chunk, own update)]).
        """
        jobs = []
        for group in self.param_groups:
            params = group["params"]
            if group["kind"] != "muon" or all(p.grad is None for p in params):
                continue
            grads = torch.stack([p.grad if p.grad is not None else torch.zeros_like(p) for p in params])
            state = self.state[params[0]]  # the group's stacked buffer lives with its first param
            if "momentum_buffer" not in state:
                state["momentum_buffer"] = torch.zeros_like(grads)
            buf, m = state["momentum_buffer"], group["momentum"]
            buf.lerp_(grads, 1 - m)
            chunk = -(-len(params) // world)  # matrices per rank; the last ranks may own fewer or none
            lo, hi = min(rank * chunk, len(params)), min((rank + 1) * chunk, len(params))
            nesterov = grads[lo:hi].lerp_(buf[lo:hi], m)
            jobs.append((group, chunk, orthogonalize(nesterov, group["ns_steps"])))
        if world == 1 or not jobs:
            return None, None, jobs
        # one all-gather for every group: each rank sends its chunks, zero-padded to equal size
        parts = []
        for _, chunk, update in jobs:
            padded = update.new_zeros(chunk, *update.shape[1:])
            padded[:len(update)] = update
            parts.append(padded.reshape(-1))
        send = torch.cat(parts)
        recv = send.new_empty(world * send.numel())
        return _all_gather_flat()(recv, send, async_op=True), recv.view(world, -1), jobs

    def _finish_muon(self, pending: tuple, world: int) -> None:
        work, recv, jobs = pending
        if work is None:
            for group, _, update in jobs:
                self._apply_muon(group, update)
            return
        work.wait()
        offset = 0
        for group, chunk, _ in jobs:  # rank r's chunk of a group holds matrices r*chunk .. r*chunk+chunk-1
            params = group["params"]
            n = chunk * params[0].numel()
            update = recv[:, offset:offset + n].reshape(world * chunk, *params[0].shape)[:len(params)]
            self._apply_muon(group, update)
            offset += n

    def _apply_muon(self, group: dict, update: Tensor) -> None:
        rows, cols = group["params"][0].shape
        lr = group["lr"] * max(1.0, rows / cols) ** 0.5
        wd = group["weight_decay"]
        for p, u in zip(group["params"], update, strict=True):
            u = u.to(p.dtype)
            if wd:
                u = u + wd * p * ((u * p) >= 0)  # cautious: decay only where update and weight agree in sign
            p.sub_(lr * u)


def build_optimizer(model: GPT, *, embedding_lr: float, unembedding_lr: float, matrix_lr: float,
                    scalar_lr: float, weight_decay: float, world_size: int = 1) -> MuonAdamW:
    """nanochat's parameter groups for `model`; raises unless every parameter lands in exactly one group.

    AdamW lrs for the embedding-sized tables scale as (C/768)^-0.5 (tuned at C=768). Muon takes every
    matrix under transformer.h, including the small per-layer ve_gate [n_kv_head, 12] (as nanochat
    does): a short wide matrix orthogonalises to orthonormal rows, with lr scale 1.
    """
    for name, value in (("embedding_lr", embedding_lr), ("unembedding_lr", unembedding_lr),
                        ("matrix_lr", matrix_lr), ("scalar_lr", scalar_lr), ("weight_decay", weight_decay)):
        if not value >= 0:
            raise EngineError(f"optimizer: {name}={value}: must be >= 0")
    scale = (model.config.n_embd / 768) ** -0.5
    adamw = {  # group name -> (lr, betas, weight_decay)
        "lm_head": (unembedding_lr * scale, (0.8, 0.96), 0.01),
        "wte": (embedding_lr * scale, (0.8, 0.995), 0.001),
        "value_embeds": (0.5 * embedding_lr * scale, (0.8, 0.995), 0.01),
        "resid_lambdas": (0.01 * scalar_lr, (0.8, 0.95), 0.05),
        "x0_lambdas": (scalar_lr, (0.96, 0.95), 0.0),
        "smear": (SMEAR_LR, (0.8, 0.95), 0.0),
    }
    members: dict[str, list[Tensor]] = {k: [] for k in adamw}
    matrices: list[tuple[str, Tensor]] = []
    for name, p in model.named_parameters():
        if name.startswith("transformer.h."):
            if p.ndim != 2:
                raise EngineError(f"optimizer: {name} has shape {tuple(p.shape)}: Muon takes only 2-D block "
                                  "params; route it to an AdamW group in build_optimizer")
            matrices.append((name, p))
        elif name.startswith("value_embeds."):
            members["value_embeds"].append(p)
        elif name in ("smear_gate.weight", "smear_lambda", "backout_lambda"):
            members["smear"].append(p)
        else:
            key = {"lm_head.weight": "lm_head", "transformer.wte.weight": "wte",
                   "resid_lambdas": "resid_lambdas", "x0_lambdas": "x0_lambdas"}.get(name)
            if key is None:
                raise EngineError(f"optimizer: parameter {name} has no optimizer group: add it to build_optimizer")
            members[key].append(p)
    groups = [dict(kind="adamw", name=k, params=members[k], lr=lr, betas=betas, eps=1e-10, weight_decay=wd)
              for k, (lr, betas, wd) in adamw.items() if members[k]]
    # sorted shapes give every rank the same group order, which the collectives rely on
    for shape in sorted({tuple(p.shape) for _, p in matrices}):
        groups.append(dict(kind="muon", name=f"muon_{shape[0]}x{shape[1]}", lr=matrix_lr, momentum=0.95,
                           ns_steps=5, weight_decay=weight_decay,
                           params=[p for _, p in matrices if tuple(p.shape) == shape]))
    seen = [id(p) for g in groups for p in g["params"]]
    if len(seen) != len(set(seen)) or set(seen) != {id(p) for p in model.parameters()}:
        raise EngineError("optimizer: parameter groups do not cover every model parameter exactly once: "
                          "fix the grouping in build_optimizer")
    return MuonAdamW(groups, world_size=world_size)


# ---- schedules: pure functions of the step, so a resumed run recomputes them exactly

def _check_horizon(step: int, num_iterations: int) -> None:
    if num_iterations < 1:
        raise EngineError(f"schedule: num_iterations={num_iterations}: must be >= 1")
    if step < 0:
        raise EngineError(f"schedule: step={step}: must be >= 0")


def lr_multiplier(step: int, num_iterations: int, warmup_iters: int = 40, warmdown_ratio: float = 0.65,
                  final_lr_frac: float = 0.05) -> float:
    """Linear warm-up over `warmup_iters`, flat at 1, then linear decay to `final_lr_frac` at the end.

    The lower of the two ramps wins, which is nanochat's piecewise rule whenever warm-up and
    warm-down do not overlap, and stays continuous on short runs where they do.
    """
    _check_horizon(step, num_iterations)
    warmup = (step + 1) / warmup_iters if warmup_iters > 0 else 1.0
    warmdown_iters = round(warmdown_ratio * num_iterations)
    warmdown = 1.0
    if warmdown_iters > 0 and step > num_iterations - warmdown_iters:
        left = max(num_iterations - step, 0) / warmdown_iters
        warmdown = final_lr_frac + (1 - final_lr_frac) * left
    return min(1.0, warmup, warmdown)


def muon_momentum(step: int, num_iterations: int, warmdown_ratio: float = 0.65) -> float:
    """0.85 -> 0.97 over the first 400 steps, then 0.97 -> 0.90 across the LR warm-down (lower ramp wins)."""
    _check_horizon(step, num_iterations)
    up = MOMENTUM_START + (MOMENTUM_PEAK - MOMENTUM_START) * min(step / MOMENTUM_WARMUP, 1.0)
    warmdown_iters = round(warmdown_ratio * num_iterations)
    start = num_iterations - warmdown_iters
    down = MOMENTUM_PEAK
    if warmdown_iters > 0 and step >= start:
        down = MOMENTUM_PEAK + (MOMENTUM_END - MOMENTUM_PEAK) * min((step - start) / warmdown_iters, 1.0)
    return min(up, down)


def weight_decay_multiplier(step: int, num_iterations: int) -> float:
    """Cosine from 1 at step 0 to 0 at num_iterations (held at 0 past it)."""
    _check_horizon(step, num_iterations)
    return 0.5 * (1 + math.cos(math.pi * min(step, num_iterations) / num_iterations))


def apply_schedules(opt: MuonAdamW, step: int, num_iterations: int, lr_scale: float = 1.0, *,
                    warmup_iters: int = 40, warmdown_ratio: float = 0.65, final_lr_frac: float = 0.05) -> dict:
    """Set every group's lr (initial_lr * schedule * lr_scale), and Muon momentum and weight decay.

    AdamW weight decays stay fixed (nanochat schedules only Muon's). Returns the schedule values for
    telemetry; "lr_mult" excludes lr_scale.
    """
    if not lr_scale > 0:
        raise EngineError(f"apply_schedules: lr_scale={lr_scale}: must be > 0")
    lrm = lr_multiplier(step, num_iterations, warmup_iters, warmdown_ratio, final_lr_frac)
    mom = muon_momentum(step, num_iterations, warmdown_ratio)
    wdm = weight_decay_multiplier(step, num_iterations)
    for group in opt.param_groups:
        group["lr"] = group["initial_lr"] * lrm * lr_scale
        if group["kind"] == "muon":
            group["momentum"] = mom
            group["weight_decay"] = group["initial_weight_decay"] * wdm
    return {"lr_mult": lrm, "muon_momentum": mom, "wd_mult": wdm}
