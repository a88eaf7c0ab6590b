"""Checkpoints in nanochat's layout, written so that a kill at any moment never leaves a fake-complete one.

Layout (same as stock nanochat, so either side reads the other's):
    <base>/base_checkpoints/<tag>/model_<step:06d>.pt        model state_dict (rank 0)
    <base>/base_checkpoints/<tag>/optim_<step:06d>_rank<r>.pt per-rank optimizer state
    <base>/base_checkpoints/<tag>/meta_<step:06d>.json       written LAST: its presence marks completeness

Our optim files hold {"optimizer", "dataloader", "rng"} so that resume is exact per rank; a stock
nanochat optim file (a bare optimizer state_dict) is read too. Every file goes temp + rename.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import torch

from engine import __version__
from engine.errors import EngineError

PHASE_DIRS = {"base": "base_checkpoints", "sft": "chatsft_checkpoints", "rl": "chatrl_checkpoints"}
_META_RE = re.compile(r"^meta_(\d{6})\.json$")


def checkpoint_dir(base: Path, tag: str, phase: str = "base") -> Path:
    return Path(base) / PHASE_DIRS[phase] / tag


def _atomic_write(path: Path, write) -> int:
    """Write through a temp file in the same dir, fsync, then rename; returns bytes written."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path.stat().st_size


def save_rank_state(ckpt_dir: Path, step: int, rank: int, optimizer_state: dict, dataloader_state: dict | None,
                    rng_state: dict | None = None) -> int:
    """Every rank writes its own optimizer/dataloader/RNG state (before rank 0 writes the meta)."""
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    payload = {"optimizer": optimizer_state, "dataloader": dataloader_state, "rng": rng_state}
    return _atomic_write(ckpt_dir / f"optim_{step:06d}_rank{rank}.pt", lambda f: torch.save(payload, f))


def save_model_and_meta(ckpt_dir: Path, step: int, model_state: dict, meta: dict[str, Any]) -> int:
    """Rank 0 only, after every rank's save_rank_state has finished: model first, meta last."""
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    size = _atomic_write(ckpt_dir / f"model_{step:06d}.pt", lambda f: torch.save(model_state, f))
    meta = {**meta, "step": step, "engine_version": __version__}
    data = json.dumps(meta, indent=2, default=str).encode()
    size += _atomic_write(ckpt_dir / f"meta_{step:06d}.json", lambda f: f.write(data))
    return size


def complete_steps(ckpt_dir: Path) -> list[int]:
    """Steps whose meta and model files both exist (meta is written last, so these are complete)."""
    if not ckpt_dir.is_dir():
        return []
    steps = []
    for p in ckpt_dir.iterdir():
        m = _META_RE.match(p.name)
        if m and (ckpt_dir / f"model_{m.group(1)}.pt").exists():
            steps.append(int(m.group(1)))
    return sorted(steps)


def latest_step(ckpt_dir: Path) -> int | None:
    steps = complete_steps(ckpt_dir)
    return steps[-1] if steps else None


def load_meta(ckpt_dir: Path, step: int) -> dict[str, Any]:
    path = ckpt_dir / f"meta_{step:06d}.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise EngineError(f"{path}: checkpoint meta missing (incomplete checkpoint): pick another step") from None
    except json.JSONDecodeError as e:
        raise EngineError(f"{path}: corrupt checkpoint meta ({e.msg}): delete this checkpoint step") from None


def _torch_load(path: Path, device: torch.device | str) -> Any:
    try:
        return torch.load(path, map_location=device, weights_only=False)
    except FileNotFoundError:
        raise EngineError(f"{path}: checkpoint file missing: pick another step or start fresh") from None
    except Exception as e:  # truncated zip, pickle error…
        raise EngineError(f"{path}: unreadable checkpoint file ({type(e).__name__}): delete this step") from None


def load_model_state(ckpt_dir: Path, step: int, device: torch.device | str = "cpu") -> dict:
    return _torch_load(ckpt_dir / f"model_{step:06d}.pt", device)


def load_rank_state(ckpt_dir: Path, step: int, rank: int, device: torch.device | str = "cpu") -> dict:
    """Returns {"optimizer", "dataloader", "rng"}; a stock nanochat file yields only the optimizer."""
    state = _torch_load(ckpt_dir / f"optim_{step:06d}_rank{rank}.pt", device)
    if "optimizer" not in state:
        state = {"optimizer": state, "dataloader": None, "rng": None}
    return state


def rng_state() -> dict:
    state = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def restore_rng(state: dict | None) -> None:
    if not state:
        return
    torch.set_rng_state(state["cpu"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"].cpu())


# model_config keys in the order a person thinks about them, with the flag that sets each one
_CONFIG_FLAGS = {"n_layer": "depth", "n_embd": "aspect_ratio/head_dim", "n_head": "head_dim", "n_kv_head": "n_kv_head",
                 "sequence_len": "max_seq_len", "vocab_size": "vocab_size (or the tokenizer)",
                 "window_pattern": "window_pattern"}


def check_model_config(saved: dict, current: dict, source: Path) -> None:
    """A resume must use the same architecture: name the first differing key and the fix."""
    keys = [k for k in _CONFIG_FLAGS if k in saved or k in current]
    keys += sorted((set(saved) | set(current)) - set(keys))
    for key in keys:
        if saved.get(key) != current.get(key):
            flag = _CONFIG_FLAGS.get(key, key)
            raise EngineError(f"{source}: checkpoint has {key}={saved.get(key)!r} but the config gives "
                              f"{current.get(key)!r}: set {flag} so that {key} matches, or start a new run")
