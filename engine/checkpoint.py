"""Checkpoints in nanochat's layout, written so that a kill at any moment never leaves a fake-complete one.

Layout (same as stock nanochat, so either side reads the other's):
    <base>/base_checkpoints/<tag>/model_<step:06d>.pt        model state_dict (rank 0)
    <base>/base_checkpoints/<tag>/optim_<step:06d>_rank<r>.pt per-rank optimizer state
    <base>/base_checkpoints/<tag>/meta_<step:06d>.json       written LAST: its presence marks completeness

Our optim files hold {"optimizer", "dataloader", "rng"} so that resume is exact per rank; a stock
nanochat optim file (a bare optimizer state_dict) is read too. Every file goes temp + fsync + rename, and
the meta records each file's size and sha256 (`files`), checked on load; a stock meta has none, so its
files load "unverified". Every file loads with `weights_only=True`: a file holding anything but tensors
and plain containers is refused, so a checkpoint can never run code.
"""

from __future__ import annotations

import hashlib
import json
import re
import warnings
from pathlib import Path
from typing import IO, Any

import torch

from engine import __version__
from engine.errors import EngineError
from engine.shared import (
    CHECKPOINT_FILE_RE,
    PHASE_DIRS,
    atomic_write,
    file_record_problem,
    first_line,
    remove_stale_temps,
    sha256_file,
)

__all__ = ["PHASE_DIRS", "CheckpointError", "checkpoint_dir", "model_file", "optim_file", "meta_file",
           "save_rank_state", "save_model_and_meta", "clean_temps", "complete_steps", "latest_step", "load_meta",
           "meta_model_config", "is_verified", "load_model_state", "load_rank_state", "weights_mismatch",
           "rng_state", "restore_rng", "check_model_config", "resolve_source", "SOURCE_PHASES"]

_META_RE = re.compile(r"^meta_(\d{6})\.json$")
FILES_KEY = "files"  # meta: {file name: {"bytes", "sha256"}} for the step's model and optim files
MODEL_CONFIG_TYPES = {"sequence_len": int, "vocab_size": int, "n_layer": int, "n_head": int, "n_kv_head": int,
                      "n_embd": int, "window_pattern": str}


class CheckpointError(EngineError):
    """A checkpoint step's files are damaged, refused or do not fit together (another step may be fine)."""


def checkpoint_dir(base: Path, tag: str, phase: str = "base") -> Path:
    return Path(base) / PHASE_DIRS[phase] / tag


def model_file(ckpt_dir: Path, step: int) -> Path:
    return Path(ckpt_dir) / f"model_{step:06d}.pt"


def optim_file(ckpt_dir: Path, step: int, rank: int) -> Path:
    return Path(ckpt_dir) / f"optim_{step:06d}_rank{rank}.pt"


def meta_file(ckpt_dir: Path, step: int) -> Path:
    return Path(ckpt_dir) / f"meta_{step:06d}.json"


# ---------------------------------------------------------------------------------------------- saving


class _HashingWriter:
    """A write-only file that hashes what passes through (torch.save writes its zip sequentially)."""

    def __init__(self, f: IO[bytes]):
        self.f, self.sha256, self.bytes = f, hashlib.sha256(), 0

    def write(self, b) -> int:
        self.sha256.update(b)
        self.bytes += len(b)
        return self.f.write(b)

    def flush(self) -> None:
        self.f.flush()


def _save_torch(path: Path, obj: Any) -> dict[str, Any]:
    """torch.save `obj` atomically; returns its {"bytes", "sha256"}, hashed while writing."""
    record: dict[str, Any] = {}

    def write(f: IO[bytes]) -> None:
        w = _HashingWriter(f)
        torch.save(obj, w)
        record.update(bytes=w.bytes, sha256=w.sha256.hexdigest())

    atomic_write(path, write)
    return record


def clean_temps(ckpt_dir: Path, rank: int | None = None) -> list[Path]:
    """Remove temp files that killed saves left in `ckpt_dir`. rank=None: all of them; else those this rank
    writes (rank 0: model and meta too), so ranks saving at once never touch each other's."""
    if rank is None:
        name_re = CHECKPOINT_FILE_RE
    else:
        own = rf"optim_\d{{6}}_rank{rank}\.pt"
        name_re = re.compile(rf"^(?:{own}|model_\d{{6}}\.pt|meta_\d{{6}}\.json)$" if rank == 0 else rf"^{own}$")
    return remove_stale_temps(Path(ckpt_dir), name_re)


def save_rank_state(ckpt_dir: Path, step: int, rank: int, optimizer_state: dict, dataloader_state: dict | None,
                    rng_state: dict | None = None) -> dict[str, Any]:
    """Every rank writes its own optimizer/dataloader/RNG state (before rank 0 writes the meta).
    Returns the file's {"bytes", "sha256"} for the meta."""
    ckpt_dir = Path(ckpt_dir)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    clean_temps(ckpt_dir, rank)
    payload = {"optimizer": optimizer_state, "dataloader": dataloader_state, "rng": rng_state}
    return _save_torch(optim_file(ckpt_dir, step, rank), payload)


def save_model_and_meta(ckpt_dir: Path, step: int, model_state: dict, meta: dict[str, Any],
                        rank_records: dict[int, dict[str, Any]] | None = None,
                        extra_files: dict[str, Any] | None = None) -> int:
    """Rank 0 only, after every rank's save_rank_state has finished: model first, meta last.

    `rank_records` are the ranks' save_rank_state results; without them the optim files of this step in
    `ckpt_dir` are hashed here. `extra_files` (file name -> state) are engine extensions' states, saved and
    recorded in the meta like the model file. Returns the bytes written."""
    ckpt_dir = Path(ckpt_dir)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    clean_temps(ckpt_dir, 0)
    files = {}
    if rank_records is None:
        rank_records = {}
        for p in ckpt_dir.glob(f"optim_{step:06d}_rank*.pt"):
            rank_records[int(p.stem.rsplit("rank", 1)[1])] = {"bytes": p.stat().st_size, "sha256": sha256_file(p)}
    for rank, record in sorted(rank_records.items()):
        files[optim_file(ckpt_dir, step, rank).name] = record
    model_record = _save_torch(model_file(ckpt_dir, step), model_state)
    files[model_file(ckpt_dir, step).name] = model_record
    extra_bytes = 0
    for name, state in (extra_files or {}).items():
        files[name] = _save_torch(ckpt_dir / name, state)
        extra_bytes += files[name]["bytes"]
    meta = {**meta, "step": step, "engine_version": __version__, FILES_KEY: files}
    data = json.dumps(meta, indent=2, default=str).encode()
    return model_record["bytes"] + extra_bytes + atomic_write(meta_file(ckpt_dir, step), data)


# ---------------------------------------------------------------------------------------------- listing


def complete_steps(ckpt_dir: Path) -> list[int]:
    """Steps whose meta and model files both exist (meta is written last, so these are complete)."""
    ckpt_dir = Path(ckpt_dir)
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


# ---------------------------------------------------------------------------------------------- loading


def load_meta(ckpt_dir: Path, step: int) -> dict[str, Any]:
    """The step's meta as a dict; a missing, non-UTF-8, non-JSON or non-object meta is a one-line error."""
    path = meta_file(ckpt_dir, step)
    try:
        meta = json.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{path}: checkpoint meta missing (incomplete checkpoint): pick another step") from None
    except OSError as e:
        raise CheckpointError(f"{path}: checkpoint meta unreadable ({e.strerror}): check its permissions") from None
    except UnicodeDecodeError:
        raise CheckpointError(f"{path}: corrupt checkpoint meta (not UTF-8 text): delete this checkpoint "
                              "step") from None
    except (json.JSONDecodeError, RecursionError) as e:
        why = e.msg if isinstance(e, json.JSONDecodeError) else "nested too deeply"
        raise CheckpointError(f"{path}: corrupt checkpoint meta ({why}): delete this checkpoint step") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path}: corrupt checkpoint meta (a JSON {type(meta).__name__}, not an object): "
                              "delete this checkpoint step")
    return meta


def meta_model_config(meta: dict[str, Any], source: Path) -> dict[str, Any]:
    """The meta's model_config, checked to hold every key with the right type (one-line error otherwise)."""
    raw = meta.get("model_config")
    if not isinstance(raw, dict):
        what = "none" if raw is None else f"a JSON {type(raw).__name__}"
        raise CheckpointError(f"{source}: model_config is {what}, not an object: this is not a usable nanochat "
                              "checkpoint; pick another")
    for key, kind in MODEL_CONFIG_TYPES.items():
        value = raw.get(key)
        if not isinstance(value, kind) or isinstance(value, bool) or (kind is int and value < 1):
            raise CheckpointError(f"{source}: model_config.{key} is {value!r}, not a valid "
                                  f"{'positive integer' if kind is int else 'string'}: pick another checkpoint")
    return raw


def is_verified(meta: dict[str, Any]) -> bool:
    """Whether the meta records checksums (ours do; stock nanochat's do not: their files load unverified)."""
    return isinstance(meta.get(FILES_KEY), dict)


def _refusal(e: BaseException) -> str:
    """What a weights-only load refused, in a few words, from torch's long message."""
    text = str(e)
    for pattern in (r"unsupported GLOBAL (\S+)", r"Unsupported global: GLOBAL (\S+)", r"(Unsupported operand \d+)"):
        m = re.search(pattern, text)
        if m:
            return m.group(1) if "operand" in m.group(1) else f"it references {m.group(1)}"
    return "it holds objects other than tensors and plain containers"


def _torch_load(path: Path, device: torch.device | str, meta: dict[str, Any] | None) -> Any:
    """Verify `path` against the meta's record (when it has one), then load it weights-only."""
    record = meta[FILES_KEY].get(path.name) if meta and is_verified(meta) else None
    if record is not None:
        problem = file_record_problem(path, record)
        if problem:
            raise CheckpointError(f"{path}: {problem}: delete this step")
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols on stderr; the error says it all
            warnings.simplefilter("ignore")
            return torch.load(path, map_location=device, weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: checkpoint file missing: pick another step or start fresh") from None
    except Exception as e:  # truncated zip, refused pickle…
        if "Weights only load failed" in str(e):
            raise CheckpointError(f"{path}: refused: not a plain tensor file ({_refusal(e)}); loading it could run "
                                  "code: delete this step or re-save it from a source you trust") from None
        raise CheckpointError(f"{path}: unreadable checkpoint file ({type(e).__name__}): delete this step") from None


def _meta_or_none(ckpt_dir: Path, step: int) -> dict[str, Any] | None:
    try:
        return load_meta(ckpt_dir, step)
    except CheckpointError:
        if meta_file(ckpt_dir, step).exists():
            raise
        return None  # no meta (an incomplete step): nothing to verify against


def load_model_state(ckpt_dir: Path, step: int, device: torch.device | str = "cpu",
                     meta: dict[str, Any] | None = None) -> dict:
    """The model state_dict, checked against the step's meta (read here unless given)."""
    meta = meta if meta is not None else _meta_or_none(ckpt_dir, step)
    state = _torch_load(model_file(ckpt_dir, step), device, meta)
    if not isinstance(state, dict):
        raise CheckpointError(f"{model_file(ckpt_dir, step)}: holds a {type(state).__name__}, not a state_dict: "
                              "delete this step")
    return state


def load_rank_state(ckpt_dir: Path, step: int, rank: int, device: torch.device | str = "cpu",
                    meta: dict[str, Any] | None = None) -> dict:
    """Returns {"optimizer", "dataloader", "rng"}; a stock nanochat file yields only the optimizer."""
    meta = meta if meta is not None else _meta_or_none(ckpt_dir, step)
    path = optim_file(ckpt_dir, step, rank)
    state = _torch_load(path, device, meta)
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: holds a {type(state).__name__}, not optimizer state: delete this step")
    if "optimizer" not in state:
        state = {"optimizer": state, "dataloader": None, "rng": None}
    return state


def load_extra_state(path: Path, device: torch.device | str = "cpu", meta: dict[str, Any] | None = None) -> Any:
    """An engine extension's state file of a step (see save_model_and_meta's extra_files), verified and
    loaded weights-only."""
    return _torch_load(Path(path), device, meta)


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


def weights_mismatch(path: Path, e: RuntimeError) -> CheckpointError:
    """The one-line error for a state_dict that a strict load_state_dict refused (keys or shapes differ)."""
    first = first_line(str(e)).rstrip(":")
    detail = next((line.strip() for line in str(e).splitlines() if "size mismatch" in line or "Missing" in line
                   or "Unexpected" in line), first)
    return CheckpointError(f"{path}: weights do not fit its model_config ({detail[:200]}): the checkpoint is damaged "
                           "or from another architecture; pick another")


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


# ---------------------------------------------------------------------------------------------- stage sources

# where `source: auto` looks for each stage's starting checkpoint, first choice first
SOURCE_PHASES = {"sft": ["base"], "rl": ["sft"], "base_eval": ["base"], "chat_eval": ["rl", "sft"]}
# how to make a checkpoint of each phase, for the error when there is none
_MAKE_PHASE = {"base": "train one first with nanochat-cli train --prefab cpu-tiny",
               "sft": "run SFT first with nanochat-cli train --prefab cpu-tiny-sft",
               "rl": "run RL first with nanochat-cli train --prefab cpu-tiny-rl"}
_MODEL_FILE_RE = re.compile(r"^model_(\d{6})\.pt$")


def _newest_tag_dir(base: Path, phase: str) -> Path | None:
    """The tag dir under the phase folder whose newest complete step was written last (by meta mtime)."""
    root = Path(base) / PHASE_DIRS[phase]
    best: tuple[float, Path] | None = None
    if root.is_dir():
        for tag_dir in root.iterdir():
            step = latest_step(tag_dir) if tag_dir.is_dir() else None
            if step is not None:
                mtime = meta_file(tag_dir, step).stat().st_mtime
                if best is None or mtime > best[0]:
                    best = (mtime, tag_dir)
    return best[1] if best else None


def resolve_source(base: str | Path, stage: str, source: str | Path = "auto", step: int = -1) -> tuple[Path, int]:
    """The checkpoint a stage starts from, as (checkpoint dir, step).

    `source` is "auto" (the newest checkpoint of the stage's previous phase under `base`, see SOURCE_PHASES),
    a checkpoint dir, or a model_XXXXXX.pt file; `step` -1 takes the newest complete step. Every failure is
    one line naming where it looked and what to do."""
    if stage not in SOURCE_PHASES:
        raise EngineError(f"stage {stage!r}: unknown: use one of {', '.join(SOURCE_PHASES)}")
    if str(source) == "auto":
        phases = SOURCE_PHASES[stage]
        for phase in phases:
            found = _newest_tag_dir(Path(base), phase)
            if found is not None:
                ckpt_dir = found
                break
        else:
            where = " or ".join(str(Path(base) / PHASE_DIRS[p]) for p in phases)
            raise EngineError(f"no {phases[-1]} checkpoint in {where}: {_MAKE_PHASE[phases[-1]]}")
    else:
        path = Path(source).expanduser()
        m = _MODEL_FILE_RE.match(path.name)
        if m:
            if step >= 0 and step != int(m.group(1)):
                raise EngineError(f"source {path}: names step {int(m.group(1))} but source_step={step}: pass one "
                                  "of them")
            ckpt_dir, step = path.parent, int(m.group(1))
        elif path.is_dir():
            ckpt_dir = path
        else:
            raise EngineError(f"source {path}: no such checkpoint dir or model_XXXXXX.pt file: point source at "
                              "one, or use source=auto")
    steps = complete_steps(ckpt_dir)
    if not steps:
        raise EngineError(f"source {ckpt_dir}: no complete checkpoint there (meta_XXXXXX.json + model_XXXXXX.pt): "
                          "point source at a checkpoint dir, or use source=auto")
    if step < 0:
        return ckpt_dir, steps[-1]
    if step not in steps:
        raise EngineError(f"source {ckpt_dir}: step {step} is not a complete checkpoint: pick one of "
                          f"{', '.join(map(str, steps[-5:]))}")
    return ckpt_dir, step
