"""Reference solution of puzzle 02 (OptimizerFactory): written for the tests, not a copy of the engine."""

import math
from contextlib import contextmanager

import torch
from torch import nn

COEFFS = (
    (8.156554524902461, -22.48329292557795, 15.878769915207462),
    (4.042929935166739, -2.808917465908714, 0.5000178451051316),
    (3.8916678022926607, -2.772484153217685, 0.5060648178503393),
    (3.285753657755655, -2.3681294933425376, 0.46449024233003106),
    (2.3465413258596377, -1.7097828382687081, 0.42323551169305323),
)


class OptimizerFactory:
    @staticmethod
    def param_groups(model, embedding_lr, unembedding_lr, matrix_lr, scalar_lr, weight_decay):
        s = (model.config.n_embd / 768) ** -0.5
        spec = [("lm_head", unembedding_lr * s, (0.8, 0.96), 0.01),
                ("wte", embedding_lr * s, (0.8, 0.995), 0.001),
                ("value_embeds", 0.5 * embedding_lr * s, (0.8, 0.995), 0.01),
                ("resid", 0.01 * scalar_lr, (0.8, 0.95), 0.05),
                ("x0", scalar_lr, (0.96, 0.95), 0.0),
                ("smear", 0.2, (0.8, 0.95), 0.0)]
        buckets = {key: [] for key, *_ in spec}
        matrices = []
        for name, p in model.named_parameters():
            if name.startswith("transformer.h."):
                matrices.append(p)
            elif name == "lm_head.weight":
                buckets["lm_head"].append(p)
            elif name == "transformer.wte.weight":
                buckets["wte"].append(p)
            elif name.startswith("value_embeds."):
                buckets["value_embeds"].append(p)
            elif name == "resid_lambdas":
                buckets["resid"].append(p)
            elif name == "x0_lambdas":
                buckets["x0"].append(p)
            else:
                buckets["smear"].append(p)
        groups = [dict(kind="adamw", params=buckets[key], lr=lr, betas=betas, eps=1e-10, weight_decay=wd)
                  for key, lr, betas, wd in spec if buckets[key]]
        for shape in sorted({tuple(p.shape) for p in matrices}):
            groups.append(dict(kind="muon", params=[p for p in matrices if tuple(p.shape) == shape], lr=matrix_lr,
                               momentum=0.95, ns_steps=5, weight_decay=weight_decay))
        return groups

    @staticmethod
    def polar_express(G, steps=5):
        X = G.float()
        transposed = X.shape[-2] > X.shape[-1]
        if transposed:
            X = X.transpose(-2, -1)
        X = X / (torch.linalg.matrix_norm(X, keepdim=True) * 1.02 + 1e-6)
        for a, b, c in COEFFS[:steps]:
            A = X @ X.transpose(-2, -1)
            X = a * X + (b * A + c * (A @ A)) @ X
        return X.transpose(-2, -1) if transposed else X

    @staticmethod
    def fp8_filter(module, name):
        if not isinstance(module, nn.Linear) or name.rsplit(".", 1)[-1] == "lm_head":
            return False
        return module.in_features % 16 == 0 and module.out_features % 16 == 0

    @staticmethod
    @contextmanager
    def fp8_disabled(model):
        undo = []
        for parent in list(model.modules()):
            for attr, child in list(parent.named_children()):
                if isinstance(child, nn.Linear) and "Float8" in type(child).__name__:
                    plain = nn.Linear(child.in_features, child.out_features, bias=child.bias is not None)
                    plain.weight = child.weight
                    plain.bias = child.bias
                    setattr(parent, attr, plain)
                    undo.append((parent, attr, child))
        try:
            yield
        finally:
            for parent, attr, child in reversed(undo):
                setattr(parent, attr, child)

    @staticmethod
    def adamw_update(p, grad, state, lr, betas, eps, weight_decay):
        if not state:
            state.update(step=0, exp_avg=torch.zeros_like(p), exp_avg_sq=torch.zeros_like(p))
        state["step"] += 1
        t = state["step"]
        b1, b2 = betas
        p.mul_(1 - lr * weight_decay)
        state["exp_avg"].lerp_(grad, 1 - b1)
        state["exp_avg_sq"].mul_(b2).addcmul_(grad, grad, value=1 - b2)
        denom = (state["exp_avg_sq"] / (1 - b2 ** t)).sqrt() + eps
        p.addcdiv_(state["exp_avg"], denom, value=-lr / (1 - b1 ** t))

    @staticmethod
    def muon_update(params, grads, state, lr, momentum, ns_steps, weight_decay):
        g = torch.stack([x if x is not None else torch.zeros_like(p) for x, p in zip(grads, params, strict=True)])
        if "buf" not in state:
            state["buf"] = torch.zeros_like(g)
        state["buf"].lerp_(g, 1 - momentum)
        u = OptimizerFactory.polar_express(g.lerp(state["buf"], momentum), ns_steps)
        rows, cols = params[0].shape
        scaled = lr * max(1.0, rows / cols) ** 0.5
        for p, step in zip(params, u, strict=True):
            if weight_decay:
                step = step + weight_decay * p * ((step * p) >= 0)
            p.sub_(scaled * step)

    @staticmethod
    def lr_multiplier(step, num_iterations, warmup_iters=40, warmdown_ratio=0.65, final_lr_frac=0.05):
        up = (step + 1) / warmup_iters if warmup_iters > 0 else 1.0
        down_len = round(warmdown_ratio * num_iterations)
        down = 1.0
        if down_len > 0 and step > num_iterations - down_len:
            down = final_lr_frac + (1 - final_lr_frac) * max(num_iterations - step, 0) / down_len
        return min(1.0, up, down)

    @staticmethod
    def muon_momentum(step, num_iterations, warmdown_ratio=0.65):
        up = 0.85 + 0.12 * min(step / 400, 1.0)
        down_len = round(warmdown_ratio * num_iterations)
        start = num_iterations - down_len
        down = 0.97
        if down_len > 0 and step >= start:
            down = 0.97 - 0.07 * min((step - start) / down_len, 1.0)
        return min(up, down)

    @staticmethod
    def weight_decay_multiplier(step, num_iterations):
        return 0.5 * (1 + math.cos(math.pi * min(step, num_iterations) / num_iterations))
