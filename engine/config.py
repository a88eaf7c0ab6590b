"""The engine's training config: one pydantic model, the single source of every knob.

The command-line flags of `engine.train` are generated from it (names mirror nanochat's
`base_train`), `--config FILE.yaml` loads the same fields, and the TUI's config manager
builds on it. Fields marked `hot=True` may be changed while a run trains, through the
control channel (`engine/control.py`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_serializer, model_validator

from engine import shared
from engine.errors import EngineError, short_repr
from engine.safe_yaml import load_yaml_file


def _f(default: Any, help: str, hot: bool = False, **kw: Any) -> Any:
    return Field(default, description=help, json_schema_extra={"hot": hot}, **kw)


class SinkFields(BaseModel):
    """The telemetry sink settings every stage module takes (W&B, OpenTelemetry), defined once."""

    wandb: Literal["disabled", "offline", "online"] = _f("disabled", "W&B logging mode")
    wandb_project: str = _f("nanochat", "W&B project")
    wandb_entity: str | None = _f(None, "W&B entity")
    otel_endpoint: str | None = _f(None, "OTLP endpoint for OpenTelemetry spans (None = off)")


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    # run identity and where things go
    run: str = _f("run", "run name: run dir <base>/runs/<run>, checkpoint tag and W&B run name",
                  pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    model_tag: str | None = _f(None, "checkpoint dir name under base_checkpoints/ (default: the run name)")
    base_dir: str | None = _f(None, "base dir for data, tokenizer, runs, checkpoints (default $NANOCHAT_BASE_DIR "
                                    "or ~/.cache/nanochat)")
    device_type: Literal["", "cpu", "cuda", "mps"] = _f("", "device: cpu, cuda or mps ('' = autodetect)")
    seed: int = _f(42, "random seed (model init, data order of samples)")

    # model
    depth: int = _f(20, "number of transformer layers", ge=1, le=128)
    aspect_ratio: int = _f(64, "model_dim = depth * aspect_ratio, rounded up to a multiple of head_dim", ge=1)
    head_dim: int = _f(128, "attention head dimension", ge=8, le=512)
    n_kv_head: int | None = _f(None, "key/value heads for GQA (default: same as query heads)", ge=1)
    max_seq_len: int = _f(2048, "context length in tokens", ge=16)
    window_pattern: str = _f("SSSL", "sliding-window pattern tiled over layers (S=quarter context, L=full)",
                             pattern=r"^[SL]+$")
    vocab_size: int = _f(32768, "tokenizer vocabulary size (used when the engine trains its own tokenizer)",
                         ge=265, le=1_000_000)

    # horizon: first of num_iterations > 0, target_flops > 0, else target_param_data_ratio
    num_iterations: int = _f(-1, "explicit number of optimizer steps (-1 = derive from the ratio)", hot=True, ge=-1)
    target_flops: float = _f(-1.0, "derive steps from a FLOPs budget (-1 = off)")
    target_param_data_ratio: float = _f(10.5, "tokens : params ratio that sets the horizon", gt=0)

    # batch
    device_batch_size: int = _f(32, "sequences per device per micro-step", ge=1)
    total_batch_size: int = _f(524288, "tokens per optimizer step (gradient accumulation fills it)", ge=1)

    # optimizer
    embedding_lr: float = _f(0.3, "AdamW lr for the token embedding", ge=0)
    unembedding_lr: float = _f(0.008, "AdamW lr for lm_head", ge=0)
    matrix_lr: float = _f(0.02, "Muon lr for the block matrices", ge=0)
    scalar_lr: float = _f(0.5, "AdamW lr for the per-layer scalars", ge=0)
    weight_decay: float = _f(0.2, "Muon weight decay (cosine-decayed to 0 over the run)", ge=0)
    lr_scale: float = _f(1.0, "multiplier applied on top of the LR schedule", hot=True, gt=0, le=10)
    warmup_iters: int = _f(40, "LR warm-up steps", ge=0)
    warmdown_ratio: float = _f(0.65, "fraction of steps spent in LR warm-down", ge=0, le=1)
    final_lr_frac: float = _f(0.05, "LR multiplier reached at the end of warm-down", ge=0, le=1)

    # precision / speed
    compile: bool = _f(False, "torch.compile the model (off by default; slow to start on CPU)")
    fp8: bool = _f(False, "FP8 matmuls (CUDA SM89+ only)")

    # data
    data_dir: str | None = _f(None, "folder of parquet shards with a 'text' column (default: embedded corpus)")
    tokenizer_dir: str | None = _f(None, "folder with tokenizer.pkl (default: trained once on the data and cached)")
    data_source: str | None = _f(None, "module:callable that supplies tokenizer and batches instead of data_dir "
                                       "(see engine/data_source.py; None = parquet text)",
                                 pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
    data_source_options: str | None = _f(None, "text passed to the data_source callable (its own format)")

    # cadence
    eval_every: int = _f(250, "evaluate val bits-per-byte every N steps (-1 = only at the end)", hot=True, ge=-1)
    eval_tokens: int = _f(10 * 524288, "tokens per validation pass", hot=True, ge=1)
    sample_every: int = _f(2000, "generate a sample every N steps (-1 = never)", hot=True, ge=-1)
    save_every: int = _f(-1, "save a checkpoint every N steps (-1 = only at the end)", hot=True, ge=-1)
    log_every: int = _f(1, "print a progress line every N steps", hot=True, ge=1)

    # resume
    resume: bool = _f(False, "continue from the latest checkpoint of this run (exact resume)")
    resume_from_step: int = _f(-1, "resume from this step instead of the latest", ge=-1)
    init_from: str | None = _f(None, "start from the weights of this checkpoint (model_*.pt path); fresh optimizer")

    # telemetry sinks
    wandb: Literal["disabled", "offline", "online"] = _f("disabled", "W&B logging mode")
    wandb_project: str = _f("nanochat", "W&B project")
    wandb_entity: str | None = _f(None, "W&B entity")
    otel_endpoint: str | None = _f(None, "OTLP endpoint for OpenTelemetry spans (None = off)")

    # engine extensions (engine/extensions.py), set by plugins: [{name, entry: "module:Class", settings}]
    extensions: list[dict[str, Any]] = _f([], "engine extensions to load, as JSON: [{name, entry, settings}] "
                                              "(plugins set this; [] = a vanilla run)")

    @field_validator("extensions", mode="before")
    @classmethod
    def _extensions_json(cls, v: Any) -> Any:
        if isinstance(v, str):  # from a flag: --extensions='[...]'
            try:
                return json.loads(v) if v.strip() else []
            except ValueError as e:
                raise ValueError(f"not JSON ({e})") from None
        return v

    @field_validator("extensions")
    @classmethod
    def _extensions_shape(cls, v: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for spec in v:
            if not isinstance(spec.get("name"), str) or not isinstance(spec.get("entry"), str):
                raise ValueError("each extension needs a 'name' and an 'entry' ('module:Class')")
        return v

    @model_serializer(mode="wrap")
    def _dump(self, handler: Any) -> dict[str, Any]:
        data = handler(self)
        if not self.extensions:  # a vanilla run's config (telemetry, checkpoint meta) stays as it always was
            data.pop("extensions", None)
        return data

    @model_validator(mode="after")
    def _cross_field(self) -> TrainConfig:
        if self.n_kv_head is not None:
            n_head = self.model_dim // self.head_dim
            if n_head % self.n_kv_head:
                raise ValueError(f"n_kv_head={self.n_kv_head} must divide n_head={n_head}")
        return self

    # derived
    @property
    def model_dim(self) -> int:
        return shared.model_dim(self.depth, self.aspect_ratio, self.head_dim)

    @property
    def tag(self) -> str:
        return self.model_tag or self.run


def hot_fields(cls: type[BaseModel]) -> frozenset[str]:
    """The fields of a stage config that a running job may change (marked hot=True)."""
    return frozenset(name for name, f in cls.model_fields.items() if (f.json_schema_extra or {}).get("hot"))


HOT_PATCHABLE: frozenset[str] = hot_fields(TrainConfig)


def explain(err: ValidationError, source: str = "config") -> str:
    """Turn a pydantic error into one line: field, bad value, what is allowed."""
    e = err.errors()[0]
    field = ".".join(str(p) for p in e["loc"]) or "config"
    value = e.get("input")
    value_s = "" if isinstance(value, dict) else f" (got {short_repr(value)})"
    return f"{source}: {field}: {e['msg']}{value_s}"


def load_yaml_config(path: str | Path, cls: type[BaseModel] = TrainConfig) -> dict[str, Any]:
    """Read a YAML config: flat engine keys, or category sections (model:, training:, …) that are flattened.

    Sections named in `LAUNCHER_SECTIONS` belong to the launcher (e.g. hardware: nproc, nodes) and are dropped.
    """
    p = Path(path)
    raw = load_yaml_file(p) or {}
    if not isinstance(raw, dict):
        raise EngineError(f"{p}: expected a mapping of config keys at the top level")
    flat: dict[str, Any] = {}
    for key, value in raw.items():
        if isinstance(value, dict) and key not in cls.model_fields:
            if key in LAUNCHER_SECTIONS:
                continue
            flat.update(value)
        else:
            flat[key] = value
    return flat


# sections of a resolved TUI config that the engine does not read
LAUNCHER_SECTIONS = frozenset({"hardware", "auth", "meta", "plugins"})


def build_arg_parser(cls: type[BaseModel] = TrainConfig, prog: str = "engine.train",
                     description: str = "Pretrain a nanochat-style GPT.") -> argparse.ArgumentParser:
    """Flags generated from a stage config (TrainConfig: --depth, --max-seq-len, --compile/--no-compile, …)"""
    p = argparse.ArgumentParser(prog=prog, description=description)
    p.add_argument("--config", help="YAML file with config keys; flags override it")
    for name, f in cls.model_fields.items():
        flag = "--" + name.replace("_", "-")
        if f.annotation is bool:
            p.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, default=None, help=f.description)
        else:
            p.add_argument(flag, dest=name, default=None, help=f.description, metavar=name.upper())
    return p


def parse_config(argv: list[str] | None = None, cls: type[BaseModel] = TrainConfig, prog: str = "engine.train",
                 description: str = "Pretrain a nanochat-style GPT.") -> Any:
    """Flags over --config over defaults; any problem becomes an EngineError with one line.
    `cls` is the stage's config class (TrainConfig for engine.train); it returns an instance of it."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--"]:  # `torchrun ... -m engine.train -- --run x`: the separator keeps torchrun off our flags
        argv = argv[1:]
    args = build_arg_parser(cls, prog, description).parse_args(argv)
    values: dict[str, Any] = load_yaml_config(args.config, cls) if args.config else {}
    values.update({k: v for k, v in vars(args).items() if k != "config" and v is not None})
    for k, f in cls.model_fields.items():  # optional keys: "", none and None all mean unset
        if f.default is None and values.get(k) in ("", "none", "None"):
            values[k] = None
    try:
        return cls(**values)
    except ValidationError as e:
        raise EngineError(explain(e, args.config or "flags")) from None


def validate_patch(cfg: Any, patch: dict[str, Any]) -> tuple[Any, str | None]:
    """Check a mid-run patch of any stage config: only hot keys, valid values. Returns (new config, None)
    or (None, reason)."""
    cls = type(cfg)
    hot = HOT_PATCHABLE if cls is TrainConfig else hot_fields(cls)
    cold = sorted(set(patch) - hot)
    if cold:
        return None, f"not hot-patchable: {', '.join(cold)} (allowed: {', '.join(sorted(hot))})"
    try:
        return cls(**{**cfg.model_dump(), **patch}), None
    except ValidationError as e:
        return None, explain(e, "patch")
