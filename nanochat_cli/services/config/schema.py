"""The run config schema: every knob of a run, grouped into categories, with type, default, range and help.

Engine fields are taken from `engine.config.TrainConfig` as they are (names, help, bounds, hot flag);
this module only says which category each belongs to. Launcher fields the engine never reads
(hardware, data source, auth flags) are declared here. Plugins add categories through the registry.
Keys are dotted "category.field" everywhere, e.g. "model.depth", "training.total_batch_size".
"""

from __future__ import annotations

import difflib
import types
import typing
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import annotated_types as at
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, create_model, model_validator
from pydantic.fields import FieldInfo

from engine.config import TrainConfig, explain
from engine.errors import short_repr
from engine.shared import model_dim
from nanochat_cli.errors import AppError
from nanochat_cli.services.registry import REGISTRY


class ConfigError(AppError):
    """A config that does not validate; `issues` holds every problem, the message the first one."""

    def __init__(self, issues: list[ConfigIssue]) -> None:
        more = f" (and {len(issues) - 1} more)" if len(issues) > 1 else ""
        super().__init__(issues[0].message + more)
        self.issues = issues


@dataclass(frozen=True)
class ConfigIssue:
    field: str  # "category.name"
    value: Any
    message: str  # one line: field, bad value, what is allowed


@dataclass(frozen=True)
class FieldSpec:
    name: str
    category: str
    type_name: str  # "int" | "float" | "bool" | "str" | "choice"
    default: Any
    help: str
    choices: list | None = None
    minimum: float | None = None
    maximum: float | None = None
    hot: bool = False  # may change while a run trains (control channel)
    secret: bool = False
    nullable: bool = False  # None allowed ("none" in an input box)
    readonly: bool = False  # derived (auth flags): shown, never set
    pattern: str | None = None
    min_exclusive: bool = False
    max_exclusive: bool = False
    engine_name: str | None = None  # TrainConfig field it maps to, None for launcher/plugin fields

    @property
    def key(self) -> str:
        return f"{self.category}.{self.name}"


def _f(default: Any, help: str, hot: bool = False, readonly: bool = False, **kw: Any) -> Any:
    return Field(default, description=help, json_schema_extra={"hot": hot, "readonly": readonly}, **kw)


# --- launcher fields (the engine never sees these) ---

class _DataLauncher(BaseModel):
    source: Literal["embedded", "parquet"] = _f(
        "embedded", "training text: the corpus embedded in the engine, or parquet shards in data_dir")


HUNG_KEY = "telemetry.hung_after_s"  # the one hung threshold of a run (services/runs/status.py reads it)
DEFAULT_HUNG_AFTER_S = 300.0  # longer than a slow eval or checkpoint of the shipped prefabs


class _TelemetryLauncher(BaseModel):
    hung_after_s: float = _f(DEFAULT_HUNG_AFTER_S, "call a live run hung after this many seconds without "
                             "telemetry (longer than its slowest eval or checkpoint)", gt=0, le=86400)


STAGES = ("base", "sft", "rl", "eval")  # the pipeline's stages, in order


class _RunLauncher(BaseModel):
    stage: Literal["base", "sft", "rl", "eval"] = _f(
        "base", "pipeline stage: base pretraining, sft (chat fine-tuning), rl (GRPO), or eval (CORE-style base "
                "eval, then chat eval)")
    start_from: str = _f("auto", "checkpoint an sft, rl or eval stage starts from: auto (the newest of the "
                                 "previous stage), a checkpoint dir or a model_XXXXXX.pt file", min_length=1)
    start_step: int = _f(-1, "step of start_from to load (-1 = its newest)", ge=-1)
    stage_options: str = _f("", "more settings of the stage module as key=value pairs separated by spaces, "
                                "e.g. 'num_samples=4 max_new_tokens=48' (python -m engine.<module> --help lists them)")


class HardwareSection(BaseModel):
    model_config = ConfigDict(extra="forbid")
    device: Literal["auto", "cpu", "cuda"] = _f("auto", "device for every process (auto = CUDA when visible)")
    nproc_per_node: int = _f(1, "processes per node (torchrun --nproc-per-node): one per GPU, or CPU workers",
                             ge=1, le=1024)
    nnodes: int = _f(1, "number of nodes (torchrun --nnodes)", ge=1, le=4096)
    node_rank: int = _f(0, "this node's rank among nnodes (torchrun --node-rank)", ge=0)
    rdzv_endpoint: str | None = _f(None, "host:port of node 0 for multi-node runs (torchrun --rdzv-endpoint)",
                                   pattern=r"^[A-Za-z0-9._-]+:[0-9]{1,5}$")


class AuthSection(BaseModel):
    model_config = ConfigDict(extra="forbid")
    wandb_key_set: bool = _f(False, "a W&B API key is stored (set it with `nanochat-cli auth wandb`)", readonly=True)
    hf_token_set: bool = _f(False, "a Hugging Face token is stored (set it with `nanochat-cli auth hf`)",
                            readonly=True)


# --- where each engine field goes: category -> [field or (name here, engine name)] ---
ENGINE_LAYOUT: dict[str, list[str | tuple[str, str]]] = {
    "model": ["depth", "aspect_ratio", "head_dim", "n_kv_head", "max_seq_len", "window_pattern", "vocab_size"],
    "training": ["num_iterations", "target_flops", "target_param_data_ratio", "device_batch_size",
                 "total_batch_size", "embedding_lr", "unembedding_lr", "matrix_lr", "scalar_lr", "weight_decay",
                 "lr_scale", "warmup_iters", "warmdown_ratio", "final_lr_frac", "compile", "fp8", "seed"],
    "data": ["data_dir", "tokenizer_dir", "data_source", "data_source_options"],
    "telemetry": ["eval_every", "eval_tokens", "sample_every", "save_every", "log_every", "wandb",
                  "wandb_project", "wandb_entity", "otel_endpoint"],
    "run": [("name", "run"), "base_dir", "model_tag", "resume", "resume_from_step", "init_from"],
}
# engine fields set from launcher fields instead: hardware.device -> device_type ("auto" -> "")
ENGINE_DERIVED = {"device_type": "hardware.device", "extensions": "plugins"}  # extensions: from plugin categories

_HELP = {
    "model": "shape of the transformer",
    "training": "horizon, batch, optimizer and precision",
    "data": "training text and tokenizer",
    "hardware": "devices, processes and nodes",
    "telemetry": "eval/sample/save cadence and metric sinks",
    "auth": "which secrets are stored (never their values)",
    "run": "run name, folders and resume",
}


def _section(name: str, extra: type[BaseModel] | None = None) -> type[BaseModel]:
    """A pydantic model for one category: the launcher fields of `extra`, then the engine's own FieldInfos."""
    fields: dict[str, Any] = {}
    if extra is not None:
        fields.update({n: (f.annotation, f) for n, f in extra.model_fields.items()})
    for entry in ENGINE_LAYOUT[name]:
        here, there = entry if isinstance(entry, tuple) else (entry, entry)
        info = TrainConfig.model_fields[there]
        fields[here] = (info.annotation, info)
    return create_model(f"{name.title()}Section", __config__=ConfigDict(extra="forbid"), **fields)


ModelSection = _section("model")
TrainingSection = _section("training")
DataSection = _section("data", _DataLauncher)
TelemetrySection = _section("telemetry", _TelemetryLauncher)
RunSection = _section("run", _RunLauncher)

CORE_SECTIONS: dict[str, type[BaseModel]] = {
    "model": ModelSection, "training": TrainingSection, "data": DataSection, "hardware": HardwareSection,
    "telemetry": TelemetrySection, "auth": AuthSection, "run": RunSection,
}
for _name, _model in CORE_SECTIONS.items():
    REGISTRY.register_category(_name, _model, _HELP[_name], builtin=True)

# the registry's live list: core categories, then plugin categories as they register
CATEGORY_ORDER: list[str] = REGISTRY.order

_ENGINE_NAME = {(cat, e if isinstance(e, str) else e[0]): (e if isinstance(e, str) else e[1])
                for cat, entries in ENGINE_LAYOUT.items() for e in entries}


# --- field specs, built from the registered models ---

def _spec(category: str, name: str, info: FieldInfo) -> FieldSpec:
    ann, nullable = info.annotation, False
    if typing.get_origin(ann) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(ann) if a is not type(None)]
        nullable = len(args) < len(typing.get_args(ann))
        ann = args[0] if len(args) == 1 else ann
    choices = None
    if typing.get_origin(ann) is Literal:
        type_name, choices = "choice", list(typing.get_args(ann))
    elif ann in (int, float, bool, str):
        type_name = ann.__name__
    else:
        raise AppError(f"{category}.{name}: unsupported field type {ann!r}: use int, float, bool, str or Literal")
    lo = hi = pattern = None
    lo_x = hi_x = False
    for m in info.metadata:
        if isinstance(m, at.Ge):
            lo = m.ge
        elif isinstance(m, at.Gt):
            lo, lo_x = m.gt, True
        elif isinstance(m, at.Le):
            hi = m.le
        elif isinstance(m, at.Lt):
            hi, hi_x = m.lt, True
        elif getattr(m, "pattern", None):
            pattern = m.pattern
    extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
    return FieldSpec(name=name, category=category, type_name=type_name, default=info.default,
                     help=info.description or "", choices=choices, minimum=lo, maximum=hi,
                     hot=bool(extra.get("hot")), secret=bool(extra.get("secret")), nullable=nullable,
                     readonly=bool(extra.get("readonly")), pattern=pattern, min_exclusive=lo_x,
                     max_exclusive=hi_x, engine_name=_ENGINE_NAME.get((category, name)))


@dataclass(frozen=True)
class _Catalog:
    version: int
    specs: list[FieldSpec]
    by_key: dict[str, FieldSpec]
    by_name: dict[str, list[str]]  # bare name -> dotted keys
    adapters: dict[str, TypeAdapter]


_catalog_cache: list[_Catalog] = []


def _catalog() -> _Catalog:
    if _catalog_cache and _catalog_cache[0].version == REGISTRY.version:
        return _catalog_cache[0]
    specs, adapters, by_name = [], {}, {}
    for cat in REGISTRY.categories():
        for name, info in cat.model.model_fields.items():
            spec = _spec(cat.name, name, info)
            specs.append(spec)
            adapters[spec.key] = TypeAdapter(Annotated[info.annotation, info])
            by_name.setdefault(name, []).append(spec.key)
    catalog = _Catalog(REGISTRY.version, specs, {s.key: s for s in specs}, by_name, adapters)
    _catalog_cache[:] = [catalog]
    return catalog


def field_specs() -> list[FieldSpec]:
    """Every field, core and plugin categories, in display order."""
    return list(_catalog().specs)


def specs_by_category() -> dict[str, list[FieldSpec]]:
    out: dict[str, list[FieldSpec]] = {name: [] for name in REGISTRY.order}
    for spec in _catalog().specs:
        out[spec.category].append(spec)
    return out


def spec_for(key: str) -> FieldSpec:
    return _catalog().by_key[resolve_key(key)]


def defaults() -> dict[str, Any]:
    return {s.key: s.default for s in _catalog().specs}


def resolve_key(key: str) -> str:
    """'model.depth' or an unambiguous bare 'depth' -> 'model.depth'; anything else is a one-line ConfigError."""
    cat = _catalog()
    if key in cat.by_key:
        return key
    if "." not in key and len(cat.by_name.get(key, [])) == 1:
        return cat.by_name[key][0]
    if "." not in key and key in cat.by_name:
        problem, fix = "ambiguous", f"use one of {', '.join(cat.by_name[key])}"
    else:
        close = difflib.get_close_matches(key, list(cat.by_key) + list(cat.by_name), n=3, cutoff=0.6)
        problem = "unknown field"
        fix = f"did you mean {' or '.join(close)}?" if close else "see `nanochat-cli prefabs show NAME` for the fields"
    raise ConfigError([ConfigIssue(key, None, f"{key}: {problem}: {fix}")])


# --- value checks ---

_PATTERN_HINTS = {
    r"^[SL]+$": "use only S (short window) and L (full context), e.g. SSSL",
    r"^[A-Za-z0-9][A-Za-z0-9._-]*$": "start with a letter or digit, then letters, digits, '.', '_' or '-'",
    r"^[A-Za-z0-9._-]+:[0-9]{1,5}$": "use host:port, e.g. 10.0.0.1:29500",
}


def range_text(spec: FieldSpec) -> str:
    """'between 1 and 128', 'at least 0', 'greater than 0 and at most 10', or '' when unbounded."""
    if spec.minimum is not None and spec.maximum is not None and not (spec.min_exclusive or spec.max_exclusive):
        return f"between {spec.minimum:g} and {spec.maximum:g}"
    lo = hi = None
    if spec.minimum is not None:
        lo = ("greater than " if spec.min_exclusive else "at least ") + f"{spec.minimum:g}"
    if spec.maximum is not None:
        hi = ("less than " if spec.max_exclusive else "at most ") + f"{spec.maximum:g}"
    return " and ".join(p for p in (lo, hi) if p)


def _explain(spec: FieldSpec, value: Any, err: dict) -> str:
    kind, rng = err["type"], range_text(spec)
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        problem, fix = "out of range", f"use a value {rng}"
    elif kind == "literal_error":
        problem, fix = "not one of the choices", f"use one of {', '.join(map(str, spec.choices or []))}"
    elif kind == "string_pattern_mismatch":
        problem, fix = "not in the right form", _PATTERN_HINTS.get(spec.pattern or "", f"match {spec.pattern}")
    elif kind.startswith("int_"):
        problem, fix = "not a whole number", "use an integer" + (f" {rng}" if rng else "")
    elif kind.startswith("float_"):
        problem, fix = "not a number", "use a number" + (f" {rng}" if rng else "")
    elif kind.startswith("bool_"):
        problem, fix = "not true or false", "use true or false"
    elif kind.startswith("string_"):
        problem, fix = "not text", "give text (quote it in YAML)"
    else:
        problem, fix = err["msg"].lower(), f"give a valid {spec.type_name}"
    if spec.nullable:
        fix += ", or none"
    return f"{spec.key}: {short_repr(value)} is {problem}: {fix}"


def _check_value(spec: FieldSpec, value: Any) -> tuple[Any, str | None]:
    """(typed value, None) or (value, one-line message)."""
    if spec.type_name in ("int", "float") and isinstance(value, bool):  # YAML `yes` must not become 1
        return value, f"{spec.key}: {short_repr(value)} is not a number: use a number" + (
            f" {range_text(spec)}" if range_text(spec) else "")
    try:
        return _catalog().adapters[spec.key].validate_python(value), None
    except ValidationError as e:
        return value, _explain(spec, value, e.errors()[0])


_TRUE, _FALSE = {"true", "yes", "on", "1"}, {"false", "no", "off", "0"}


def parse_value(spec: FieldSpec, text: str) -> Any:
    """Text from an input box or `--set k=v` -> a typed, range-checked value; ValueError with one line if not."""
    s = text.strip()
    if spec.nullable and s.lower() in ("", "none", "null"):
        value: Any = None
    elif spec.type_name == "bool":
        if s.lower() not in _TRUE | _FALSE:
            raise ValueError(f"{spec.key}: {text!r} is not true or false: use true or false")
        value = s.lower() in _TRUE
    elif spec.type_name == "int":
        try:
            value = int(s.replace("_", ""))
        except ValueError:
            raise ValueError(_explain(spec, text, {"type": "int_parsing", "msg": ""})) from None
    elif spec.type_name == "float":
        try:
            value = float(s.replace("_", ""))
        except ValueError:
            raise ValueError(_explain(spec, text, {"type": "float_parsing", "msg": ""})) from None
    else:
        value = s
    typed, msg = _check_value(spec, value)
    if msg:
        raise ValueError(msg)
    return typed


def _cross_field(v: dict[str, Any]) -> list[ConfigIssue]:
    """Rules that span fields; a rule is skipped when one of its fields already failed its own check."""
    out: list[ConfigIssue] = []

    def has(*keys: str) -> bool:
        return all(k in v for k in keys)

    def issue(key: str, msg: str) -> None:
        out.append(ConfigIssue(key, v.get(key), f"{key}: {msg}"))

    if has("model.depth", "model.aspect_ratio", "model.head_dim", "model.n_kv_head"):
        hd, kv = v["model.head_dim"], v["model.n_kv_head"]
        dim = model_dim(v["model.depth"], v["model.aspect_ratio"], hd)
        n_head = dim // hd
        if hd % 2:
            issue("model.head_dim", f"{hd} is odd: rotary embeddings rotate pairs of dims: use an even head_dim "
                                    "such as 64 or 128")
        if kv is not None and n_head % kv:
            divisors = ", ".join(str(d) for d in range(1, n_head + 1) if n_head % d == 0)
            issue("model.n_kv_head", f"{kv} does not divide n_head = {n_head} (model_dim {dim} / head_dim {hd}): "
                                     f"use one of {divisors}, or none")
    batch_keys = ("training.total_batch_size", "training.device_batch_size", "model.max_seq_len",
                  "hardware.nproc_per_node", "hardware.nnodes")
    if has(*batch_keys):
        total, b, t, nproc, nodes = (v[k] for k in batch_keys)
        world, unit = nproc * nodes, b * t * nproc * nodes
        if total % unit:
            lower, upper = total // unit * unit, (total // unit + 1) * unit
            eg = f"{lower} or {upper}" if lower else f"{upper}"
            issue("training.total_batch_size",
                  f"{total} is not a multiple of device_batch_size × max_seq_len × world size = "
                  f"{b} × {t} × {world} = {unit}: use a multiple of {unit}, e.g. {eg}")
        if has("telemetry.eval_tokens") and v["telemetry.eval_tokens"] < unit:
            issue("telemetry.eval_tokens", f"{v['telemetry.eval_tokens']} is less than one eval batch "
                                           f"(device_batch_size × max_seq_len × world size = {unit}): "
                                           f"use at least {unit}")
    if has("data.source", "data.data_dir"):
        if v["data.source"] == "parquet" and v["data.data_dir"] is None:
            issue("data.data_dir", "not set but data.source is parquet: set it to a folder of parquet shards, "
                                   "or set data.source=embedded")
        if v["data.source"] == "embedded" and v["data.data_dir"] is not None:
            issue("data.source", f"'embedded' but data.data_dir is set ({v['data.data_dir']}): set "
                                 "data.source=parquet, or clear data.data_dir")
    if has("training.fp8", "hardware.device") and v["training.fp8"] and v["hardware.device"] == "cpu":
        issue("training.fp8", "true on hardware.device=cpu: FP8 needs a CUDA GPU (SM89+): set training.fp8=false")
    if has("hardware.node_rank", "hardware.nnodes") and v["hardware.node_rank"] >= v["hardware.nnodes"]:
        issue("hardware.node_rank", f"{v['hardware.node_rank']} is not below hardware.nnodes = "
                                    f"{v['hardware.nnodes']}: use 0..{v['hardware.nnodes'] - 1}")
    if has("hardware.nnodes", "hardware.rdzv_endpoint") and v["hardware.nnodes"] > 1 \
            and v["hardware.rdzv_endpoint"] is None:
        issue("hardware.rdzv_endpoint", f"not set but hardware.nnodes = {v['hardware.nnodes']}: set it to "
                                        "host:port of node 0")
    if has("run.resume", "run.init_from") and v["run.resume"] and v["run.init_from"] is not None:
        issue("run.init_from", "set while run.resume is true: resume continues this run's checkpoint; "
                               "clear run.init_from or set run.resume=false")
    if has("run.resume", "run.resume_from_step") and v["run.resume_from_step"] >= 0 and not v["run.resume"]:
        issue("run.resume_from_step", f"{v['run.resume_from_step']} but run.resume is false: set run.resume=true "
                                      "or run.resume_from_step=-1")
    return out


def check(values: dict[str, Any]) -> tuple[dict[str, Any], list[ConfigIssue]]:
    """Validate a dotted config (missing keys take defaults): (typed values, issues)."""
    cat = _catalog()
    typed: dict[str, Any] = {}
    issues: list[ConfigIssue] = []
    merged = {**defaults(), **values}
    for key, value in merged.items():
        spec = cat.by_key.get(key)
        if spec is None:
            try:
                issues.append(ConfigIssue(key, value, f"{key}: not a dotted key: write {resolve_key(key)}"))
            except ConfigError as e:
                issues.extend(e.issues)
            continue
        value, msg = _check_value(spec, value)
        if msg:
            issues.append(ConfigIssue(key, value, msg))
        else:
            typed[key] = value
    for category in REGISTRY.categories():  # a plugin model's own validators
        keys = [s.key for s in cat.specs if s.category == category.name]
        if category.builtin or not all(k in typed for k in keys):
            continue
        try:
            category.model.model_validate({k.split(".", 1)[1]: typed[k] for k in keys})
        except ValidationError as e:
            issues.append(ConfigIssue(category.name, None, f"{category.name}: {explain(e, category.name)}"))
    issues.extend(_cross_field(typed))
    return typed, issues


def validate_overrides(base: dict[str, Any], overrides: dict[str, Any]) -> list[ConfigIssue]:
    """Every problem with `base` + `overrides`: unknown or read-only keys, bad values, cross-field rules."""
    issues: list[ConfigIssue] = []
    merged = dict(base)
    for key, value in overrides.items():
        try:
            k = resolve_key(key)
        except ConfigError as e:
            issues.append(ConfigIssue(key, value, e.issues[0].message))
            continue
        if _catalog().by_key[k].readonly:
            issues.append(ConfigIssue(k, value, f"{k}: read-only (derived from the secret store): manage secrets "
                                                 "with `nanochat-cli auth`"))
            continue
        merged[k] = value
    return issues + check(merged)[1]


def normalize_overrides(overrides: dict[str, Any]) -> dict[str, Any]:
    """Bare keys -> dotted keys; raises ConfigError for unknown or ambiguous ones."""
    return {resolve_key(k): v for k, v in overrides.items()}


def engine_extensions(resolved: dict[str, Any]) -> list[dict[str, Any]]:
    """The plugins' engine extensions switched on in `resolved`, as TrainConfig.extensions entries (each with
    its category's values, defaults filled in, as settings)."""
    out = []
    for ext in REGISTRY.engine_extensions():
        if not resolved.get(ext.enabled_key, REGISTRY.config_default(ext.enabled_key)):
            continue
        cat = REGISTRY.get(ext.name)
        settings = {name: resolved.get(f"{ext.name}.{name}", REGISTRY.config_default(f"{ext.name}.{name}"))
                    for name in cat.model.model_fields}
        out.append({"name": ext.name, "entry": ext.entry, "settings": settings})
    return out


def to_engine_config(resolved: dict[str, Any]) -> TrainConfig:
    """Flatten the engine's categories into a TrainConfig (launcher and plugin fields are left out)."""
    values = {s.engine_name: resolved[s.key] for s in _catalog().specs if s.engine_name and s.key in resolved}
    device = resolved.get(ENGINE_DERIVED["device_type"], "auto")
    values["device_type"] = "" if device == "auto" else device
    extensions = engine_extensions(resolved)
    if extensions:  # none on: the field stays at its default and the run is a vanilla one
        values["extensions"] = extensions
    try:
        return TrainConfig(**values)
    except ValidationError as e:
        raise AppError(explain(e, "config")) from None


def nest(values: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """{"model.depth": 4} -> {"model": {"depth": 4}}, categories in display order."""
    out: dict[str, dict[str, Any]] = {}
    for key, value in values.items():
        cat, _, name = key.partition(".")
        out.setdefault(cat, {})[name] = value
    return {c: out[c] for c in REGISTRY.order if c in out} | {c: d for c, d in out.items() if c not in REGISTRY.order}


def flatten(nested: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {f"{cat}.{name}": v for cat, section in nested.items() for name, v in section.items()}


class RunConfig(BaseModel):
    """A whole run config, one section per core category; `run_config_model()` adds plugin sections."""

    model_config = ConfigDict(extra="forbid")
    model: ModelSection = Field(default_factory=ModelSection)
    training: TrainingSection = Field(default_factory=TrainingSection)
    data: DataSection = Field(default_factory=DataSection)
    hardware: HardwareSection = Field(default_factory=HardwareSection)
    telemetry: TelemetrySection = Field(default_factory=TelemetrySection)
    auth: AuthSection = Field(default_factory=AuthSection)
    run: RunSection = Field(default_factory=RunSection)

    @model_validator(mode="after")
    def _rules(self) -> RunConfig:
        issues = _cross_field(self.flat())
        if issues:
            raise ValueError("; ".join(i.message for i in issues))
        return self

    def flat(self) -> dict[str, Any]:
        return flatten(self.model_dump())

    @classmethod
    def from_flat(cls, values: dict[str, Any]) -> RunConfig:
        return run_config_model().model_validate(nest(values))


_run_model_cache: dict[int, type[RunConfig]] = {}


def run_config_model() -> type[RunConfig]:
    """RunConfig, extended with a section per registered plugin category."""
    plugins = [c for c in REGISTRY.categories() if not c.builtin]
    if not plugins:
        return RunConfig
    if REGISTRY.version not in _run_model_cache:
        fields = {c.name: (c.model, Field(default_factory=c.model)) for c in plugins}
        _run_model_cache.clear()
        _run_model_cache[REGISTRY.version] = create_model("RunConfigWithPlugins", __base__=RunConfig, **fields)
    return _run_model_cache[REGISTRY.version]
