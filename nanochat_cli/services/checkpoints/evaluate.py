"""Evaluate a checkpoint: bits per byte on held-out data and greedy completions of the eval prompt set.

Val bpb is the trainer's own measure (engine.loss_eval.evaluate_bpb) on the val split (the last parquet
shard) of the data the checkpoint was trained on, or of a data dir given here; the prompts come from
the editable prompt set (prompts.py) and are completed greedily, so a report is reproducible.
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from engine.errors import EngineError
from nanochat_cli.services.checkpoints.entries import CheckpointEntry
from nanochat_cli.services.checkpoints.prompts import EvalPrompt, load_prompt_set
from nanochat_cli.services.checkpoints.reports import EvalReport, SampleResult

MAX_BATCH_ROWS = 8  # rows per eval batch: enough to keep a CPU busy, small enough for any model on a GPU


def eval_data_dir(entry: CheckpointEntry, resolved: dict[str, Any]) -> str | None:
    """Held-out data for val bpb: the data the checkpoint was trained on, else the active config's parquet dir
    (stock checkpoints record none). The report names the dir it used."""
    if entry.data_dir:
        return entry.data_dir
    if resolved.get("data.source") == "parquet" and resolved.get("data.data_dir"):
        return str(Path(resolved["data.data_dir"]).expanduser())
    return None


def val_bpb(model, tokenizer, data_dir: str | Path, tokens: int, device: str = "cpu") -> tuple[float, int]:
    """(bits per byte, tokens measured) over the first `tokens` tokens of the val split."""
    import torch

    from engine.common import compute_dtype
    from engine.dataloader import make_loader
    from engine.loss_eval import evaluate_bpb

    if tokens < 1:
        raise EngineError(f"eval tokens={tokens}: must be at least 1 (or skip val bpb)")
    T = model.config.sequence_len
    B = max(1, min(MAX_BATCH_ROWS, tokens // T))
    steps = max(1, tokens // (B * T))
    dev = torch.device(device)
    loader = make_loader(tokenizer, B, T, "val", Path(data_dir).expanduser(), device=dev)
    bf16 = dev.type == "cuda" and compute_dtype(dev) == torch.bfloat16
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if bf16 else nullcontext()
    bpb = evaluate_bpb(model, loader, steps, tokenizer.token_bytes().to(dev), autocast)
    return bpb, steps * B * T


def complete_prompts(model, tokenizer, prompts: list[EvalPrompt], max_new_tokens: int) -> list[SampleResult]:
    """Greedy completion of each prompt: continue mode continues the text, chat mode answers it."""
    from nanochat_cli.services.checkpoints.chat import ChatSession, render_segments

    out = []
    for p in prompts:
        session = ChatSession(model, tokenizer, mode=p.mode, temperature=0.0, top_k=None, max_tokens=max_new_tokens)
        segments, stats = session.reply(p.prompt)
        out.append(SampleResult(p.name, p.mode, p.prompt, render_segments(segments), stats.tokens, stats.seconds))
    return out


def evaluate(ckpt: str | Path, tokens: int = 65536, max_new_tokens: int = 64, data_dir: str | Path | None = None,
             device: str = "cpu", prompts: list[EvalPrompt] | None = None, step: int | None = None,
             tokenizer_dir: str | Path | None = None) -> EvalReport:
    """Load `ckpt` (a dir: latest step; or a model_XXXXXX.pt) and measure it. tokens=0 skips val bpb;
    data_dir defaults to the one the checkpoint was trained on."""
    from engine.inference_load import load_model, resolve_checkpoint
    from nanochat_cli.services.compute import use_inference_threads

    t0 = time.time()
    use_inference_threads()
    ckpt_dir, step = resolve_checkpoint(ckpt, step)
    model, tok, meta = load_model(ckpt_dir, step, device, tokenizer_dir)
    data_dir = data_dir or (meta.get("data_dir") if isinstance(meta.get("data_dir"), str) else None)
    bpb, measured = None, 0
    if tokens > 0:
        if not data_dir:
            raise EngineError(f"{ckpt_dir}: no held-out data known (its meta records no data_dir): pass a data dir "
                              "of parquet shards (--data-dir), or --tokens 0 to skip val bpb")
        bpb, measured = val_bpb(model, tok, data_dir, tokens, device)
    prompts = load_prompt_set() if prompts is None else prompts
    samples = complete_prompts(model, tok, prompts, max_new_tokens) if max_new_tokens > 0 else []
    return EvalReport(checkpoint=str(ckpt_dir / f"model_{step:06d}.pt"), step=step, val_bpb=bpb,
                      eval_tokens=measured, data_dir=str(data_dir) if data_dir else None, samples=samples,
                      seconds=time.time() - t0, created=time.time(), device=str(device))
