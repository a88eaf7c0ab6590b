"""MegaContext against plain truncation and the full context, and what it costs to train.

    python bench/megacontext_bench.py [--steps 2000] [--budget 256] [--docs 120] [--windows 4] [--seed 42]
                                      [--mc-set KEY=JSON ...] [--mc-seq-len N] [--keep DIR]

Builds a corpus of long Python standard-library files (a fifth held out for validation, by file), trains the
same small model three times in this process (MegaContext off; MegaContext on, with the cpu-tiny-mc training
options: the truncated view, ΔNLL distillation, the bag loss and raw jitter; off with a context as long as a
whole document, the full-context reference) and prints:
- next-token loss over the last `tail` tokens of up to `windows` back-to-back windows of `doc_tokens` from each
  held-out file (averaged per file: a file is the unit), at the same working-context budget: MegaContext
  (gists + allocator), truncation (the newest `budget` tokens, same MC checkpoint, which also trained on
  truncated windows) and the full document (the long-context model, trained on files' first `doc_tokens`
  tokens only); the paired difference MC − truncation with its standard error over files and the files where
  MC wins; the headroom (what the budget's oldest quarter of raw tokens is worth to the MC checkpoint); the
  allocator's actions at inference; the layout (raw blocks kept, and MC with as many raw blocks as the budget
  holds); three controls on what the gists carry;
- training tokens/s (median of the steps after the first; base LM tokens, the MC document not counted) with
  MegaContext on and off, and the allocator's time per step (median).
Differences of a few thousandths of a nat move with the training seed: compare seeds (--seed) before
concluding. Timings depend on the machine and its load: run it on a quiet one.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.dataset import convert_text_folder, iter_texts  # noqa: E402
from engine.tokenizer import Tokenizer  # noqa: E402
from engine.train import main as train_main  # noqa: E402
from nanochat_plugins.megacontext.docs import LongDocs  # noqa: E402
from nanochat_plugins.megacontext.session import MegaContextModel  # noqa: E402

ENTRY = "nanochat_plugins.megacontext.extension:MegaContextExtension"


def build_corpus(root: Path, files: int, vocab: int) -> tuple[Path, Path]:
    stdlib = Path(os.__file__).parent
    sources = sorted((p for p in stdlib.rglob("*.py") if "test" not in p.parts and "site-packages" not in p.parts),
                     key=lambda p: -p.stat().st_size)[:files]
    src = root / "src"
    src.mkdir(parents=True)
    for i, p in enumerate(sorted(sources)):
        (src / f"{i:04d}.txt").write_text(p.read_text(errors="replace"))
    data = root / "data"
    convert_text_folder(src, data, val_fraction=0.2)
    tok = root / "tok"
    Tokenizer.train_from_iterator(iter_texts(data, "train"), vocab).save(tok)
    return data, tok


def telemetry(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "telemetry.jsonl").read_text().splitlines()]


def paired(a: list[float], b: list[float]) -> tuple[float, float, int]:
    """(mean of a − b, its standard error over the pairs, pairs where a < b)."""
    d = [x - y for x, y in zip(a, b, strict=True)]
    se = statistics.stdev(d) / math.sqrt(len(d)) if len(d) > 1 else float("nan")
    return statistics.fmean(d), se, sum(x < 0 for x in d)


def per_document(owner: list[int], rows: list[dict]) -> list[dict]:
    """Rows of windows -> one row per document: numbers averaged over its windows, other values its first's."""
    out: dict[int, list[dict]] = {}
    for o, r in zip(owner, rows, strict=True):
        out.setdefault(o, []).append(r)
    return [{k: statistics.fmean(r[k] for r in group) if isinstance(v, int | float) else v
             for k, v in group[0].items()} for group in out.values()]


def setting(text: str) -> tuple[str, Any]:
    key, _, value = text.partition("=")
    return key, json.loads(value)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--budget", type=int, default=256)
    ap.add_argument("--doc-tokens", type=int, default=1024)
    ap.add_argument("--tail", type=int, default=64)
    ap.add_argument("--docs", type=int, default=120, help="held-out long documents to score")
    ap.add_argument("--windows", type=int, default=4, help="back-to-back windows scored per document (averaged)")
    ap.add_argument("--files", type=int, default=600, help="stdlib files in the corpus (the largest)")
    ap.add_argument("--mc-set", action="append", default=[], type=setting, metavar="KEY=JSON",
                    help="another megacontext setting for the MC run (docs_per_step=2, say)")
    ap.add_argument("--window-pattern", default="SSSL",
                    help="attention windows over layers (S: a quarter of max_seq_len, L: all of it)")
    ap.add_argument("--mc-seq-len", type=int, help="the MC run's max_seq_len for its plain LM loss (default: the "
                    "budget; the doc length trains the model on whole documents, so full context is its own)")
    ap.add_argument("--no-long", action="store_true", help="skip the long-context model (full = MC checkpoint)")
    ap.add_argument("--seed", type=int, default=42, help="training seed (model init, data order)")
    ap.add_argument("--keep", help="work in this folder (kept; finished runs are reused) instead of a temporary one")
    args = ap.parse_args()
    root = Path(args.keep or tempfile.mkdtemp(prefix="mc-bench-"))
    t0 = time.time()
    data, tok = build_corpus(root / "assets", args.files, 1024) if not (root / "assets").exists() else (
        root / "assets" / "data", root / "assets" / "tok")
    flags = ["--depth", "4", "--window-pattern", args.window_pattern, "--aspect-ratio", "32", "--head-dim", "32",
             "--vocab-size", "1024",
             "--total-batch-size", "1024", "--num-iterations", str(args.steps), "--warmup-iters", "10",
             "--eval-every", "-1", "--eval-tokens", "1024", "--sample-every", "-1", "--device-type", "cpu",
             "--log-every", "50", "--seed", str(args.seed), "--base-dir", str(root / "base"), "--data-dir", str(data),
             "--tokenizer-dir", str(tok)]
    short = ["--max-seq-len", str(args.budget), "--device-batch-size", str(1024 // args.budget)]
    settings = {"enabled": True, "budget": args.budget, "doc_tokens": args.doc_tokens, "tail_tokens": args.tail,
                "truncation_weight": 1.0, "distill_weight": 1.0, "bag_weight": 1.0, "raw_jitter": True,
                **dict(args.mc_set)}
    ext = json.dumps([{"name": "megacontext", "entry": ENTRY, "settings": settings}])
    mc_len = args.mc_seq_len or args.budget
    mc_flags = ["--max-seq-len", str(mc_len), "--device-batch-size", str(max(1, 1024 // mc_len))]
    runs = [("vanilla", short), ("mc", [*mc_flags, "--extensions", ext])]
    if not args.no_long:  # the same tokens per step, in one sequence as long as a document
        runs.append(("long", ["--max-seq-len", str(args.doc_tokens), "--device-batch-size",
                              str(max(1, 1024 // args.doc_tokens))]))
    for run, extra in runs:
        if not (root / "base" / "base_checkpoints" / run).exists():
            if train_main([*flags, "--run", run, *extra]):
                raise SystemExit(f"training {run} failed")

    import torch

    from engine.inference_load import load_model
    from nanochat_plugins.megacontext.context import raw_loss

    tokenizer = Tokenizer.from_directory(tok)
    bos = tokenizer.get_bos_token_id()
    windows = LongDocs(lambda: iter_texts(data, "val"), lambda t: tokenizer.encode(t, prepend=bos),
                       args.doc_tokens, keep=max(256, args.docs)).windows(args.docs, args.windows)
    owner, docs = [i for i, _ in windows], [w for _, w in windows]
    first = {i: w for i, w in reversed(windows)}  # each document's first window
    order = sorted(first)
    other = {i: first[order[(k + 1) % len(order)]] for k, i in enumerate(order)}  # another file's window
    mc_model = MegaContextModel.load(root / "base" / "base_checkpoints" / "mc")
    t_eval = time.time()
    rows = [mc_model.losses(d, args.tail, args.budget, other[o]) for o, d in zip(owner, docs, strict=True)]
    t_eval = time.time() - t_eval
    decode = {}
    for cache in (False, True):  # MC chat decoding over the first document, greedy
        t = time.perf_counter()
        n = len(list(mc_model.generate(docs[0].tolist(), 64, cache=cache)))
        decode[cache] = n / (time.perf_counter() - t)
    with torch.no_grad():
        # headroom: what the budget's oldest quarter of raw tokens is worth to the MC checkpoint (a flat curve:
        # this model gets little from raw tokens that far back, so a gist there can only add what they miss)
        short_len = args.budget - args.budget // 4
        short_trunc = [float(raw_loss(mc_model.model, d[-short_len:].to(mc_model.device), args.tail)) for d in docs]
        vanilla, _, _ = load_model(root / "base" / "base_checkpoints" / "vanilla")
        v_trunc = [float(raw_loss(vanilla, d[-args.budget:], args.tail)) for d in docs]
        if args.no_long:
            full = [r["full"] for r in rows]
        else:
            long_model, _, _ = load_model(root / "base" / "base_checkpoints" / "long")
            full = [float(raw_loss(long_model, d, args.tail)) for d in docs]
            long_trunc = [float(raw_loss(long_model, d[-args.budget:], args.tail)) for d in docs]

    starts = [k for k, o in enumerate(owner) if k == 0 or owner[k - 1] != o]  # each file's first window
    at_start = {name: statistics.fmean(values[k] for k in starts)
                for name, values in (("mc", [r["mc"] for r in rows]), ("trunc", [r["trunc"] for r in rows]),
                                     ("full", full))}
    n_windows, n_actions = len(rows), sum(r["actions"] for r in rows)
    changed = sum(r["actions"] > 0 for r in rows)
    rows = per_document(owner, rows)  # a document is the unit: its windows' mean
    v_trunc = [r["v"] for r in per_document(owner, [{"v": v} for v in v_trunc])]
    full = [r["v"] for r in per_document(owner, [{"v": v} for v in full])]
    if not args.no_long:
        long_trunc = [r["v"] for r in per_document(owner, [{"v": v} for v in long_trunc])]
    short_trunc = [r["v"] for r in per_document(owner, [{"v": v} for v in short_trunc])]
    mc, trunc = [r["mc"] for r in rows], [r["trunc"] for r in rows]
    recency = [r["mc_recency"] for r in rows]
    d, se, wins = paired(mc, trunc)
    d_v, se_v, wins_v = paired(mc, v_trunc)
    d_a, se_a, wins_a = paired(mc, recency)
    speeds = {}
    for run in ("vanilla", "mc"):
        steps = [e for e in telemetry(root / "base" / "runs" / run) if e["event"] == "step"][1:]
        speeds[run] = statistics.median(e["tokens_per_sec"] for e in steps)
    alloc = [e["data"]["alloc_ms"] for e in telemetry(root / "base" / "runs" / "mc")
             if e["event"] == "plugin" and e["kind"] == "context"]
    full_what = ("the MC checkpoint over the whole document (its longest window is the budget)" if args.no_long
                 else f"a model trained at max_seq_len {args.doc_tokens} on the same tokens")
    mean = statistics.fmean
    print(f"MegaContext bench: {len(rows)} held-out documents ({n_windows} windows of {args.doc_tokens} tokens, "
          f"up to {args.windows} per file, averaged per file), loss "
          f"over the last {args.tail} tokens; working-context budget {args.budget} positions; model depth 4 dim "
          f"128 windows {args.window_pattern}, {args.steps} steps of 1,024 tokens; MC settings {json.dumps(settings)}")
    print(f"  MegaContext {mean(mc):.4f}   truncation {mean(trunc):.4f}   full context {mean(full):.4f}")
    print(f"    (MC and truncation: the MC checkpoint; full: {full_what}; the MC checkpoint over the whole "
          f"document: {mean([r['full'] for r in rows]):.4f})")
    where = ("" if args.no_long else
             f" (where the long-context model trained: files' first {args.doc_tokens} tokens)")
    print(f"    on each file's first window only{where}: MegaContext {at_start['mc']:.4f}   truncation "
          f"{at_start['trunc']:.4f}   full context {at_start['full']:.4f}")
    if not args.no_long:
        d_l, se_l, _ = paired(full, long_trunc)
        print(f"    the long-context model truncated to the budget: {mean(long_trunc):.4f} (full − truncation "
              f"{d_l:+.4f} ± {se_l:.4f}: what the whole document is worth to a model that can attend to it)")
    d_h, se_h, _ = paired(trunc, short_trunc)
    print(f"  headroom: truncation to {short_len} tokens {mean(short_trunc):.4f}; the budget's oldest "
          f"{args.budget - short_len} raw tokens are worth {-d_h:+.4f} ± {se_h:.4f} to the MC checkpoint (how much "
          "this model still reads raw tokens that far back)")
    print(f"  MC − truncation: {d:+.4f} ± {se:.4f} (SE over documents, {abs(d) / se:.1f} SE); MC wins on "
          f"{wins}/{len(rows)} documents")
    print(f"  MC − truncation with the vanilla checkpoint ({mean(v_trunc):.4f}): {d_v:+.4f} ± {se_v:.4f}; MC "
          f"wins on {wins_v}/{len(rows)} (BOS-aligned packing crops a long file to its first max_seq_len "
          "tokens, so the vanilla model never saw the middle of one)")
    print(f"  allocator: {n_actions} actions at inference ({n_actions / n_windows:.2f} per window, "
          f"{changed} of {n_windows} windows changed); MC − MC without the allocator (newest blocks raw, "
          f"the rest gists, {mean(recency):.4f}): {d_a:+.4f} ± {se_a:.4f}, better on {wins_a}, "
          f"worse on {sum(x > y for x, y in zip(mc, recency, strict=True))}")
    d_u, se_u, wins_u = paired(mc, [r["mc_uncapped"] for r in rows])
    raw_mean = mean([r["raw_blocks"] for r in rows])
    measured = " ".join(f"{v:.4f}" for v in mc_model.calibration)
    print(f"  layout: raw history blocks at most {mc_model.max_raw} (raw_blocks), {raw_mean:.1f} on average; MC − "
          f"MC with as many raw blocks as the budget holds: {d_u:+.4f} ± {se_u:.4f}, better on {wins_u}/{len(rows)}; "
          f"measured at the checkpoint on training documents, tail loss by raw blocks kept: {measured} (best "
          f"{mc_model.best_raw})")
    d_o, se_o, _ = paired(mc, [r["other_gists"] for r in rows])
    d_n, se_n, _ = paired(mc, [r["no_gists"] for r in rows])
    print(f"  what the gists carry: MC − MC with another document's gists {d_o:+.4f} ± {se_o:.4f}; MC − MC with "
          f"its gist slots removed (its raw tokens only) {d_n:+.4f} ± {se_n:.4f}: "
          + ("the gists' content helps" if d_o < -2 * se_o and d_n < -2 * se_n else
             "no clear use of the gists' content (within 2 SE of a control)"))
    d_r, se_r, _ = paired([r["lean_own"] for r in rows], [r["lean_other"] for r in rows])
    print(f"  with one raw block before the tail (the gists nearly all the context): its own gists − another "
          f"document's {d_r:+.4f} ± {se_r:.4f} ({mean([r['lean_own'] for r in rows]):.4f}): "
          + ("the model reads the gists" if d_r < -2 * se_r else "no sign that the model reads the gists"))
    if not settings.get("truncation_weight"):
        print("  note: truncation_weight=0, so the MC checkpoint never trained on truncated windows (its windows "
              "all start with gists or BOS): MC − truncation favours MC; set truncation_weight for a fair one")
    print(f"  mean positions used by MC: {mean([r['slots'] for r in rows]):.1f} of {args.budget}; "
          f"example LOD map: {rows[0]['lod']}")
    print(f"  training tokens/s (median): MC off {speeds['vanilla']:,.0f}, MC on {speeds['mc']:,.0f} "
          f"({speeds['mc'] / speeds['vanilla']:.2f}x)")
    print(f"  allocator time per step (median): {statistics.median(alloc):.3f} ms training; "
          f"{statistics.median(r['alloc_ms'] for r in rows):.3f} ms per document read at inference "
          f"(LensNet scoring included); MC scoring {1000 * t_eval / len(rows):.0f} ms per document")
    print(f"  MC chat decoding (greedy, 64 tokens after a {args.doc_tokens}-token document): "
          f"{decode[True]:.0f} tokens/s with the KV cache ({mc_model.rebuilds} prefills), {decode[False]:.0f} "
          "tokens/s recomputing the working context per token")
    print(f"  total {time.time() - t0:.0f}s in {root}")


if __name__ == "__main__":
    main()
