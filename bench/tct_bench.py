"""TCT benchmark: tokens vs tiktoken's o200k_base on held-out workflows, and encode/decode throughput.

    python bench/tct_bench.py [--shared DIR] [--folds 5] [--repeat 3] [--json OUT]
        [--checkpoint PATH|untrained [--samples 10] [--max-tokens 32,64,256]] [--skip-compression]

Compression, always on workflows the merges were NOT trained on:
  real → starter   merges trained on workflows-real, measured on workflows-starter
  starter → real   merges trained on workflows-starter, measured on workflows-real
  real repos, k-fold   workflows-real split by repository (SOURCES.tsv) into k folds; merges trained on
                   the other folds plus workflows-starter, measured on the held-out repositories' files
                   (the closest stand-in for "real workflows from repositories never seen")
The shipped merges (trained on everything) are shown once, in-sample, for reference only.
Each line compares TCT tokens of a workflow with o200k_base tokens of (a) the same minified JSON and
(b) the original YAML file text (`quicktok` bundles the exact o200k vocabulary; works offline). TCT keeps
no YAML comments (JSON has none), so (b) also counts what YAML spends on comments and layout.

Throughput (shipped tokenizer, all workflows, best of --repeat): encode = JSON text → tokens
(parse included), decode = tokens → JSON text, in MB of minified JSON per second; and the cost of
schema-constrained decoding: computing the legal next tokens, per token, along real token streams.
The sampler checks the model's own choice first (one try of its atoms on a copy of the decoder) and
computes the whole legal set only when that fails, so both costs are shown.

Sampling (with --checkpoint, a TCT run's checkpoint): --samples workflows each way from the document start,
constrained and unconstrained: the share that validates against the schema (ECMA patterns, as
check-jsonschema), how many completed, and per token: the constraints' cost (legal checks, validation at
container closes, backtracking) against the model's forward pass.
Nothing is asserted; figures print as a table (and to --json).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import quicktok

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.tct import tokenizer  # noqa: E402
from engine.tct.codec import Tokenizer  # noqa: E402
from engine.tct.corpus import Corpus, load_corpus  # noqa: E402
from engine.tct.schema import workflow_graph  # noqa: E402
from engine.tct.train_merges import train_on  # noqa: E402

O200K = quicktok.get_encoding("o200k_base")


def repo_of(path: Path, sources: dict[str, str]) -> str:
    return sources.get(path.name) or path.name.rsplit("__", 1)[0]


def read_sources(folder: Path) -> dict[str, str]:
    tsv = folder / "SOURCES.tsv"
    if not tsv.is_file():
        return {}
    with tsv.open(newline="") as f:
        return {row["saved_name"]: row["repo"] for row in csv.DictReader(f, delimiter="\t")}


def subset(corpus: Corpus, keep) -> Corpus:
    return Corpus(docs=[d for d in corpus.docs if keep(d[0])])


def measure(tok: Tokenizer, corpus: Corpus) -> dict[str, int]:
    tct = o_json = o_yaml = escapes = 0
    for path, text in corpus.docs:
        tct += len(tok.encode_value(json.loads(text)))
        escapes += tok.escapes
        o_json += len(O200K.encode(text))
        o_yaml += len(O200K.encode(path.read_text(encoding="utf-8")))
    return {"docs": len(corpus.docs), "tct": tct, "o200k_json": o_json, "o200k_yaml": o_yaml, "escapes": escapes}


def add(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    return {k: a.get(k, 0) + v for k, v in b.items()}


def held_out(train: Corpus, test: Corpus) -> dict[str, int]:
    t0 = time.perf_counter()
    merges = train_on(train)
    row = measure(Tokenizer(workflow_graph(), merges), test)
    row.update(merges=len(merges), train_docs=len(train.docs), seconds=round(time.perf_counter() - t0, 1))
    return row


def fewer(tct: int, base: int) -> str:
    return f"{100 * (1 - tct / base):5.1f}%"


def compression(real: Corpus, starter: Corpus, sources: dict[str, str], folds: int) -> dict[str, dict]:
    rows = {
        "real → starter": held_out(real, starter),
        "starter → real": held_out(starter, real),
    }
    repos = sorted({repo_of(p, sources) for p, _ in real.docs})
    total: dict[str, int] = {}
    for k in range(folds):
        held = set(repos[k::folds])
        train = Corpus(docs=[d for d in real.docs if repo_of(d[0], sources) not in held] + starter.docs)
        row = held_out(train, subset(real, lambda p, held=held: repo_of(p, sources) in held))
        total = add(total, {k: v for k, v in row.items() if k in ("docs", "tct", "o200k_json", "o200k_yaml",
                                                                   "escapes")})
        print(f"  fold {k + 1}/{folds}: {len(held)} repos, {row['docs']} files, {fewer(row['tct'], row['o200k_json'])}"
              f" fewer than o200k on JSON", flush=True)
    rows[f"real repos, {folds}-fold"] = total
    rows["shipped merges, in-sample (reference)"] = measure(tokenizer(), Corpus(docs=real.docs + starter.docs))
    return rows


def throughput(corpus: Corpus, repeat: int) -> dict[str, float]:
    tok = tokenizer()
    texts = [t for _, t in corpus.docs]
    mb = sum(len(t.encode()) for t in texts) / 1e6
    from engine.tct import decode, encode

    enc_s, dec_s = [], []
    streams = [encode(t) for t in texts]
    for _ in range(repeat):
        t0 = time.perf_counter()
        for t in texts:
            encode(t)
        enc_s.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        for s in streams:
            decode(s)
        dec_s.append(time.perf_counter() - t0)
    n_tokens = sum(map(len, streams))
    # constrained decoding: legal next tokens at every position of some documents, machine kept incrementally
    sample = streams[:: max(1, len(streams) // 12)]
    from engine.tct_sample import _accepts

    legal_s, legal_n, step_s, accept_s = 0.0, 0, 0.0, 0.0
    for s in sample:
        m = tok.machine_after([])
        for t in s:
            t0 = time.perf_counter()
            tok.legal_tokens(m)
            t1 = time.perf_counter()
            _accepts(tok, m, t)
            t2 = time.perf_counter()
            tok.advance(m, t)
            t3 = time.perf_counter()
            legal_s += t1 - t0
            accept_s += t2 - t1
            step_s += t3 - t2
            legal_n += 1
    return {"json_mb": round(mb, 3), "tokens": n_tokens, "encode_mb_s": round(mb / min(enc_s), 3),
            "decode_mb_s": round(mb / min(dec_s), 3), "encode_tokens_s": round(n_tokens / min(enc_s)),
            "decode_tokens_s": round(n_tokens / min(dec_s)), "legal_ms_per_token": round(1e3 * legal_s / legal_n, 2),
            "step_us_per_token": round(1e6 * step_s / legal_n, 1), "legal_positions": legal_n,
            "accept_us_per_token": round(1e6 * accept_s / legal_n, 1)}


def sampling(checkpoint: str, samples: int, budgets: list[int]) -> dict[str, dict]:
    """Per budget and decoding: valid share, completion, tokens, and the constraints' cost per token kept
    (legal checks, validation, backtracking and completion mode) against the model's per forward pass.
    `checkpoint` "untrained" samples a tiny untrained model (no run needed; figures about the constraints only)."""
    import statistics

    from engine.tct_sample import load_workflow_model, sample_workflow

    if checkpoint == "untrained":
        sys.path.insert(0, str(ROOT / "tests" / "helpers"))
        from tct_helpers import tiny_tct_model

        model = tiny_tct_model()
    else:
        model, _meta = load_workflow_model(checkpoint)
    out = {}
    for budget in budgets:
        for constrained in (True, False):
            rs = [sample_workflow(model, "", max_tokens=budget, temperature=0.8, top_k=50, seed=i,
                                  constrained=constrained) for i in range(samples)]
            kept = max(1, sum(r.new_tokens for r in rs))
            forwards = max(1, sum(r.sampled for r in rs))
            out[f"{budget} {'constrained' if constrained else 'unconstrained'}"] = {
                "budget": budget, "samples": samples, "valid": sum(r.valid for r in rs),
                "complete": sum(r.complete for r in rs), "tokens": sum(r.new_tokens for r in rs),
                "sampled": sum(r.sampled for r in rs), "finished": sum(r.finished for r in rs),
                "backtracks": sum(r.backtracks for r in rs), "full_masks": sum(r.full_masks for r in rs),
                "constraint_ms_per_token": round(1e3 * sum(r.mask_seconds for r in rs) / kept, 3),
                "model_ms_per_token": round(1e3 * sum(r.model_seconds for r in rs) / forwards, 3),
                "median_seconds": round(statistics.median(r.seconds for r in rs), 3)}
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shared", default=str(ROOT.parent / "shared"), help="the shared folder (default: ../shared)")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--json", default=None, help="also write the figures here")
    p.add_argument("--checkpoint", default=None, help="a TCT run's checkpoint (or 'untrained': a tiny untrained "
                   "model): sample from it both ways")
    p.add_argument("--samples", type=int, default=10, help="samples each way (default 10)")
    p.add_argument("--max-tokens", default="32,64,256", help="token budgets per sample, comma-separated "
                   "(default 32,64,256)")
    p.add_argument("--skip-compression", action="store_true", help="only throughput (and sampling)")
    p.add_argument("--skip-throughput", action="store_true", help="no throughput figures")
    args = p.parse_args(argv)
    data = Path(args.shared) / "data"
    real_dir, starter_dir = data / "workflows-real", data / "workflows-starter"
    if not (real_dir.is_dir() and starter_dir.is_dir()):
        print(f"tct_bench: error: {data}: needs workflows-real/ and workflows-starter/: pass --shared", file=sys.stderr)
        return 1
    real, starter = load_corpus([real_dir]), load_corpus([starter_dir])
    print(f"workflows: real {len(real.docs)} used ({len(real.skipped)} skipped), "
          f"starter {len(starter.docs)} used ({len(starter.skipped)} skipped)")
    rows = {} if args.skip_compression else compression(real, starter, read_sources(real_dir), args.folds)
    if rows:
        print("\nTokens vs o200k_base (held out unless marked)\n")
        print("| split | files | TCT tokens | o200k (min JSON) | fewer | o200k (YAML text) | fewer | escapes |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, r in rows.items():
        print(f"| {name} | {r['docs']} | {r['tct']:,} | {r['o200k_json']:,} | {fewer(r['tct'], r['o200k_json'])} | "
              f"{r['o200k_yaml']:,} | {fewer(r['tct'], r['o200k_yaml'])} | {r['escapes']} |")
    tp = {} if args.skip_throughput else throughput(Corpus(docs=real.docs + starter.docs), args.repeat)
    if tp:
        print(f"\nThroughput (shipped tokenizer, {tp['json_mb']} MB of minified JSON, {tp['tokens']:,} tokens, "
              f"best of {args.repeat}):")
        print(f"  encode {tp['encode_mb_s']} MB/s ({tp['encode_tokens_s']:,} tokens/s); "
              f"decode {tp['decode_mb_s']} MB/s ({tp['decode_tokens_s']:,} tokens/s)")
        print(f"  constrained decoding: legal next tokens {tp['legal_ms_per_token']} ms per token "
              f"(vs {tp['step_us_per_token']} µs to advance the decoder by one token; "
              f"{tp['legal_positions']:,} positions); checking one candidate token {tp['accept_us_per_token']} µs")
    samples = {}
    if args.checkpoint:
        try:
            budgets = [int(x) for x in str(args.max_tokens).split(",") if x.strip()]
        except ValueError:
            print(f"tct_bench: error: --max-tokens {args.max_tokens!r}: give integers, e.g. 32,64,256",
                  file=sys.stderr)
            return 1
        samples = sampling(args.checkpoint, args.samples, budgets)
        print(f"\nSampling from {args.checkpoint} ({args.samples} each way per budget, temperature 0.8, "
              "top-k 50):\n")
        print("| budget | decoding | schema-valid | complete | tokens kept / sampled / completion mode | "
              "backtracks | constraints ms/token kept | model ms/forward | median s/sample |")
        print("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for name, f in samples.items():
            share = f"{f['valid']}/{f['samples']} ({100 * f['valid'] / f['samples']:.0f}%)"
            print(f"| {f['budget']} | {name.split(' ', 1)[1]} | {share} | {f['complete']} | {f['tokens']:,} / "
                  f"{f['sampled']:,} / {f['finished']:,} | {f['backtracks']} | {f['constraint_ms_per_token']} | "
                  f"{f['model_ms_per_token']} | {f['median_seconds']} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"compression": rows, "throughput": tp, "sampling": samples},
                                              indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
