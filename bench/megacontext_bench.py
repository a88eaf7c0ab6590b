"""MegaContext against plain truncation and the full context, and what it costs to train.

    python bench/megacontext_bench.py [--steps 300] [--budget 256] [--docs 40] [--keep DIR]

Builds a corpus of long Python standard-library files (a fifth held out for validation by file), trains the
same small model twice in this process (MegaContext off, then on), and prints:
- next-token loss over the last `tail` tokens of held-out long documents at the same working-context budget:
  MegaContext (gists + allocator), truncation (the newest `budget` tokens) and the full document, for the MC
  checkpoint (and truncation/full for the vanilla one, for reference);
- training tokens/s (median of the steps after the first; base LM tokens, the MC document not counted) with
  MegaContext on and off, and the allocator's time per step (median).
Timings depend on the machine and its load: run it on a quiet one and compare medians of several runs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--budget", type=int, default=256)
    ap.add_argument("--doc-tokens", type=int, default=1024)
    ap.add_argument("--tail", type=int, default=64)
    ap.add_argument("--docs", type=int, default=40, help="held-out long documents to score")
    ap.add_argument("--files", type=int, default=240, help="stdlib files in the corpus (the largest)")
    ap.add_argument("--keep", help="work in this folder (kept) instead of a temporary one")
    args = ap.parse_args()
    root = Path(args.keep or tempfile.mkdtemp(prefix="mc-bench-"))
    t0 = time.time()
    data, tok = build_corpus(root / "assets", args.files, 1024) if not (root / "assets").exists() else (
        root / "assets" / "data", root / "assets" / "tok")
    flags = ["--depth", "4", "--aspect-ratio", "32", "--head-dim", "32", "--max-seq-len", "256",
             "--vocab-size", "1024", "--device-batch-size", "4", "--total-batch-size", "1024",
             "--num-iterations", str(args.steps), "--warmup-iters", "10", "--eval-every", "-1",
             "--eval-tokens", "1024", "--sample-every", "-1", "--device-type", "cpu", "--log-every", "50",
             "--base-dir", str(root / "base"), "--data-dir", str(data), "--tokenizer-dir", str(tok)]
    settings = {"enabled": True, "budget": args.budget, "doc_tokens": args.doc_tokens, "tail_tokens": args.tail}
    ext = json.dumps([{"name": "megacontext", "entry": ENTRY, "settings": settings}])
    for run, extra in (("vanilla", []), ("mc", ["--extensions", ext])):
        if not (root / "base" / "base_checkpoints" / run).exists():
            if train_main([*flags, "--run", run, *extra]):
                raise SystemExit(f"training {run} failed")

    tokenizer = Tokenizer.from_directory(tok)
    bos = tokenizer.get_bos_token_id()
    docs = LongDocs(lambda: iter_texts(data, "val"), lambda t: tokenizer.encode(t, prepend=bos),
                    args.doc_tokens).all(args.docs)
    mc_model = MegaContextModel.load(root / "base" / "base_checkpoints" / "mc")
    rows = [mc_model.losses(d, args.tail, args.budget) for d in docs]
    from engine.inference_load import load_model
    from nanochat_plugins.megacontext.context import raw_loss

    vanilla, _, _ = load_model(root / "base" / "base_checkpoints" / "vanilla")
    import torch

    with torch.no_grad():
        v_trunc = [float(raw_loss(vanilla, d[-args.budget:], args.tail)) for d in docs]
        v_full = [float(raw_loss(vanilla, d, args.tail)) for d in docs]

    def mean(xs: list[float]) -> float:
        return sum(xs) / len(xs)

    speeds = {}
    for run in ("vanilla", "mc"):
        steps = [e for e in telemetry(root / "base" / "runs" / run) if e["event"] == "step"][1:]
        speeds[run] = statistics.median(e["tokens_per_sec"] for e in steps)
    alloc = [e["data"]["alloc_ms"] for e in telemetry(root / "base" / "runs" / "mc")
             if e["event"] == "plugin" and e["kind"] == "context"]
    wins = sum(r["mc"] < r["trunc"] for r in rows)
    print(f"MegaContext bench: {len(docs)} held-out documents of {args.doc_tokens} tokens, loss over the last "
          f"{args.tail}, working-context budget {args.budget} positions; model depth 4 dim 128, {args.steps} steps")
    print(f"  MC checkpoint   MegaContext {mean([r['mc'] for r in rows]):.4f}   truncation "
          f"{mean([r['trunc'] for r in rows]):.4f}   full context {mean([r['full'] for r in rows]):.4f}  "
          f"(MC < truncation on {wins}/{len(rows)} documents)")
    print("  MC without the allocator (newest blocks raw, the rest gists): "
          f"{mean([r['mc_recency'] for r in rows]):.4f}")
    print(f"  vanilla ckpt                       truncation {mean(v_trunc):.4f}   full context {mean(v_full):.4f}")
    print(f"  mean positions used by MC: {mean([r['slots'] for r in rows]):.1f} of {args.budget}; "
          f"example LOD map: {rows[0]['lod']}")
    print(f"  training tokens/s (median): MC off {speeds['vanilla']:,.0f}, MC on {speeds['mc']:,.0f} "
          f"({speeds['mc'] / speeds['vanilla']:.2f}x)")
    print(f"  allocator time per step (median): {statistics.median(alloc):.3f} ms training; "
          f"{statistics.median(r['alloc_ms'] for r in rows):.3f} ms per document read at inference "
          "(LensNet scoring included)")
    print(f"  total {time.time() - t0:.0f}s in {root}")


if __name__ == "__main__":
    main()
