"""Time per WGSL validation (naga, through wgpu) and per run (compile, dispatch, read back, compare with numpy).

    python bench/wgsl_bench.py [--limit 760] [--every 1] [--checkpoint CKPT [--modes greedy,beam4,retry8]]

Over the shipped dataset's shaders (all template families): the adapter's start-up, then the median and
p90 of validating each shader, of validating a broken copy of it (an unknown identifier planted in its last
statement), of running it on its test buffers, and of lexing + encoding it with the WGSL vocabulary. The
CPU time of the whole pass is printed too: on a busy machine the wall clock partly measures waiting for a core.

With --checkpoint (a WGSL training run's checkpoint folder), the trained model is then scored on the held-out
test families for each decoding setting: validity (naga accepts the shader), functional correctness (its run
matches the numpy reference), and the median time to generate, validate and run one shader (runs go through
the worker process, as `wgsl run` and generation do).

A run's time is mostly lavapipe compiling the pipeline with LLVM; Mesa caches compiled shaders on disk
(~/.cache/mesa_shader_cache), so a second pass is much faster. MESA_SHADER_CACHE_DISABLE=true times a cold one.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nanochat_plugins.wgsl import dataset, gpu, templates  # noqa: E402  (after the path setup)
from nanochat_plugins.wgsl.runner import run_case  # noqa: E402
from nanochat_plugins.wgsl.validate import validate_source  # noqa: E402
from nanochat_plugins.wgsl.vocab import WgslVocab  # noqa: E402
from nanochat_plugins.wgsl.worker import ShaderWorker  # noqa: E402


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def stats(name: str, seconds: list[float], unit: float = 1e3, label: str = "ms") -> None:
    s = sorted(seconds)
    p90 = s[min(len(s) - 1, int(0.9 * len(s)))]
    print(f"{name:<28} median {statistics.median(s) * unit:8.3f} {label}   p90 {p90 * unit:8.3f} {label}   "
          f"n={len(s)}")


def broken(shader: str) -> str:
    """The shader with its last assignment's right-hand side replaced by an unknown identifier."""
    lines = shader.rstrip("\n").splitlines()
    for k in range(len(lines) - 1, -1, -1):
        if " = " in lines[k] and lines[k].rstrip().endswith(";"):
            head = lines[k].split(" = ")[0]
            lines[k] = f"{head} = undefined_value;"
            return "\n".join(lines) + "\n"
    return shader + "fn broken() { undefined_value; }\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=0, help="shaders to time (default: all)")
    ap.add_argument("--every", type=int, default=1, help="take every N-th record (spreads a small --limit "
                                                        "over the families)")
    ap.add_argument("--checkpoint", help="also score this WGSL checkpoint on the test split")
    ap.add_argument("--modes", default="greedy,beam4,retry8", help="decoding settings for --checkpoint")
    ap.add_argument("--split", default="test", help="split to score --checkpoint on (default test)")
    ap.add_argument("--model-limit", type=int, default=0, help="at most this many prompts (spread over families)")
    ap.add_argument("--max-new-tokens", type=int, default=0, help="token limit per generated shader")
    args = ap.parse_args()
    records = dataset.load()[:: args.every][: args.limit or None]

    t0 = time.perf_counter()
    try:
        info = gpu.adapter_info()
    except gpu.NoAdapter as e:
        print(f"wgsl_bench: {e}", file=sys.stderr)
        return 2
    print(f"adapter: {info.device} ({info.backend}, {info.description}); wgpu {info.wgpu_version}")
    print(f"adapter + device start-up: {(time.perf_counter() - t0) * 1e3:.0f} ms")

    vocab = WgslVocab.build(r.shader for r in records)
    valid_s, invalid_s, run_s, encode_s = [], [], [], []
    cpu0, wall0 = cpu_seconds(), time.perf_counter()
    for rec in records:
        v = validate_source(rec.shader)
        assert v.ok, rec.id
        valid_s.append(v.seconds)
        bad = validate_source(broken(rec.shader))
        assert not bad.ok, rec.id
        invalid_s.append(bad.seconds)
        r = run_case(rec.shader, templates.case_for(rec.family, rec.params, rec.seed))
        assert r.ok, (rec.id, r.message)
        run_s.append(r.seconds)
        t = time.perf_counter()
        assert vocab.decode(vocab.encode(rec.shader)) == rec.shader
        encode_s.append(time.perf_counter() - t)
    wall, cpu = time.perf_counter() - wall0, cpu_seconds() - cpu0
    stats("validate (valid shader)", valid_s)
    stats("validate (planted error)", invalid_s)
    stats("run (compile+dispatch+read)", run_s)
    stats("lex+encode+decode", encode_s)
    print(f"{len(records)} shaders in {wall:.1f} s wall, {cpu:.1f} s CPU "
          f"(mean {wall / len(records) * 1e3:.1f} ms wall per shader for all four steps)")
    worker_s = []
    with ShaderWorker(30) as w:
        for rec in records[:40]:
            t = time.perf_counter()
            assert w.run_case(rec.shader, rec.family, rec.params, rec.seed).ok, rec.id
            worker_s.append(time.perf_counter() - t)
    stats("run in the worker process", worker_s[1:] or worker_s)
    if args.checkpoint:
        score(args)
    return 0


def score(args: argparse.Namespace) -> None:
    from nanochat_plugins.wgsl.cli_model import evaluate, ms, parse_modes
    from nanochat_plugins.wgsl.decode import ShaderModel
    from nanochat_plugins.wgsl.sampling import spread

    sm = ShaderModel.load(args.checkpoint)
    recs = dataset.load(dataset.BUNDLED, [args.split])
    recs = spread(recs, args.model_limit) if args.model_limit else recs
    print(f"model: {sm.meta.get('checkpoint')} step {sm.meta.get('step')}, "
          f"{sum(p.numel() for p in sm.model.parameters()):,} params; {len(recs)} {args.split} prompts from "
          f"{len({r.family for r in recs})} held-out families")
    for name, beam, retries in parse_modes(args.modes):
        r = evaluate(sm, recs, beam, retries, 30.0, args.max_new_tokens)
        print(f"{name:<8} validity {r['valid']:3d}/{r['n']} ({100 * r['validity']:5.1f}%)   correctness "
              f"{r['correct']:3d}/{r['n']} ({100 * r['correctness']:5.1f}%)   median per shader: generate "
              f"{r['median_generate_s']:.2f} s, validate {ms(r['median_validate_s'])}, run {ms(r['median_run_s'])}")
        for fam in sorted({x.family for x in recs}):
            rows = [row for row, rec in zip(r["rows"], recs, strict=True) if rec.family == fam]
            print(f"    {fam:<28} valid {sum(bool(x['valid']) for x in rows)}/{len(rows)}  correct "
                  f"{sum(bool(x['correct']) for x in rows)}/{len(rows)}")


if __name__ == "__main__":
    sys.exit(main())
