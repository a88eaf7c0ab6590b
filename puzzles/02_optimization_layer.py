"""Puzzle 02 · Optimization layer (OptimizerFactory)

Goal: the optimizer nanochat trains with. Split the model's parameters into groups (AdamW for embeddings,
lm_head and scalars, Muon for every matrix in the blocks, one Muon group per shape), orthogonalise Muon's
update with the Polar Express iteration, pick the layers FP8 training may convert and swap them back for
evaluation, write one AdamW and one Muon step, and the learning-rate / momentum / weight-decay schedules.
Verified against the engine (engine/optim.py, engine/fp8.py): the groups, Polar Express on random
matrices, the schedules, and the weights after two training steps of a small GPT, parameter by parameter.

    python -m puzzles.02_optimization_layer            run your OptimizerFactory on a small example
    python -m puzzles.02_optimization_layer --verify   compare it with the engine, check by check
    python -m puzzles.02_optimization_layer --peek     read the engine's code for this puzzle
"""

import sys
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

# Polar Express coefficients (Amsel et al. 2025, arXiv:2505.16932): iteration k maps
# X -> a X + b (X X^T) X + c (X X^T)^2 X with (a, b, c) = POLAR_EXPRESS[k].
POLAR_EXPRESS = (
    (8.156554524902461, -22.48329292557795, 15.878769915207462),
    (4.042929935166739, -2.808917465908714, 0.5000178451051316),
    (3.8916678022926607, -2.772484153217685, 0.5060648178503393),
    (3.285753657755655, -2.3681294933425376, 0.46449024233003106),
    (2.3465413258596377, -1.7097828382687081, 0.42323551169305323),
)


class OptimizerFactory:
    @staticmethod
    def param_groups(model: nn.Module, embedding_lr: float, unembedding_lr: float, matrix_lr: float,
                     scalar_lr: float, weight_decay: float) -> list[dict]:
        """The optimizer's groups for a GPT, in this order, as dicts with "kind" ("adamw" or "muon"),
        "params" (the tensors) and the hyperparameters:

        AdamW (keys lr, betas, eps=1e-10, weight_decay), lrs scaled by s = (n_embd / 768) ** -0.5:
          lm_head.weight                         lr unembedding_lr*s    betas (0.8, 0.96)   wd 0.01
          transformer.wte.weight                 lr embedding_lr*s      betas (0.8, 0.995)  wd 0.001
          value_embeds.*                         lr 0.5*embedding_lr*s  betas (0.8, 0.995)  wd 0.01
          resid_lambdas                          lr 0.01*scalar_lr      betas (0.8, 0.95)   wd 0.05
          x0_lambdas                             lr scalar_lr           betas (0.96, 0.95)  wd 0.0
          smear_gate.weight, smear_lambda,
          backout_lambda                         lr 0.2                 betas (0.8, 0.95)   wd 0.0
        Muon (keys lr=matrix_lr, momentum=0.95, ns_steps=5, weight_decay): every parameter under
        transformer.h, one group per shape, shapes in sorted order, params in model order.
        Leave out an AdamW group that would be empty.
        """
        raise NotImplementedError("not implemented yet: OptimizerFactory.param_groups")

    @staticmethod
    def polar_express(G: torch.Tensor, steps: int = 5) -> torch.Tensor:
        """About U V^T for G = U S V^T, batched over leading dims, in float32.

        Work on the wide orientation (transpose a tall matrix, transpose back at the end); divide by
        (Frobenius norm * 1.02 + 1e-6) so every singular value starts below 1; then `steps` iterations
        of POLAR_EXPRESS.
        """
        raise NotImplementedError("not implemented yet: OptimizerFactory.polar_express")

    @staticmethod
    def fp8_filter(module: nn.Module, name: str) -> bool:
        """May FP8 training convert this module? Only nn.Linear layers, never the one named lm_head, and
        only when both in_features and out_features are multiples of 16 (the FP8 matmul's tile)."""
        raise NotImplementedError("not implemented yet: OptimizerFactory.fp8_filter")

    @staticmethod
    @contextmanager
    def fp8_disabled(model: nn.Module) -> Iterator[None]:
        """Inside the block, every FP8 Linear (an nn.Linear subclass whose class name contains "Float8")
        is replaced by a plain nn.Linear holding the very same weight Parameter; afterwards (also when the
        block raises) the original modules are back in place. A model without FP8 layers is left alone."""
        raise NotImplementedError("not implemented yet: OptimizerFactory.fp8_disabled")
        yield

    @staticmethod
    def adamw_update(p: torch.Tensor, grad: torch.Tensor, state: dict, lr: float, betas: tuple[float, float],
                     eps: float, weight_decay: float) -> None:
        """One AdamW step on p, in place. `state` starts empty: keep step, exp_avg, exp_avg_sq in it.
        Decoupled decay first (p *= 1 - lr*wd), then the bias-corrected Adam update."""
        raise NotImplementedError("not implemented yet: OptimizerFactory.adamw_update")

    @staticmethod
    def muon_update(params: list[torch.Tensor], grads: list[torch.Tensor], state: dict, lr: float,
                    momentum: float, ns_steps: int, weight_decay: float) -> None:
        """One Muon step on a group of same-shape matrices, in place. `state` starts empty.

        Stack the grads; momentum buffer m <- lerp(m, g, 1 - momentum); Nesterov: u = lerp(g, m, momentum);
        u = polar_express(u, ns_steps); lr is scaled by max(1, rows / cols) ** 0.5; cautious weight decay:
        u += wd * p only where u * p >= 0; then p -= lr * u.
        """
        raise NotImplementedError("not implemented yet: OptimizerFactory.muon_update")

    @staticmethod
    def lr_multiplier(step: int, num_iterations: int, warmup_iters: int = 40, warmdown_ratio: float = 0.65,
                      final_lr_frac: float = 0.05) -> float:
        """min(1, warm-up, warm-down): warm-up (step+1)/warmup_iters; warm-down over the last
        round(warmdown_ratio*num_iterations) steps: for step > num_iterations - that many, linear from 1
        down to final_lr_frac at num_iterations (final_lr_frac + (1-final_lr_frac)*(steps left)/warmdown)."""
        raise NotImplementedError("not implemented yet: OptimizerFactory.lr_multiplier")

    @staticmethod
    def muon_momentum(step: int, num_iterations: int, warmdown_ratio: float = 0.65) -> float:
        """The lower of: 0.85 -> 0.97 linearly over the first 400 steps (then 0.97); and, from the start of
        the warm-down (num_iterations - round(warmdown_ratio*num_iterations)), 0.97 -> 0.90 linearly."""
        raise NotImplementedError("not implemented yet: OptimizerFactory.muon_momentum")

    @staticmethod
    def weight_decay_multiplier(step: int, num_iterations: int) -> float:
        """Cosine from 1 at step 0 to 0 at num_iterations, held at 0 past it."""
        raise NotImplementedError("not implemented yet: OptimizerFactory.weight_decay_multiplier")


if __name__ == "__main__":
    from puzzles.harness import main

    sys.exit(main(2))
