"""Checkpoint vs the active config: compatible, loadable with warnings, or incompatible; reasons and remedies.

The active config is a resolved dict with dotted keys. Every reason names what differs and a remedy,
in words and as dotted overrides a screen can apply ("set model.depth=12", "use its tokenizer").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from engine.shapes import config_from_depth
from engine.shared import model_dim
from nanochat_cli.formatting import setting
from nanochat_cli.services.checkpoints.entries import CheckpointEntry
from nanochat_cli.services.registry import REGISTRY, Registry


@dataclass
class CompatReason:
    level: str  # "error" | "warn"
    message: str
    remedy: str
    overrides: dict[str, Any] = field(default_factory=dict)  # dotted config changes that apply the remedy


@dataclass
class Compat:
    level: str  # "compatible" | "warnings" | "incompatible"
    reasons: list[CompatReason] = field(default_factory=list)

    @property
    def loadable(self) -> bool:
        return self.level != "incompatible"


@dataclass
class ActiveConfig:
    """What the active config implies for checkpoints: its model shape, tokenizer and data."""

    resolved: dict[str, Any]
    base: Path
    model_config: dict[str, Any]
    tokenizer_dir: str | None  # the dir the engine would load, None when it cannot be told
    tokenizer_hash: str | None  # None: not built yet, or unreadable (see tokenizer_note)
    tokenizer_note: str
    explicit_tokenizer: bool  # data.tokenizer_dir is set
    data_dir: str | None


def arch_overrides(model_config: dict[str, Any]) -> dict[str, Any]:
    """Config values (dotted keys) that rebuild exactly this model_config."""
    L, C, H, kv = model_config["n_layer"], model_config["n_embd"], model_config["n_head"], model_config["n_kv_head"]
    hd = C // H
    ar = C // L if C % L == 0 else 0
    if not ar or model_dim(L, ar, hd) != C:
        ar = next((a for a in range(1, C + 1) if model_dim(L, a, hd) == C), C)
    return {"model.depth": L, "model.aspect_ratio": ar, "model.head_dim": hd,
            "model.n_kv_head": None if kv == H else kv, "model.max_seq_len": model_config["sequence_len"],
            "model.window_pattern": model_config["window_pattern"], "model.vocab_size": model_config["vocab_size"]}


def config_model_config(resolved: dict[str, Any], vocab_size: int | None = None) -> dict[str, Any]:
    """The model_config a run of this config would write (the engine's own depth rule)."""
    return config_from_depth(resolved["model.depth"], resolved["model.aspect_ratio"], resolved["model.head_dim"],
                             resolved["model.max_seq_len"], vocab_size or resolved["model.vocab_size"],
                             resolved["model.window_pattern"], resolved["model.n_kv_head"]).to_dict()


@lru_cache(maxsize=8)
def embedded_corpus_dir(base: str) -> str:
    from engine.corpus import corpus_dir

    return str(corpus_dir(Path(base)))


def _set(overrides: dict[str, Any]) -> str:
    def show(v: Any) -> str:
        return "none" if v is None else str(v)

    return "set " + " ".join(f"{k}={show(v)}" for k, v in overrides.items())


_ARCH_NAMES = {"n_layer": "depth", "n_embd": "model_dim", "n_head": "heads", "n_kv_head": "kv heads",
               "sequence_len": "max_seq_len", "window_pattern": "window_pattern"}


def _cli_value(v: Any) -> str:
    return "none" if v is None else str(v).lower() if isinstance(v, bool) else str(v)


def compatibility(entry: CheckpointEntry, active: ActiveConfig, registry: Registry = REGISTRY) -> Compat:
    """Can `entry` seed a run of the active config (and be evaluated/chatted with)? Reasons carry remedies.
    Besides the model, tokenizer and data, each checkpoint field a plugin registered is compared."""
    reasons: list[CompatReason] = []

    def add(level: str, message: str, remedy: str, overrides: dict[str, Any] | None = None) -> None:
        reasons.append(CompatReason(level, message, remedy, overrides or {}))

    if not entry.complete:
        add("error", f"{entry.status} checkpoint: {entry.problem}; it is never loaded",
            f"delete it (nanochat-cli checkpoints delete {entry.ckpt_dir} --step {entry.step}) or pick another step")
        return Compat("incompatible", reasons)
    ours, theirs = entry.model_config or {}, active.model_config
    diffs = [k for k in _ARCH_NAMES if ours.get(k) != theirs.get(k)]
    if diffs:
        fix = {k: v for k, v in arch_overrides(ours).items() if k != "model.vocab_size" and active.resolved.get(k) != v}
        detail = ", ".join(f"{_ARCH_NAMES[k]} {ours[k]} (config: {theirs[k]})" for k in diffs)
        add("error", f"architecture differs: {detail}", _set(fix), fix)
    ckpt_tok = entry.tokenizer_dir or stock_tokenizer_dir(entry)
    use_tok = {"data.tokenizer_dir": ckpt_tok} if ckpt_tok else {}
    if ours.get("vocab_size") != theirs.get("vocab_size"):
        fix = {"model.vocab_size": ours["vocab_size"], **(use_tok or {"data.tokenizer_dir": None})}
        add("error", f"vocab differs: {ours.get('vocab_size')} tokens (config: {theirs.get('vocab_size')})",
            f"use its tokenizer: {_set(fix)}" if use_tok else
            f"{_set(fix)} (a new tokenizer of that size is trained: not the one the checkpoint learned)", fix)
    elif entry.tokenizer_hash and active.tokenizer_hash and entry.tokenizer_hash != active.tokenizer_hash:
        add("error", f"this checkpoint's tokenizer differs (hash {entry.tokenizer_hash}, config's "
                     f"{active.tokenizer_hash})",
            f"use its tokenizer: {_set(use_tok)}" if use_tok else "retrain with the config's tokenizer", use_tok)
    elif not entry.tokenizer_hash:
        add("warn", "the checkpoint records no tokenizer hash, so its tokenizer cannot be verified",
            f"make sure it was trained with {ckpt_tok}" if ckpt_tok else
            "find the tokenizer it was trained with and set data.tokenizer_dir", use_tok)
    elif not active.tokenizer_hash:
        add("warn", f"the config's tokenizer is not known yet ({active.tokenizer_note})",
            f"use the checkpoint's: {_set(use_tok)}" if use_tok else "retrain, or set data.tokenizer_dir", use_tok)
    if entry.data_dir and active.data_dir and Path(entry.data_dir) != Path(active.data_dir):
        fix = data_overrides(entry)
        add("warn", f"trained on other data ({entry.data_dir}; the config reads {active.data_dir})",
            f"to continue on the same data, {_set(fix)}", fix)
    if entry.phase != "base":
        add("warn", f"a {entry.phase.upper()} checkpoint: only its weights can seed a run (no resume)",
            "start from its weights (init_from)")
    elif not entry.resumable:
        add("warn", "no optimizer state for every rank: it cannot be resumed exactly", "start from its weights")
    for f in registry.checkpoint_fields():
        in_ckpt = entry.setting(f.key, registry)
        in_config = active.resolved.get(f.key, registry.config_default(f.key))
        if in_ckpt != in_config:
            add(f.level, f"{f.title} is {setting(in_ckpt)} in the checkpoint, {setting(in_config)} in the config",
                f"set {f.key}={_cli_value(in_ckpt)}", {f.key: in_ckpt})
    level = ("incompatible" if any(r.level == "error" for r in reasons)
             else "warnings" if reasons else "compatible")
    return Compat(level, reasons)


def stock_tokenizer_dir(entry: CheckpointEntry) -> str | None:
    """Stock nanochat keeps one tokenizer at <base>/tokenizer."""
    p = entry.base / "tokenizer"
    return str(p) if (p / "tokenizer.pkl").is_file() else None


def data_overrides(entry: CheckpointEntry) -> dict[str, Any]:
    """Config values that read the data the checkpoint was trained on."""
    d = Path(entry.data_dir)
    if d.parent == entry.base / "data" and d.name.startswith("embedded-"):
        return {"data.source": "embedded", "data.data_dir": None}
    return {"data.source": "parquet", "data.data_dir": str(d)}
