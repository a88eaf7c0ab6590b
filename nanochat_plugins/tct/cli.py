"""`nanochat-cli workflow …`: workflows sampled from a TCT checkpoint, headless.

    sample --checkpoint PATH [--prompt NAME_OR_PARTIAL] [--unconstrained]   YAML + the validation result
    eval --checkpoint PATH [-n N]          share of schema-valid samples with and without the constraints

Importing this module is cheap (argparse only); the handlers import torch when they run.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from engine.errors import EngineError


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, metavar="PATH",
                   help="a TCT run's checkpoint dir (latest step) or model_XXXXXX.pt file")
    p.add_argument("--prompt", default="", metavar="TEXT",
                   help="a workflow name, a partial workflow (YAML/JSON text, or a .yml/.yaml/.json file)")
    p.add_argument("--max-tokens", type=int, default=512, help="token budget (soft when constrained; default 512)")
    p.add_argument("--temperature", type=float, default=0.8, help="0 is greedy (default 0.8)")
    p.add_argument("--top-k", type=int, default=50, help="0: no limit (default 50)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")


def setup(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="workflow_command", metavar="{sample,eval}", required=True)
    p = sub.add_parser("sample", help="sample one workflow: YAML, then the schema validation result")
    _common(p)
    p.add_argument("--unconstrained", action="store_true", help="sample without the schema mask")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.set_defaults(func=cmd_sample)
    p = sub.add_parser("eval", help="share of schema-valid samples with and without the constraints")
    _common(p)
    p.add_argument("-n", "--samples", type=int, default=10, help="samples each way (default 10)")
    p.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    p.set_defaults(func=cmd_eval, max_tokens=256)


def _prompt(text: str) -> str:
    path = Path(text).expanduser()
    if text and path.suffix in (".yml", ".yaml", ".json") and path.is_file():
        try:
            return path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise EngineError(f"--prompt {text}: unreadable ({e}): pass a UTF-8 workflow file") from None
    return text


def _check(args: argparse.Namespace) -> None:
    if args.max_tokens < 1:
        raise EngineError(f"--max-tokens {args.max_tokens}: must be at least 1")
    if args.temperature < 0:
        raise EngineError(f"--temperature {args.temperature}: must be 0 (greedy) or more")
    if args.top_k < 0:
        raise EngineError(f"--top-k {args.top_k}: must be 0 (no limit) or more")
    if getattr(args, "samples", 1) < 1:
        raise EngineError(f"-n {args.samples}: must be at least 1")
    if args.device not in ("cpu", "cuda") and not args.device.startswith("cuda:"):
        raise EngineError(f"--device {args.device!r}: use cpu or cuda")


def _sample(model, args: argparse.Namespace, prompt: str, seed: int, constrained: bool):  # noqa: ANN001, ANN202
    from engine.tct_sample import sample_workflow

    return sample_workflow(model, prompt, max_tokens=args.max_tokens, temperature=args.temperature,
                           top_k=args.top_k or None, seed=seed, constrained=constrained)


def cmd_sample(args: argparse.Namespace) -> int:
    _check(args)
    prompt = _prompt(args.prompt)
    from engine.tct_sample import load_workflow_model, to_yaml
    from nanochat_plugins.tct.mode import stats_line, validation_lines

    model, _meta = load_workflow_model(args.checkpoint, args.device)
    result = _sample(model, args, prompt, args.seed, not args.unconstrained)
    if args.json:
        print(json.dumps({"workflow": json.loads(result.json), "valid": result.valid, "errors": result.errors,
                          "complete": result.complete, "constrained": result.constrained,
                          "tokens": result.new_tokens, "backtracks": result.backtracks,
                          "seconds": round(result.seconds, 3)}))
    else:
        print(to_yaml(result.json), end="")
        for line in validation_lines(result):
            print(f"# {line}")
        print(f"# {stats_line(result)}")
    return 0 if result.valid else 1


def cmd_eval(args: argparse.Namespace) -> int:
    _check(args)
    prompt = _prompt(args.prompt)
    from engine.tct_sample import load_workflow_model

    model, meta = load_workflow_model(args.checkpoint, args.device)
    figures = {}
    for constrained in (True, False):
        results = [_sample(model, args, prompt, args.seed + i, constrained) for i in range(args.samples)]
        per_token = [r.mask_seconds / max(1, r.sampled + r.finished) * 1000 for r in results]
        figures["constrained" if constrained else "unconstrained"] = {
            "samples": len(results), "valid": sum(r.valid for r in results),
            "complete": sum(r.complete for r in results),
            "mean_tokens": round(statistics.mean(r.new_tokens for r in results), 1),
            "constraint_ms_per_token": round(statistics.median(per_token), 3),
            "seconds_per_sample": round(statistics.median(r.seconds for r in results), 3)}
    if args.json:
        print(json.dumps({"checkpoint": str(args.checkpoint), "step": meta["step"], **figures}))
        return 0
    print(f"checkpoint {args.checkpoint} (step {meta['step']}), {args.samples} samples each way, "
          f"max {args.max_tokens} tokens, temperature {args.temperature}, top-k {args.top_k or 'none'}")
    for name, f in figures.items():
        print(f"{name:>13}: {f['valid']}/{f['samples']} schema-valid ({100 * f['valid'] / f['samples']:.0f}%), "
              f"{f['complete']} complete, {f['mean_tokens']} tokens on average, {f['seconds_per_sample']} s each"
              + (f", constraints {f['constraint_ms_per_token']} ms/token" if name == "constrained" else ""))
    return 0
