"""Puzzle 02 checks: groups, Polar Express, FP8 filter and fallback, two optimizer steps, schedules."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator

import torch
from torch import nn

from puzzles import compare
from puzzles.oracle import Oracle

PEEK = {
    "engine": ["engine.optim:build_optimizer", "engine.optim:POLAR_EXPRESS", "engine.optim:orthogonalize",
               "engine.fp8:fp8_module_filter", "engine.fp8:fp8_disabled", "engine.optim:MuonAdamW._step_adamw",
               "engine.optim:MuonAdamW._start_muon", "engine.optim:MuonAdamW._apply_muon",
               "engine.optim:lr_multiplier", "engine.optim:muon_momentum", "engine.optim:weight_decay_multiplier"],
    "nanochat": ["nanochat.gpt:GPT.setup_optimizer", "nanochat.optim:polar_express_coeffs",
                 "nanochat.optim:muon_step_fused", "nanochat.optim:adamw_step_fused"],
}
LRS = dict(embedding_lr=0.3, unembedding_lr=0.008, matrix_lr=0.02, scalar_lr=0.5, weight_decay=0.2)


def tiny_gpt(seed: int = 0, n_kv_head: int = 2):
    from engine.gpt import GPT, GPTConfig

    torch.manual_seed(seed)
    model = GPT(GPTConfig(sequence_len=32, vocab_size=200, n_layer=3, n_head=4, n_kv_head=n_kv_head, n_embd=64))
    model.init_weights()
    with torch.no_grad():  # init leaves the output projections at zero: perturb them so every grad is nonzero
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    return model


def _group_view(groups: list[dict], names: dict[int, str]) -> list[dict]:
    """Comparable groups: kind, param names, hyperparameters (floats rounded to 12 digits)."""
    out = []
    for g in groups:
        view = {"kind": g.get("kind"), "params": [names.get(id(p), "<not a model parameter>") for p in g["params"]]}
        for key in ("lr", "betas", "eps", "weight_decay", "momentum", "ns_steps"):
            if key in g and not (g.get("kind") == "muon" and key in ("betas", "eps")):
                value = g[key]
                view[key] = tuple(round(v, 12) for v in value) if isinstance(value, tuple) else round(float(value), 12)
        out.append(view)
    return out


def _oracle_groups(oracle: Oracle, model) -> list[dict]:
    if oracle.is_engine:
        from engine.optim import build_optimizer

        return build_optimizer(model, **LRS).param_groups
    gpt = oracle.nanochat("gpt")
    with torch.device("meta"), contextlib.redirect_stdout(io.StringIO()):
        stock = gpt.GPT(gpt.GPTConfig(**model.config.to_dict()))
    with contextlib.redirect_stdout(io.StringIO()):
        groups = stock.setup_optimizer(**LRS).param_groups
    by_id = {id(p): name for name, p in stock.named_parameters()}
    mine = dict(model.named_parameters())
    return [{**g, "params": [mine[by_id[id(p)]] for p in g["params"]]} for g in groups]


def compare_groups(got: list[dict], want: list[dict], names: dict[int, str]) -> str | None:
    got_v, want_v = _group_view(got, names), _group_view(want, names)
    for i, w in enumerate(want_v):
        label = f"group {i} ({w['kind']}: {w['params'][0] if w['params'] else 'empty'}...)"
        if i >= len(got_v):
            return f"{label} is missing: you returned {len(got_v)} groups, expected {len(want_v)}"
        g = got_v[i]
        missing = [n for n in w["params"] if n not in g["params"]]
        if missing:
            return f"{label} is missing {missing[0]}" + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
        extra = [n for n in g["params"] if n not in w["params"]]
        if extra:
            return f"{label} should not hold {extra[0]}"
        for key in w:
            if key != "params" and g.get(key) != w[key]:
                return f"{label} {key} is {g.get(key)!r}, expected {w[key]!r}"
    if len(got_v) > len(want_v):
        return f"group {len(want_v)} is extra: expected {len(want_v)} groups"
    return None


class LearnerOptimizer:
    """The learner's groups and update rules driven like torch's optimizers: grads in, step()."""

    def __init__(self, factory, groups: list[dict]):
        self.factory, self.groups = factory, groups
        self.state: dict[int, dict] = {}

    @torch.no_grad()
    def step(self) -> None:
        for i, g in enumerate(self.groups):
            if g["kind"] == "adamw":
                for p in g["params"]:
                    if p.grad is not None:
                        self.factory.adamw_update(p, p.grad, self.state.setdefault(id(p), {}), g["lr"], g["betas"],
                                                  g["eps"], g["weight_decay"])
            else:
                self.factory.muon_update(g["params"], [p.grad for p in g["params"]], self.state.setdefault(-1 - i, {}),
                                         g["lr"], g["momentum"], g["ns_steps"], g["weight_decay"])


def _two_steps(model, optimizer, batches) -> None:
    for x, y in batches:
        model.zero_grad(set_to_none=True)
        model(x, y).backward()
        optimizer.step()


class Float8Linear(nn.Linear):
    """Stands in for torchao's FP8 layer on CPU: same weights, a forward that would be wrong to call."""

    def forward(self, x):  # a real one rounds through FP8; this makes any use of it obvious
        return super().forward(x) * 0 + float("nan")


def checks(impl, oracle: Oracle) -> Iterator[tuple[str, object]]:
    factory = impl.OptimizerFactory

    def groups():
        for n_kv_head in (2, 4):
            model = tiny_gpt(n_kv_head=n_kv_head)
            names = {id(p): n for n, p in model.named_parameters()}
            problem = compare_groups(factory.param_groups(model, **LRS), _oracle_groups(oracle, model), names)
            if problem:
                return problem
        return None

    def polar():
        oracle.require_engine("Polar Express function (it is fused into its compiled Muon step)")
        from engine.optim import orthogonalize

        gen = torch.Generator().manual_seed(3)
        for shape in ((64, 64), (48, 128), (128, 48), (3, 16, 32), (2, 12)):
            G = torch.randn(*shape, generator=gen)
            for steps in (5, 2):
                problem = compare.tensors(f"polar_express(G{list(shape)}, steps={steps})",
                                          factory.polar_express(G, steps), orthogonalize(G, steps), atol=2e-5)
                if problem:
                    return problem
        return None

    def fp8_filter():
        oracle.require_engine("FP8 module filter (it is defined inside scripts/base_train.py)")
        from engine.fp8 import fp8_module_filter

        model = tiny_gpt()
        extra = {"odd": nn.Linear(24, 32), "tall": nn.Linear(32, 48), "conv": nn.Conv1d(16, 16, 1)}
        for name, module in [*model.named_modules(), *extra.items()]:
            got, want = factory.fp8_filter(module, name), fp8_module_filter(module, name)
            if bool(got) != want:
                return (f"fp8_filter({type(module).__name__} {name or '<root>'}) is {got}, expected {want}")
        return None

    def fp8_fallback():
        oracle.require_engine("FP8 fallback (it is defined inside scripts/base_train.py)")
        from engine.fp8 import fp8_disabled

        model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Sequential(nn.Linear(32, 16)))
        torch.manual_seed(0)
        model[0] = Float8Linear(16, 32)
        model[2][0] = Float8Linear(32, 16, bias=False)
        originals = [model[0], model[2][0]]
        weights = [m.weight for m in originals]
        x = torch.randn(4, 16)
        with fp8_disabled(model):
            want = model(x)
        with factory.fp8_disabled(model):
            inside = [m for m in model.modules() if "Float8" in type(m).__name__]
            if inside:
                return f"inside fp8_disabled, {type(inside[0]).__name__} modules are still in the model"
            if model[0].weight is not weights[0] or model[2][0].weight is not weights[1]:
                return "inside fp8_disabled, the plain Linear layers must hold the same weight Parameters"
            problem = compare.tensors("output inside fp8_disabled", model(x), want, atol=1e-6)
            if problem:
                return problem
        if [model[0], model[2][0]] != originals:
            return "after fp8_disabled, the original FP8 modules are not back in place"
        try:
            with factory.fp8_disabled(model):
                raise KeyError("boom")
        except KeyError:
            pass
        if [model[0], model[2][0]] != originals:
            return "after a block that raised, the original FP8 modules are not back in place"
        plain = nn.Linear(4, 4)
        with factory.fp8_disabled(plain):
            pass
        return None

    def steps():
        oracle.require_engine("optimizer with the engine's Muon (stock nanochat's adds NorMuon variance reduction)")
        from engine.optim import build_optimizer

        gen = torch.Generator().manual_seed(5)
        batches = [(torch.randint(0, 200, (2, 32), generator=gen), torch.randint(0, 200, (2, 32), generator=gen))
                   for _ in range(2)]
        theirs, mine = tiny_gpt(seed=1), tiny_gpt(seed=1)
        # Adam divides by sqrt(v): where two steps' grads nearly cancel, float rounding (a different but
        # equal matmul order) shows at ~1e-6 on weights moving by ~lr = 1 per step, hence atol 1e-5
        opt = build_optimizer(theirs, **LRS)
        opt.fused_adamw = False
        _two_steps(theirs, opt, batches)
        _two_steps(mine, LearnerOptimizer(factory, factory.param_groups(mine, **LRS)), batches)
        want = dict(theirs.named_parameters())
        for name, p in mine.named_parameters():
            problem = compare.tensors(f"{name} after 2 steps", p.detach(), want[name].detach(), atol=1e-5, rtol=1e-4)
            if problem:
                return problem
        return None

    def schedules():
        oracle.require_engine("schedules (they live in scripts/base_train.py)")
        from engine import optim

        for n in (1, 10, 100, 1000, 5000):
            for step in sorted({0, 1, n // 3, n // 2, n - 1, n, n + 1, 399, 400, 401} - {-1}):
                for name, got, want in (
                        ("lr_multiplier", factory.lr_multiplier(step, n), optim.lr_multiplier(step, n)),
                        ("lr_multiplier(warmup 0, ratio 0.3, final 0.1)", factory.lr_multiplier(step, n, 0, 0.3, 0.1),
                         optim.lr_multiplier(step, n, 0, 0.3, 0.1)),
                        ("muon_momentum", factory.muon_momentum(step, n), optim.muon_momentum(step, n)),
                        ("weight_decay_multiplier", factory.weight_decay_multiplier(step, n),
                         optim.weight_decay_multiplier(step, n))):
                    problem = compare.scalars(f"{name}(step={step}, num_iterations={n})", got, want, atol=1e-12)
                    if problem:
                        return problem
        return None

    yield "parameter groups", groups
    yield "Polar Express", polar
    yield "FP8 module filter", fp8_filter
    yield "FP8 fallback context manager", fp8_fallback
    yield "two training steps (every weight)", steps
    yield "LR, momentum and weight-decay schedules", schedules


def example(impl) -> str:
    factory = impl.OptimizerFactory
    model = tiny_gpt()
    names = {id(p): n for n, p in model.named_parameters()}
    lines = ["parameter groups of a 3-layer GPT (width 64):"]
    for g in factory.param_groups(model, **LRS):
        members = [names.get(id(p), "?") for p in g["params"]]
        lines.append(f"  {g['kind']:5s} lr {g['lr']:.4g}  {len(members)} params: {', '.join(members[:3])}"
                     + (" ..." if len(members) > 3 else ""))
    G = torch.randn(32, 64, generator=torch.Generator().manual_seed(0))
    s = torch.linalg.svdvals(factory.polar_express(G))
    lines.append(f"polar_express(randn 32x64): singular values in [{s.min():.3f}, {s.max():.3f}]")
    lines.append("lr_multiplier over 100 steps: "
                 + " ".join(f"{factory.lr_multiplier(t, 100):.2f}" for t in range(0, 101, 10)))
    return "\n".join(lines)
