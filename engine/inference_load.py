"""Load a checkpoint for inference: the GPT, its tokenizer and its meta, checked against each other.

Works for our checkpoints and stock nanochat's (base, SFT and RL phases). A checkpoint is named by its
directory (the latest complete step is taken) or by one `model_<step>.pt` file. The tokenizer is the
one the meta records (`tokenizer_dir`), else stock nanochat's `<base>/tokenizer`, and when the meta
records a tokenizer fingerprint the loaded tokenizer must match it: the same text must give the same ids.
"""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path
from typing import Any

import torch

from engine.checkpoint import (
    complete_steps,
    is_verified,
    latest_step,
    load_meta,
    load_model_state,
    meta_file,
    meta_model_config,
    model_file,
    weights_mismatch,
)
from engine.errors import EngineError
from engine.gpt import GPT, GPTConfig, load_state_dict_compat
from engine.tokenizer import Tokenizer
from engine.tokenizer.bpe import TOKENIZER_FILE

_MODEL_RE = re.compile(r"^model_(\d{6})\.pt$")


def resolve_checkpoint(path: str | Path, step: int | None = None) -> tuple[Path, int]:
    """A checkpoint dir (latest complete step, or `step`) or a model_XXXXXX.pt file -> (dir, step)."""
    path = Path(path).expanduser()
    m = _MODEL_RE.match(path.name)
    if m and path.suffix == ".pt":
        file_step = int(m.group(1))
        if step is not None and step != file_step:
            raise EngineError(f"{path}: names step {file_step} but step={step} was asked for: pass one of them")
        ckpt_dir, step = path.parent, file_step
    elif path.is_dir():
        ckpt_dir = path
        if step is None:
            step = latest_step(ckpt_dir)
            if step is None:
                raise EngineError(f"{ckpt_dir}: no complete checkpoint (meta_XXXXXX.json + model_XXXXXX.pt): "
                                  "point at a checkpoint dir such as <base>/base_checkpoints/<tag>")
    else:
        raise EngineError(f"{path}: no such checkpoint dir or model file: pass a checkpoint dir or a model_XXXXXX.pt")
    if step not in complete_steps(ckpt_dir):
        raise EngineError(f"{ckpt_dir}: step {step} is not a complete checkpoint (meta and model files): "
                          f"pick one of {complete_steps(ckpt_dir) or 'none there'}")
    return ckpt_dir, step


def checkpoint_base(ckpt_dir: Path) -> Path:
    """The base dir of `<base>/<phase>_checkpoints/<tag>`."""
    return Path(ckpt_dir).resolve().parents[1]


def tokenizer_candidates(ckpt_dir: Path, meta: dict[str, Any]) -> list[Path]:
    """Where a checkpoint's tokenizer may be, most specific first: the meta's record, then stock nanochat's."""
    out = []
    if meta.get("tokenizer_dir") and isinstance(meta["tokenizer_dir"], str):
        out.append(Path(meta["tokenizer_dir"]).expanduser())
    out.append(checkpoint_base(ckpt_dir) / "tokenizer")
    return out


def find_tokenizer(ckpt_dir: Path, meta: dict[str, Any], tokenizer_dir: str | Path | None = None) -> Tokenizer:
    """The checkpoint's tokenizer (or `tokenizer_dir`), verified against the meta's fingerprint when it has one."""
    if tokenizer_dir is not None:
        candidates = [Path(tokenizer_dir).expanduser()]
    else:
        candidates = [p for p in tokenizer_candidates(ckpt_dir, meta) if (p / TOKENIZER_FILE).is_file()]
    if not candidates:
        looked = " or ".join(str(p) for p in tokenizer_candidates(ckpt_dir, meta))
        raise EngineError(f"{ckpt_dir}: no tokenizer found (looked in {looked}): pass the tokenizer dir the model "
                          f"was trained with (--tokenizer-dir)")
    tok = Tokenizer.from_directory(candidates[0])
    want = meta.get("tokenizer_hash")
    if want and tok.fingerprint != want:
        raise EngineError(f"{candidates[0]}: tokenizer fingerprint {tok.fingerprint} differs from the checkpoint's "
                          f"{want}: pass the tokenizer dir the model was trained with (--tokenizer-dir)")
    return tok


def model_config_from_meta(meta: dict[str, Any], source: Path) -> GPTConfig:
    raw = meta_model_config(meta, source)
    known = {f.name for f in fields(GPTConfig)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise EngineError(f"{source}: model_config has keys this engine does not know ({', '.join(unknown)}): "
                          "load it with the nanochat version that wrote it")
    return GPTConfig(**raw)


def build_model(config: GPTConfig, state_dict: dict, device: torch.device | str = "cpu") -> GPT:
    """A GPT holding `state_dict`, built on the meta device so no time goes into a throwaway init."""
    device = torch.device(device)
    with torch.device("meta"):
        model = GPT(config)
    model.to_empty(device=device)
    cos, sin = model._rotary_tables(model.rotary_len, config.n_embd // config.n_head, device)
    model.cos.copy_(cos)
    model.sin.copy_(sin)
    load_state_dict_compat(model, state_dict)
    return model.eval()


def load_model(ckpt: str | Path, step: int | None = None, device: torch.device | str = "cpu",
               tokenizer_dir: str | Path | None = None) -> tuple[GPT, Tokenizer, dict[str, Any]]:
    """(model in eval mode, tokenizer, meta) for a checkpoint dir (latest step, or `step`) or model_*.pt file.

    The meta comes back with `step` and `verified` (False: a stock checkpoint, no checksums to check)."""
    ckpt_dir, step = resolve_checkpoint(ckpt, step)
    meta = load_meta(ckpt_dir, step)
    meta_path = meta_file(ckpt_dir, step)
    config = model_config_from_meta(meta, meta_path)
    tok = find_tokenizer(ckpt_dir, meta, tokenizer_dir)
    if tok.get_vocab_size() != config.vocab_size:
        raise EngineError(f"{meta_path}: model vocab_size={config.vocab_size} but the tokenizer at {tok.directory} "
                          f"has {tok.get_vocab_size()} tokens: pass the tokenizer the model was trained with")
    state = load_model_state(ckpt_dir, step, device, meta)
    try:
        model = build_model(config, state, device)
    except RuntimeError as e:  # strict load: missing/unexpected keys or shape mismatches
        raise weights_mismatch(model_file(ckpt_dir, step), e) from None
    return model, tok, {**meta, "step": step, "verified": is_verified(meta)}
