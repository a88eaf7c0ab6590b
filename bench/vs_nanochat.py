"""The engine vs a stock nanochat checkout: training-step tokens/s, loss trajectories, peak RSS, KV-cache decode.

    python bench/vs_nanochat.py --nanochat /path/to/nanochat [--patterns L SSSL] [--steps 20] [--threads N]
    python bench/vs_nanochat.py                     # no checkout: measures the engine alone
    python bench/vs_nanochat.py --nanochat PATH --decode-only [--checkpoint DIR]   # decode only

One config for both (depth 4, dim 256, head_dim 64, T 512, B 4, vocab 32768, fp32, the same threads); one
set of initial weights, copied into both. Each model lives in its own worker process (so its peak RSS is
its own) and the workers take turns: round r runs `--round-steps` training steps (forward + backward + its
own MuonAdamW step) in one, then the other, alternating who goes first, so load from other processes hits
both alike. Round 0 is warm-up (nanochat compiles its optimizer there) and is left out of the medians.

Loss trajectories: the same `--steps` batches (a Zipf unigram stream where every odd token follows its
predecessor through a fixed map, so there is something to learn) from the same weights, the same lrs with
nanochat's 40-step linear warm-up (at full lr from step 0 this run blows up by step 5 and any two
trajectories part by whole nats, which tests nothing).
Stock nanochat's MuonAdamW is not ours (it adds NorMuon variance reduction, row equilibration and norm
snapping), so its trajectory is shown but cannot match to float tolerance. The float comparison is
against nanochat's model driven by our optimizer (same math, nanochat's code for the model), with the
tolerance derived from that run itself: see `tolerance()`.

Decode: greedy KV-cache generation with each side's Engine on the same weights (ours after the trajectory
run) and prompt; tokens must be identical. Three runs interleave per round: ours as a user gets it
(speculative, engine/speculative.py), ours one token per forward, nanochat; with the fast path's guesses kept
and tokens per forward, on the bench's prompt, on a prompt of distinct ids, and on noisy initial weights
(output that does not repeat, so drafts miss). `--decode-only` skips the training comparison;
`--checkpoint DIR` adds a trained checkpoint (e.g. cpu-tiny) with text prompts.
Nothing from the nanochat checkout is copied here: it is imported at run time from the path given.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# the user's own setting, before `engine` sets its default in this process: nanochat's worker runs with this
USER_OMP_WAIT_POLICY = os.environ.get("OMP_WAIT_POLICY")

DEPTH, DIM, HEAD_DIM, SEQ, BATCH, VOCAB = 4, 256, 64, 512, 4, 32768
LRS = dict(embedding_lr=0.3, unembedding_lr=0.008, matrix_lr=0.02, scalar_lr=0.5, weight_decay=0.2)
PROMPT_TOKENS = 32
WARMUP = 40


def model_config(pattern: str) -> dict:
    return dict(sequence_len=SEQ, vocab_size=VOCAB, n_layer=DEPTH, n_head=DIM // HEAD_DIM,
                n_kv_head=DIM // HEAD_DIM, n_embd=DIM, window_pattern=pattern)


def lr_multiplier(step: int) -> float:
    """Linear warm-up over WARMUP steps (nanochat's default length); Muon momentum stays at its 0.95."""
    return min(1.0, (step + 1) / WARMUP)


def make_batches(steps: int, seed: int = 1234):
    """`steps` (x, y) pairs [BATCH, SEQ]: Zipf-distributed tokens, every odd position the image of the one before."""
    import torch

    g = torch.Generator().manual_seed(seed)
    probs = 1.0 / torch.arange(1, VOCAB + 1, dtype=torch.float64)
    perm, succ = torch.randperm(VOCAB, generator=g), torch.randperm(VOCAB, generator=g)
    out = []
    for _ in range(steps):
        seq = perm[torch.multinomial(probs, BATCH * (SEQ + 1), replacement=True, generator=g)].view(BATCH, SEQ + 1)
        seq[:, 1::2] = succ[seq[:, 0:-1:2]]
        out.append((seq[:, :-1].contiguous(), seq[:, 1:].contiguous()))
    return out


class BenchTokenizer:
    """Just what both Engines ask of a tokenizer; the special ids lie past the vocab, so greedy decoding never
    samples one: no early stop, no tool call."""

    names = ["<|bos|>", "<|user_start|>", "<|user_end|>", "<|assistant_start|>", "<|assistant_end|>",
             "<|python_start|>", "<|python_end|>", "<|output_start|>", "<|output_end|>"]

    def encode_special(self, name: str) -> int:
        return VOCAB + 1 + self.names.index(name)

    def get_bos_token_id(self) -> int:
        return self.encode_special("<|bos|>")

    def encode(self, text, *args, **kwargs):
        return [ord(c) % VOCAB for c in text]

    def decode(self, ids) -> str:
        return " ".join(map(str, ids))


# ---- worker processes ----------------------------------------------------------------------------------------

class Side:
    """One implementation's model, optimizer and engine inside a worker process."""

    def __init__(self, kind: str, nanochat: str | None, threads: int, omp_wait_policy: str | None):
        # each side's OpenMP settings go in before torch loads OpenMP: ours are the engine's own defaults
        # (engine/__init__.py), nanochat's whatever the user had (or what --nanochat-omp-policy says)
        os.environ.pop("OMP_WAIT_POLICY", None)
        if omp_wait_policy:
            os.environ["OMP_WAIT_POLICY"] = omp_wait_policy
        if kind == "ours":
            import engine  # noqa: F401
        import torch

        torch.set_num_threads(threads)
        self.kind, self.torch = kind, torch
        if kind == "nanochat":
            sys.path.insert(0, nanochat)
            from nanochat.engine import Engine
            from nanochat.gpt import GPT, GPTConfig
        else:
            from engine.engine import Engine
            from engine.gpt import GPT, GPTConfig
        self.GPT, self.GPTConfig, self.Engine = GPT, GPTConfig, Engine

    def build(self, pattern: str, weights: str, dtype: str = "float32", config: dict | None = None) -> None:
        torch = self.torch
        self.model = self.GPT(self.GPTConfig(**(config or model_config(pattern))))
        if self.kind == "nanochat":
            self.model.init_weights()  # rotary buffers; the weights are replaced next
        self.model.load_state_dict(torch.load(weights, map_location="cpu"), strict=True)
        self.model.to(getattr(torch, dtype))
        self.optimizer = None

    def omp_wait_policy(self) -> str | None:
        return os.environ.get("OMP_WAIT_POLICY")

    def optimizer_ours(self) -> None:
        from engine.optim import build_optimizer

        self.optimizer = build_optimizer(self.model, **LRS)

    def optimizer_own(self) -> None:
        if self.kind == "nanochat":
            self.optimizer = self.model.setup_optimizer(**LRS)
        else:
            self.optimizer_ours()

    def steps(self, batches, lo: int, hi: int) -> tuple[float, list[float]]:
        losses = []
        t0 = time.perf_counter()
        for step in range(lo, hi):
            x, y = batches[step]
            for group in self.optimizer.param_groups:  # the same linear warm-up on both sides
                group["lr"] = group["initial_lr"] * lr_multiplier(step)
            loss = self.model(x, y)
            loss.backward()
            self.optimizer.step()
            self.model.zero_grad(set_to_none=True)
            losses.append(loss.item())
        return time.perf_counter() - t0, losses

    def save(self, path: str) -> None:
        self.torch.save(self.model.state_dict(), path)

    def decode(self, prompt: list[int], max_tokens: int, speculative: bool = True) -> tuple[float, list[int], dict]:
        """Greedy generation with the side's Engine: (seconds, tokens, the engine's stats: ours only)."""
        kw = {"speculative": speculative} if self.kind == "ours" else {}
        engine = self.Engine(self.model, BenchTokenizer(), **kw)
        self.model.eval()
        t0 = time.perf_counter()
        out = [col[0] for col, _ in engine.generate(prompt, num_samples=1, max_tokens=max_tokens, temperature=0.0)]
        return time.perf_counter() - t0, out, dict(getattr(engine, "stats", {}))


def worker(kind: str, nanochat: str | None, threads: int, omp_wait_policy: str | None, conn) -> None:
    import contextlib
    import io

    quiet = io.StringIO()  # nanochat prints its lr scaling and padding notes; keep the table readable
    with contextlib.redirect_stdout(quiet):
        side = Side(kind, nanochat, threads, omp_wait_policy)
    while True:
        try:
            cmd, args = conn.recv()
        except EOFError:  # the parent is gone
            return
        if cmd == "quit":
            conn.send(None)
            return
        try:
            with contextlib.redirect_stdout(quiet):
                if cmd == "rss":
                    result = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
                else:
                    result = getattr(side, cmd)(*args)
            conn.send(("ok", result))
        except Exception as e:  # report, keep the worker alive for a clean shutdown
            import traceback

            conn.send(("error", f"{kind}.{cmd}: {type(e).__name__}: {e}\n{traceback.format_exc()}"))


class Worker:
    def __init__(self, kind: str, nanochat: str | None, threads: int, omp_wait_policy: str | None):
        ctx = mp.get_context("spawn")
        self.kind = kind
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=worker, args=(kind, nanochat, threads, omp_wait_policy, child), daemon=True)
        self.proc.start()

    def __call__(self, cmd: str, *args):
        self.conn.send((cmd, args))
        status, result = self.conn.recv()
        if status != "ok":
            raise SystemExit(result)
        return result

    def close(self) -> None:
        self.conn.send(("quit", ()))
        self.conn.recv()
        self.proc.join(timeout=30)


# ---- reporting ------------------------------------------------------------------------------------------------

def tolerance(ref: list[float], perturbed: list[float], loss0: float) -> list[float]:
    """Per-step float tolerance for two float32 implementations of the same math.

    `perturbed` is the reference trajectory restarted from weights moved by one float32 rounding (each weight
    times 1 + u·ε, u uniform in [-1, 1]): the gap it opens is how far this training run carries a difference
    of one rounding. It is large here: at nanochat's init several scalar gradients are pure rounding noise
    and Adam turns noise into full-size steps of either sign, so one rounding moves the step-1 loss by ~1e-3.
    Two implementations that round differently are another draw of the same process, so we allow 4x the
    envelope of the measured gap (its running max: a single step can cross by chance; 4x because one
    perturbed run is a single sample of that spread), floored at 16 roundings of the initial loss for the
    steps before any divergence.
    """
    import torch

    eps = torch.finfo(torch.float32).eps
    env, out = 0.0, []
    for a, b in zip(ref, perturbed, strict=True):
        env = max(env, abs(a - b))
        out.append(max(4 * env, 16 * eps * loss0))
    return out


def fmt_rate(x: float) -> str:
    return f"{x:8.0f}"


def train_compare(pattern: str, args, weights: str, batches, tmp: Path) -> dict:
    tokens_per_step = BATCH * SEQ
    sides = {"ours": Worker("ours", None, args.threads, USER_OMP_WAIT_POLICY)}
    if args.nanochat:
        sides["nanochat"] = Worker("nanochat", args.nanochat, args.threads,
                                   args.nanochat_omp_policy or USER_OMP_WAIT_POLICY)
    for w in sides.values():
        w("build", pattern, weights)
        w("optimizer_own")
    names = list(sides)
    rates = {n: [] for n in names}
    losses = {n: [] for n in names}
    rounds = args.steps // args.round_steps
    print(f"\n== pattern {pattern}: depth {DEPTH}, dim {DIM}, T {SEQ}, B {BATCH}, vocab {VOCAB}, fp32, "
          f"{args.threads} threads, {args.round_steps} steps per round")
    header = "round " + "".join(f"{n + ' tok/s':>16}" for n in names) + ("     ratio" if len(names) > 1 else "")
    print(header)
    for r in range(rounds):
        order = names if r % 2 == 0 else names[::-1]
        lo, hi = r * args.round_steps, (r + 1) * args.round_steps
        got = {}
        for n in order:
            dt, ls = sides[n]("steps", batches, lo, hi)
            got[n] = (hi - lo) * tokens_per_step / dt
            losses[n] += ls
        if r > 0:
            for n in names:
                rates[n].append(got[n])
        ratio = f"{got['ours'] / got['nanochat']:10.2f}" if len(names) > 1 else ""
        print(f"{r:>4}{'*' if r == 0 else ' '} " + "".join(f"{got[n]:16.0f}" for n in names) + ratio)
    med = {n: statistics.median(rates[n]) for n in names}
    line = "median " + "".join(f"{med[n]:16.0f}" for n in names)
    result = {"pattern": pattern, "median": med, "rates": rates, "losses": losses}
    if len(names) > 1:
        ratios = [a / b for a, b in zip(rates["ours"], rates["nanochat"], strict=True)]
        result["ratio"] = med["ours"] / med["nanochat"]
        result["ratio_spread"] = (min(ratios), max(ratios))
        line += f"{result['ratio']:10.2f}   (per-round ratios {min(ratios):.2f}–{max(ratios):.2f})"
    print(line + "\n(* warm-up round, not in the medians)")
    result["rss"] = {n: sides[n]("rss") for n in names}
    print("peak RSS  " + "  ".join(f"{n} {result['rss'][n] / 2**20:.0f} MiB" for n in names))

    ckpt = str(tmp / f"trained-{pattern}.pt")
    sides["ours"]("save", ckpt)
    if "nanochat" in sides:
        nano = sides["nanochat"]
        # the same math as ours: nanochat's model, our optimizer; and again from weights one rounding away
        nano("build", pattern, weights)
        nano("optimizer_ours")
        _, ref = nano("steps", batches, 0, args.steps)
        nano("build", pattern, str(tmp / "perturbed.pt"))
        nano("optimizer_ours")
        _, perturbed = nano("steps", batches, 0, args.steps)
        tol = tolerance(ref, perturbed, ref[0])
        result.update(ref=ref, perturbed=perturbed, tol=tol)
        print("step        ours   nanochat model+our optim   |diff|   tolerance   stock nanochat (own optim)")
        ok = True
        for i, (a, b, t, s) in enumerate(zip(losses["ours"], ref, tol, losses["nanochat"], strict=True)):
            ok &= abs(a - b) <= t
            print(f"{i:>4} {a:11.6f} {b:26.6f} {abs(a - b):8.1e} {t:11.1e} {s:28.6f}")
        result["trajectory_ok"] = ok
        print(f"trajectory: ours vs nanochat's model with our optimizer {'MATCH' if ok else 'MISMATCH'} "
              f"within tolerance at every step; stock nanochat differs by up to "
              f"{max(abs(a - b) for a, b in zip(losses['ours'], losses['nanochat'], strict=True)):.3g} "
              "(its optimizer is another variant)")
    else:
        print("losses: " + " ".join(f"{v:.4f}" for v in losses["ours"]))

    # decode: both engines on ours' trained weights, same prompts, greedy
    for w in sides.values():
        w("build", pattern, ckpt)
    result["decode"] = {name: decode_compare(sides, prompt, args) for name, prompt in decode_prompts(batches)}
    result["decode"]["noisy weights"] = decode_noisy(sides, pattern, weights, batches, tmp, args)
    for w in sides.values():
        w.close()
    return result


def decode_prompts(batches) -> list[tuple[str, list[int]]]:
    """The bench's prompt (the start of a training sequence) and one of distinct uniform-random ids, which gives
    prompt lookup nothing to copy: where drafts miss, what is left is the plain path's speed."""
    import torch

    g = torch.Generator().manual_seed(11)
    return [("bench", batches[0][0][0, :PROMPT_TOKENS].tolist()),
            ("distinct", torch.randperm(VOCAB, generator=g)[:PROMPT_TOKENS].tolist())]


def decode_compare(sides: dict, prompt: list[int], args) -> dict:
    """Interleaved greedy decode rounds: ours (default engine: speculative), ours one token per forward, nanochat.
    Round 0 is warm-up. Prints tok/s per round, medians, ratios, whether tokens match, and the fast path's
    acceptance: guesses kept / offered and tokens per decode forward."""
    runs = [("ours", "ours", True), ("ours-1tok", "ours", False)]
    if "nanochat" in sides:
        runs.append(("nanochat", "nanochat", True))
    names = [r[0] for r in runs]
    rates: dict[str, list[float]] = {n: [] for n in names}
    outs, stats = {}, {}
    print(f"decode (greedy, KV cache, prompt {len(prompt)} tokens, {args.decode_tokens} new): tok/s per round")
    print("round " + "".join(f"{n:>12}" for n in names))
    for r in range(args.decode_rounds + 1):
        got = {}
        for name, side, spec in (runs if r % 2 == 0 else runs[::-1]):
            dt, toks, st = sides[side]("decode", prompt, args.decode_tokens, spec)
            outs[name], got[name] = toks, len(toks) / dt
            stats[name] = st
            if r > 0:
                rates[name].append(got[name])
        print(f"{r:>4}{'*' if r == 0 else ' '} " + "".join(f"{got[n]:12.0f}" for n in names))
    med = {n: statistics.median(rates[n]) for n in names}
    print("median " + "".join(f"{med[n]:12.0f}" for n in names) + "   (* warm-up, not in the medians)")
    st = stats["ours"]
    res = {"median": med, "rates": rates, "stats": st,
           "same_1tok": outs["ours"] == outs["ours-1tok"], "tokens_per_forward": st["tokens"] / max(1, st["forwards"]),
           "acceptance": st["accepted"] / max(1, st["guesses"]), "distinct_out": len(set(outs["ours"]))}
    line = (f"fast path: {st['blocks']} blocks, guesses kept {st['accepted']}/{st['guesses']} "
            f"({100 * res['acceptance']:.0f}%), {res['tokens_per_forward']:.2f} tokens per decode forward; "
            f"{res['distinct_out']} distinct ids in the output; tokens == one-token path: "
            f"{'yes' if res['same_1tok'] else 'NO'}; ours/ours-1tok {med['ours'] / med['ours-1tok']:.2f}")
    if "nanochat" in sides:
        res["ratio"], res["same"] = med["ours"] / med["nanochat"], outs["ours"] == outs["nanochat"]
        ratios = [a / b for a, b in zip(rates["ours"], rates["nanochat"], strict=True)]
        line += (f"\nours/nanochat {res['ratio']:.2f} (per round {min(ratios):.2f}–{max(ratios):.2f}), "
                 f"ours-1tok/nanochat {med['ours-1tok'] / med['nanochat']:.2f}; "
                 f"tokens identical to nanochat's: {'yes' if res['same'] else 'NO'}")
    print(line)
    return res


def decode_noisy(sides: dict, pattern: str, weights: str, batches, tmp: Path, args) -> dict:
    """The trained weights loop on a few ids, so drafts hit; the initial weights plus noise write output that does
    not repeat itself: the speed where drafts miss."""
    import torch

    g = torch.Generator().manual_seed(3)
    noisy = str(tmp / f"noisy-{pattern}.pt")
    torch.save({k: v + 0.02 * torch.randn(v.shape, generator=g) for k, v in torch.load(weights).items()}, noisy)
    print("-- the initial weights plus N(0, 0.02) noise (output that does not repeat: drafts miss)")
    for w in sides.values():
        w("build", pattern, noisy)
    return decode_compare(sides, decode_prompts(batches)[1][1], args)


def decode_only(pattern: str, args, weights: str, batches, tmp: Path) -> dict:
    """--decode-only: train ours the same `--steps` steps from the same weights (untimed), then the decode rounds."""
    sides = {"ours": Worker("ours", None, args.threads, USER_OMP_WAIT_POLICY)}
    if args.nanochat:
        sides["nanochat"] = Worker("nanochat", args.nanochat, args.threads,
                                   args.nanochat_omp_policy or USER_OMP_WAIT_POLICY)
    ours = sides["ours"]
    ours("build", pattern, weights)
    ours("optimizer_own")
    ours("steps", batches, 0, args.steps)
    ckpt = str(tmp / f"trained-{pattern}.pt")
    ours("save", ckpt)
    print(f"\n== pattern {pattern}: depth {DEPTH}, dim {DIM}, vocab {VOCAB}, fp32, {args.threads} threads, "
          f"weights after {args.steps} training steps")
    for w in sides.values():
        w("build", pattern, ckpt)
    result = {"pattern": pattern,
              "decode": {name: decode_compare(sides, prompt, args) for name, prompt in decode_prompts(batches)}}
    result["decode"]["noisy weights"] = decode_noisy(sides, pattern, weights, batches, tmp, args)
    for w in sides.values():
        w.close()
    return result


CHECKPOINT_PROMPTS = [  # for --checkpoint: code much like the embedded corpus, and plain prose
    ("code", "class Record:\n    def __init__(self, name, value):\n        self.name = name\n"),
    ("prose", "On Tuesday the committee met to discuss the budget, but most members wanted to talk about"),
]


def decode_checkpoint(args, tmp: Path) -> dict:
    """--checkpoint: both engines on a trained checkpoint's config and weights, text prompts through its tokenizer."""
    import torch

    from engine.inference_load import load_model

    model, tok, meta = load_model(args.checkpoint)
    weights = str(tmp / "checkpoint.pt")
    torch.save(model.state_dict(), weights)
    config = model.config.to_dict()
    print(f"\n== checkpoint {args.checkpoint} (step {meta['step']}): {config}, fp32, {args.threads} threads")
    sides = {"ours": Worker("ours", None, args.threads, USER_OMP_WAIT_POLICY)}
    if args.nanochat:
        sides["nanochat"] = Worker("nanochat", args.nanochat, args.threads,
                                   args.nanochat_omp_policy or USER_OMP_WAIT_POLICY)
    for w in sides.values():
        w("build", "", weights, "float32", config)
    bos = tok.get_bos_token_id()
    result = {"pattern": f"checkpoint {Path(args.checkpoint).name}",
              "decode": {name: decode_compare(sides, [bos, *tok.encode(text)], args)
                         for name, text in CHECKPOINT_PROMPTS}}
    for w in sides.values():
        w.close()
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nanochat", help="path to a stock nanochat checkout (the folder holding nanochat/)")
    p.add_argument("--patterns", nargs="+", default=["L", "SSSL"])
    p.add_argument("--steps", type=int, default=20, help="training steps per model (the trajectory length)")
    p.add_argument("--round-steps", type=int, default=2, help="steps per timed round")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--decode-tokens", type=int, default=200)
    p.add_argument("--decode-rounds", type=int, default=5)
    p.add_argument("--decode-only", action="store_true", help="skip the timed training comparison and trajectories")
    p.add_argument("--checkpoint", help="also decode with this trained checkpoint (dir or model_*.pt), e.g. a "
                                        "cpu-tiny run's base_checkpoints/cpu-tiny")
    p.add_argument("--patterns-skip", action="store_true", help="measure only --checkpoint, no random-init config")
    p.add_argument("--nanochat-omp-policy", choices=["PASSIVE", "ACTIVE"],
                   help="give nanochat's worker this OMP_WAIT_POLICY (default: the environment's, as a user of "
                        "stock nanochat would have; the engine sets PASSIVE for itself unless the environment says)")
    a = p.parse_args()
    if a.nanochat and not (Path(a.nanochat) / "nanochat" / "gpt.py").exists():
        raise SystemExit(f"--nanochat {a.nanochat}: no nanochat/gpt.py there: pass the checkout's root folder")
    if a.steps % a.round_steps or a.steps // a.round_steps < 2:
        raise SystemExit("--steps must be a multiple of --round-steps, at least two rounds")
    if not a.nanochat:
        print("no --nanochat checkout given: measuring the engine alone (no ratios, no trajectory comparison)")

    import torch

    from engine.gpt import GPT, GPTConfig

    results = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        batches = make_batches(a.steps)
        if a.checkpoint:
            results.append(decode_checkpoint(a, tmp))
        for pattern in ([] if a.patterns_skip else a.patterns):
            torch.manual_seed(0)
            model = GPT(GPTConfig(**model_config(pattern)))
            model.init_weights()
            weights = str(tmp / "init.pt")
            torch.save(model.state_dict(), weights)
            g = torch.Generator().manual_seed(7)
            eps = torch.finfo(torch.float32).eps
            torch.save({k: v * (1 + eps * (2 * torch.rand(v.shape, generator=g) - 1))
                        for k, v in model.state_dict().items()}, tmp / "perturbed.pt")
            del model
            results.append((decode_only if a.decode_only else train_compare)(pattern, a, weights, batches, tmp))

    print("\n== summary")
    for r in results:
        line = f"{r['pattern']:>5}:" + (f" train ours {r['median']['ours']:.0f} tok/s" if "median" in r else "")
        if "ratio" in r:
            line += (f", nanochat {r['median']['nanochat']:.0f} tok/s, ratio {r['ratio']:.2f} "
                     f"[{r['ratio_spread'][0]:.2f}–{r['ratio_spread'][1]:.2f}]"
                     f"; peak RSS {r['rss']['ours'] / 2**20:.0f} vs {r['rss']['nanochat'] / 2**20:.0f} MiB"
                     f"; trajectory {'ok' if r['trajectory_ok'] else 'MISMATCH'}")
        for name, d in r["decode"].items():
            line += (f"\n       decode, {name} prompt: ours {d['median']['ours']:.0f} tok/s "
                     f"({d['tokens_per_forward']:.2f} tokens/forward, {100 * d['acceptance']:.0f}% of guesses kept)")
            if "ratio" in d:
                line += (f", nanochat {d['median']['nanochat']:.0f}, ratio {d['ratio']:.2f}"
                         f" (tokens {'identical' if d['same'] else 'DIFFER'})")
        print(line)


if __name__ == "__main__":
    main()
