"""`wgsl train`, `wgsl generate` and `wgsl eval`: the commands that need a model.

`train` launches the engine's trainer through `nanochat-cli train` (a WGSL prefab, torchrun, the TUI or
--headless progress, checkpoints, resume) with the pairs as its data source; `--config` maps a
wgsl_generation.toml's [model] and [training] onto the prefab. `generate` writes a shader for a prompt
(greedy, beam search, validate-and-retry) and shows its validation and run result. `eval` scores a
checkpoint on a split's prompts.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from nanochat_plugins.wgsl.errors import WgslError

SOURCE = "nanochat_plugins.wgsl.source:make"


def _out(line: str = "") -> None:
    print(line, flush=True)


# ---- train

def toml_overrides(path: str, nproc: int) -> list[str]:
    """A wgsl_generation.toml's [model] and [training] as `--set` values for a WGSL prefab."""
    from nanochat_plugins.wgsl import config, source

    cfg: Any = config.load(path, "generation")
    m, t = cfg.model, cfg.training
    head_dim = m.d_model // m.nhead
    if m.d_model % m.num_layers:
        raise WgslError(f"{path}: model.d_model={m.d_model} is not a multiple of model.num_layers={m.num_layers}: "
                        "the engine sizes its width as depth x aspect ratio; pick values that divide")
    if t.device == "mps":
        raise WgslError(f"{path}: training.device=mps: launches use cpu or cuda; set training.device to auto")
    records = source.load_records(cfg)
    tokens = sum(len(r.prompt) // 3 + len(r.shader) // 2 for r in records if r.split == "train")  # rough
    rows_per_step = t.batch_size * nproc
    steps = max(1, math.ceil(t.num_epochs * tokens / (0.85 * m.max_seq_len) / rows_per_step))
    sets = {"model.depth": m.num_layers, "model.aspect_ratio": m.d_model // m.num_layers,
            "model.head_dim": head_dim, "model.max_seq_len": m.max_seq_len,
            "training.device_batch_size": t.batch_size,
            "training.total_batch_size": t.batch_size * m.max_seq_len * nproc,
            "training.num_iterations": steps, "training.lr_scale": t.lr_scale,
            "training.warmup_iters": min(t.warmup_steps, steps), "training.seed": t.seed,
            "telemetry.eval_every": t.eval_every, "telemetry.save_every": t.save_every,
            "hardware.nproc_per_node": nproc,
            "data.data_source": SOURCE,
            "data.data_source_options": f"config={Path(path).resolve()}"}
    if t.device != "auto":
        sets["hardware.device"] = t.device
    return [f"{k}={v}" for k, v in sets.items()]


def cmd_train(args: argparse.Namespace) -> int:
    sets = toml_overrides(args.config, args.nproc) if args.config else []
    sets += args.set or []
    cmd = [sys.executable, "-m", "nanochat_cli", "train", "--prefab", args.prefab]
    if sets:
        cmd += ["--set", *sets]
    if args.name:
        cmd += ["--name", args.name]
    if args.resume:
        cmd.append("--resume")
    if args.headless:
        cmd.append("--headless")
    if args.dry_run:
        _out(" ".join(cmd[1:]))
        return 0
    return subprocess.call(cmd)


# ---- generate

def _model(args: argparse.Namespace) -> Any:
    from nanochat_plugins.wgsl.decode import ShaderModel

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    return ShaderModel.load(args.checkpoint, args.step, args.device)


def cmd_generate(args: argparse.Namespace) -> int:
    from nanochat_plugins.wgsl import dataset
    from nanochat_plugins.wgsl.highlight import highlight
    from nanochat_plugins.wgsl.sampling import check_run, generate
    from nanochat_plugins.wgsl.worker import ShaderWorker

    if not args.prompt.strip() and not args.case:
        raise WgslError("--prompt: empty: describe the shader, e.g. --prompt 'add two arrays of floats'")
    record = dataset.find(args.case, args.dataset or dataset.BUNDLED) if args.case else None
    prompt = args.prompt or record.prompt  # type: ignore[union-attr]
    sm = _model(args)
    g = generate(sm, prompt, args.beam, args.retries, args.temperature, args.seed, args.max_new_tokens)
    a = g.best
    color = sys.stdout.isatty() and not args.no_color and not os.environ.get("NO_COLOR")
    _out(f"// {prompt}")
    _out(highlight(a.shader, color).rstrip("\n"))
    tries = f" after {len(g.attempts)} tries" if len(g.attempts) > 1 else ""
    verdict = "valid" if a.valid else "no adapter" if a.valid is None else "INVALID"
    _out(f"-- validation: {verdict} ({a.how}{tries}): {a.message}")
    code = 0 if a.valid else 1
    if a.valid:
        rc = check_run(ShaderWorker.shared(args.timeout), a.shader, record)
        what = "correct" if rc.correct else "WRONG" if rc.correct is False else ("ran" if rc.ok else "FAILED")
        _out(f"-- run: {what}: {rc.message}")
        code = 0 if rc.ok else 1
    _out(f"-- {g.seconds:.1f} s, checkpoint {sm.meta.get('checkpoint')} step {sm.meta.get('step')}")
    if args.output:
        from engine.shared import atomic_write

        try:
            atomic_write(Path(args.output), a.shader)
        except OSError as e:
            raise WgslError(f"--output {args.output}: cannot write ({e.strerror}): choose another path") from None
        _out(f"wrote {args.output}")
    return code


# ---- eval

def evaluate(sm: Any, records: list, beam: int, retries: int, timeout: float, max_new: int = 0,
             progress: Any = None) -> dict:
    """Validity and correctness of `sm` on `records` with one decoding setting; timings included."""
    from nanochat_plugins.wgsl.sampling import check_run, generate
    from nanochat_plugins.wgsl.worker import ShaderWorker

    valid = correct = 0
    val_s, run_s, gen_s, rows = [], [], [], []
    with ShaderWorker(timeout) as worker:
        try:
            worker.warm()
        except WgslError:
            pass  # no adapter: each check says so
        for i, rec in enumerate(records):
            g = generate(sm, rec.prompt, beam, retries, seed=i, max_new=max_new)
            a = g.best
            gen_s.append(g.seconds)
            val_s += [x.validate_s for x in g.attempts if x.valid is not None]
            ok = None
            if a.valid:
                valid += 1
                rc = check_run(worker, a.shader, rec)
                run_s.append(rc.seconds)
                ok = bool(rc.correct)
                correct += ok
            rows.append({"id": rec.id, "valid": a.valid, "correct": ok, "tries": len(g.attempts),
                         "validation": a.message})
            if progress:
                progress(f"{rec.id}: {'valid' if a.valid else 'invalid'}"
                         f"{', correct' if ok else ''} ({len(g.attempts)} tries, {g.seconds:.1f} s)")
    n = len(records)

    def med(xs: list[float]) -> float | None:
        return statistics.median(xs) if xs else None

    return {"n": n, "valid": valid, "correct": correct, "validity": valid / n if n else 0.0,
            "correctness": correct / n if n else 0.0, "median_validate_s": med(val_s), "median_run_s": med(run_s),
            "median_generate_s": med(gen_s), "rows": rows}


def ms(v: float | None) -> str:
    return "-" if v is None else f"{v * 1e3:.1f} ms"


def parse_modes(text: str) -> list[tuple[str, int, int]]:
    """'greedy,beam4,retry8' -> [(name, beam, retries)]."""
    out = []
    for item in text.split(","):
        item = item.strip()
        try:
            if item == "greedy":
                out.append((item, 1, 1))
            elif item.startswith("beam"):
                out.append((item, int(item[4:]), 1))
            elif item.startswith("retry"):
                out.append((item, 1, int(item[5:])))
            else:
                raise ValueError
        except ValueError:
            raise WgslError(f"--modes {item!r}: use greedy, beamN or retryN, comma-separated "
                            "(e.g. greedy,beam4,retry8)") from None
    return out


def cmd_eval(args: argparse.Namespace) -> int:
    from nanochat_plugins.wgsl import dataset

    records = dataset.load(args.dataset or dataset.BUNDLED, [args.split])
    if args.limit:
        from nanochat_plugins.wgsl.sampling import spread

        records = spread(records, args.limit)
    sm = _model(args)
    modes = parse_modes(args.modes)
    results = {}
    _out(f"checkpoint {sm.meta.get('checkpoint')} step {sm.meta.get('step')}: {len(records)} {args.split} prompts "
         f"({len({r.family for r in records})} families)")
    for name, beam, retries in modes:
        r = evaluate(sm, records, beam, retries, args.timeout, args.max_new_tokens,
                     (lambda line: print(f"  {line}", file=sys.stderr, flush=True)) if args.verbose else None)
        results[name] = r
        _out(f"{name:<8} validity {r['valid']}/{r['n']} ({100 * r['validity']:.1f}%)  correctness "
             f"{r['correct']}/{r['n']} ({100 * r['correctness']:.1f}%)  per shader: generate "
             f"{r['median_generate_s']:.2f} s, validate {ms(r['median_validate_s'])}, run {ms(r['median_run_s'])}")
    if args.json:
        from engine.shared import atomic_write

        atomic_write(Path(args.json), json.dumps({"checkpoint": sm.meta.get("checkpoint"), "step": sm.meta.get("step"),
                                                  "split": args.split, "results": results}, indent=1))
        _out(f"wrote {args.json}")
    return 0


# ---- parsers

def _model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, metavar="PATH",
                   help="a WGSL run's checkpoint folder (e.g. ~/.cache/nanochat/base_checkpoints/wgsl-cpu) or "
                        "model_*.pt")
    p.add_argument("--step", type=int, help="checkpoint step (default: the newest)")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds a shader may run (default 10)")
    p.add_argument("--max-new-tokens", type=int, default=0, help="most tokens per shader (0 = what the context "
                                                                 "leaves)")


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("train", parents=[common], help="train the engine's GPT on the pairs (nanochat-cli train "
                                                       "with a WGSL prefab)")
    p.add_argument("--prefab", default="wgsl-cpu", help="wgsl-cpu (minutes on a CPU) or wgsl-gpu (default "
                                                        "wgsl-cpu)")
    p.add_argument("--config", metavar="TOML", help="a wgsl_generation.toml whose [model], [training], [tokenizer] "
                                                    "and [dataset] override the prefab")
    p.add_argument("--nproc", type=int, default=2, help="processes with --config (default 2)")
    p.add_argument("--set", nargs="+", action="extend", metavar="KEY=VALUE", help="more config values, as for "
                                                                                   "nanochat-cli train")
    p.add_argument("--name", help="run name")
    p.add_argument("--resume", action="store_true", help="continue the run's latest checkpoint")
    p.add_argument("--headless", action="store_true", help="no TUI: progress lines")
    p.add_argument("--dry-run", action="store_true", help="print the nanochat-cli command instead of running it")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("generate", parents=[common], help="write a shader for a prompt; validate and run it")
    p.add_argument("--prompt", default="", help="what the shader should compute")
    p.add_argument("--case", metavar="ID", help="use a dataset pair's prompt and check the run against its "
                                                "reference (e.g. chromatic.gamma-000)")
    p.add_argument("--dataset", metavar="DIR", help="the dataset --case looks in (default: the shipped one)")
    p.add_argument("--beam", type=int, default=1, help="beams (default 1: greedy)")
    p.add_argument("--retries", type=int, default=1, help="candidates tried until one validates (default 1)")
    p.add_argument("--temperature", type=float, default=0.8, help="for the sampled retries (default 0.8)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sampled retries")
    p.add_argument("--output", "-o", metavar="FILE", help="write the shader here")
    p.add_argument("--no-color", action="store_true", help="no syntax colours")
    _model_args(p)
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("eval", parents=[common], help="validity and correctness of a checkpoint on a split")
    p.add_argument("--split", default="test", choices=["train", "val", "test"], help="default: test")
    p.add_argument("--dataset", metavar="DIR", help="default: the shipped dataset")
    p.add_argument("--modes", default="greedy,beam4,retry8", help="decoding settings (default greedy,beam4,retry8)")
    p.add_argument("--limit", type=int, default=0, help="at most this many prompts, spread over the families")
    p.add_argument("--json", metavar="FILE", help="write every result here")
    p.add_argument("-v", "--verbose", action="store_true", help="one line per prompt")
    _model_args(p)
    p.set_defaults(func=cmd_eval)
