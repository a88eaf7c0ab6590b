"""The plugin's TOML configs, as in the original tool: `engine.toml` (log level, output paths) and
`wgsl_generation.toml` (task, model, training, tokenizer, dataset). Read with tomllib, validated with
pydantic; every mistake is one line naming the file and the key (`training.batch_size`), all reported at once.

The [model] and [training] values are the engine's (its GPT, its optimizer schedule), named as in the
original where the meaning carries over: `num_layers` is the GPT's depth, `d_model` its width, `nhead` its
attention heads.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from nanochat_plugins.wgsl import dataset
from nanochat_plugins.wgsl.errors import WgslError

ENGINE_FILE, GENERATION_FILE = "engine.toml", "wgsl_generation.toml"
DEFAULT_CONFIG_DIR = "config"
MAX_CONFIG_BYTES = 1 << 20


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True, strict=True)  # "4" is not 4 in TOML


def _not_empty(v: str) -> str:
    if not v.strip():
        raise ValueError("must not be empty")
    return v


class PathsConfig(_Section):
    log_path: str = Field("logs/", description="where `wgsl` commands write wgsl.log")
    journal_path: str = Field("journals/", description="training journals (one per run)")
    checkpoint_path: str = Field("checkpoints/", description="model checkpoints")

    _check = field_validator("log_path", "journal_path", "checkpoint_path")(_not_empty)


class EngineConfig(_Section):
    log_level: Literal["DEBUG", "INFO", "WARN", "ERROR"] = Field("INFO", description="DEBUG, INFO, WARN or ERROR")
    paths: PathsConfig = Field(default_factory=PathsConfig)


class TaskConfig(_Section):
    name: str = Field("wgsl_generation", description="a name for this task")
    task_type: Literal["code_generation"] = Field("code_generation", description="code_generation (the only one)")
    description: str = Field("Generate WGSL compute shaders from natural language", description="free text")


class ModelConfig(_Section):
    architecture: Literal["gpt"] = Field("gpt", description="the engine's GPT (the only one)")
    num_layers: int = Field(4, ge=1, le=64, description="transformer layers (the GPT's depth)")
    d_model: int = Field(256, ge=16, le=8192, description="model width; a multiple of nhead")
    nhead: int = Field(4, ge=1, le=128, description="attention heads; d_model / nhead >= 8")
    max_seq_len: int = Field(1024, ge=64, le=65536, description="context length in tokens; >= tokenizer.max_length")

    @model_validator(mode="after")
    def _heads(self) -> ModelConfig:
        if self.d_model % self.nhead:
            raise ValueError(f"d_model={self.d_model} is not a multiple of nhead={self.nhead}")
        if self.d_model // self.nhead < 8:
            raise ValueError(f"d_model / nhead = {self.d_model // self.nhead}: heads need at least 8 dimensions")
        return self


class TrainingConfig(_Section):
    num_epochs: int = Field(30, ge=1, le=100_000, description="passes over the train split")
    batch_size: int = Field(8, ge=1, le=4096, description="pairs per micro-batch per process")
    lr_scale: float = Field(1.0, gt=0, le=10, description="multiplier on the engine's learning rates")
    warmup_steps: int = Field(20, ge=0, description="learning-rate warm-up steps")
    eval_every: int = Field(50, ge=-1, description="validate every N steps (-1 = only at the end)")
    save_every: int = Field(-1, ge=-1, description="checkpoint every N steps (-1 = only at the end)")
    seed: int = Field(42, description="model init and data order")
    device: Literal["auto", "cpu", "cuda", "mps"] = Field("auto", description="auto, cpu, cuda or mps")


class TokenizerConfig(_Section):
    tokenizer_type: Literal["wgsl"] = Field("wgsl", description="wgsl: BPE prompts + WGSL lexer tokens")
    max_length: int = Field(1024, ge=32, le=65536, description="most tokens in one prompt+shader pair")
    nl_vocab_size: int = Field(512, ge=265, le=65536, description="BPE tokens for the prompts (incl. 9 specials)")
    lowercase: bool = Field(False, description="lowercase prompts before BPE")
    min_freq: int = Field(1, ge=1, description="WGSL tokens seen fewer times are spelled in pieces")


class DatasetConfig(_Section):
    path: str = Field("", description="folder of train/val/test.jsonl ('' = the dataset shipped with the plugin)")
    per_family: int = Field(dataset.PER_FAMILY, ge=1, le=1000, description="pairs per template family")
    seed: int = Field(dataset.SEED, ge=0, description="generation seed")
    val_families: list[str] = Field(list(dataset.VAL_FAMILIES), description="families held out for validation")
    test_families: list[str] = Field(list(dataset.TEST_FAMILIES), description="families held out for testing")

    @model_validator(mode="after")
    def _families(self) -> DatasetConfig:
        from nanochat_plugins.wgsl import templates

        for key in ("val_families", "test_families"):
            for name in getattr(self, key):
                if name not in templates.FAMILIES:
                    raise ValueError(f"{key}: unknown family {name!r} (nanochat-cli wgsl templates lists them)")
        both = sorted(set(self.val_families) & set(self.test_families))
        if both:
            raise ValueError(f"{both[0]} is in both val_families and test_families: keep it in one")
        return self


class GenerationConfig(_Section):
    task: TaskConfig = Field(default_factory=TaskConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    tokenizer: TokenizerConfig = Field(default_factory=TokenizerConfig)
    dataset: DatasetConfig = Field(default_factory=DatasetConfig)

    @model_validator(mode="after")
    def _lengths(self) -> GenerationConfig:
        if self.tokenizer.max_length > self.model.max_seq_len:
            raise ValueError(f"tokenizer.max_length={self.tokenizer.max_length} is over model.max_seq_len="
                             f"{self.model.max_seq_len}: a pair must fit the context")
        return self


KINDS: dict[str, type[_Section]] = {"engine": EngineConfig, "generation": GenerationConfig}


@dataclass(frozen=True)
class ConfigIssue:
    key: str
    message: str  # the full one-line error


class ConfigError(WgslError):
    """Every mistake in one config file; `issues` holds one line each (the CLI prints them all)."""

    def __init__(self, issues: list[ConfigIssue]):
        super().__init__(issues[0].message if len(issues) == 1 else
                         f"{len(issues)} problems: " + " | ".join(i.message for i in issues))
        self.issues = issues


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _issues(err: ValidationError, source: str, model: type[_Section]) -> list[ConfigIssue]:
    out = []
    for e in err.errors():
        loc = [str(p) for p in e["loc"] if not isinstance(p, int)]
        key = ".".join(loc) or "(file)"
        if e["type"] == "extra_forbidden":
            section = model
            for part in loc[:-1]:
                field = section.model_fields.get(part)
                ann = field.annotation if field else None
                section = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else section
            known = ", ".join(section.model_fields)
            msg = f"{source}: {key}: unknown key: remove it or use one of: {known}"
        elif e["type"] == "missing":
            msg = f"{source}: {key}: missing: add it"
        else:
            why = e["msg"].removeprefix("Value error, ")
            got = "" if isinstance(e.get("input"), dict) else f" (got {_describe(e.get('input'))})"
            msg = f"{source}: {key}: {why}{got}"
        out.append(ConfigIssue(key, msg))
    return out


def kind_of(path: Path) -> str:
    """engine.toml holds the engine config; any other .toml is a generation config."""
    return "engine" if path.stem == "engine" else "generation"


def parse(text: str, source: str, kind: str) -> BaseModel:
    model = KINDS[kind]
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError([ConfigIssue("(file)", f"{source}: not valid TOML ({e}): fix the syntax")]) from None
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_issues(e, source, model)) from None


def load(path: str | Path, kind: str | None = None) -> BaseModel:
    """Read and validate one config file (its kind from its name unless given)."""
    p = Path(path)
    try:
        if p.stat().st_size > MAX_CONFIG_BYTES:
            raise WgslError(f"{p}: over {MAX_CONFIG_BYTES >> 20} MiB: not a config file; pass the .toml itself")
        data = p.read_bytes()
    except FileNotFoundError:
        raise WgslError(f"{p}: no such file: `nanochat-cli wgsl init` writes the defaults") from None
    except IsADirectoryError:
        raise WgslError(f"{p}: is a folder: pass a .toml file") from None
    except OSError as e:
        raise WgslError(f"{p}: cannot read ({e.strerror}): check the path and its permissions") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise WgslError(f"{p}: not UTF-8 text: TOML files must be UTF-8; re-save it as UTF-8") from None
    return parse(text, str(p), kind or kind_of(p))


def resolve(name: str, config_dir: str | Path = DEFAULT_CONFIG_DIR) -> Path:
    """A config named by path (`my.toml`, `config/engine.toml`) or by name in the config dir (`engine`)."""
    p = Path(name)
    if p.suffix == ".toml" or p.is_file():
        return p
    return Path(config_dir) / f"{name}.toml"


def list_configs(config_dir: str | Path = DEFAULT_CONFIG_DIR) -> list[tuple[Path, str, str | None]]:
    """(path, kind, first problem or None) of every .toml in the config dir."""
    d = Path(config_dir)
    if not d.is_dir():
        raise WgslError(f"{d}: no such folder: `nanochat-cli wgsl init --config-dir {d}` writes the default configs")
    out = []
    for p in sorted(d.glob("*.toml")):
        try:
            load(p)
            out.append((p, kind_of(p), None))
        except ConfigError as e:
            out.append((p, kind_of(p), e.issues[0].message + (f" (+{len(e.issues) - 1} more)"
                                                               if len(e.issues) > 1 else "")))
        except WgslError as e:
            out.append((p, kind_of(p), str(e)))
    return out


# ---- writing TOML (the defaults, and `show`)

def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"no TOML form for {type(v).__name__}")


def to_toml(cfg: BaseModel, comments: bool = True, header: str = "") -> str:
    """A config as TOML: top-level values first, then one [table] per section, with each field's description."""
    lines = [f"# {ln}" if ln else "#" for ln in header.splitlines()] + ([""] if header else [])

    def fields(model: BaseModel) -> list[str]:
        out = []
        for name, info in type(model).model_fields.items():
            v = getattr(model, name)
            if isinstance(v, BaseModel):
                continue
            note = f"  # {info.description}" if comments and info.description else ""
            out.append(f"{name} = {_toml_value(v)}{note}")
        return out

    lines += fields(cfg)
    for name in type(cfg).model_fields:
        sub = getattr(cfg, name)
        if isinstance(sub, BaseModel):
            if lines and lines[-1] != "":
                lines.append("")
            lines += [f"[{name}]", *fields(sub)]
    return "\n".join(lines).lstrip("\n") + "\n"


HEADERS = {
    "engine": "Engine configuration for the WGSL plugin (nanochat-cli wgsl ...): logging and output paths.\n"
              "Relative paths are relative to the folder the command runs in.",
    "generation": "WGSL generation task: natural language -> WGSL compute shaders, trained on the engine's GPT.\n"
                  "Check it with `nanochat-cli wgsl show wgsl_generation`.",
}


def default_text(kind: str) -> str:
    return to_toml(KINDS[kind](), header=HEADERS[kind])


def init(config_dir: str | Path = DEFAULT_CONFIG_DIR, force: bool = False) -> list[Path]:
    """Write engine.toml and wgsl_generation.toml with the defaults; an existing file is kept unless `force`."""
    d = Path(config_dir)
    targets = [(d / ENGINE_FILE, "engine"), (d / GENERATION_FILE, "generation")]
    if not force:
        for p, _ in targets:
            if p.exists():
                raise WgslError(f"{p}: exists: keep it, or pass --force to overwrite it with the defaults")
    try:
        d.mkdir(parents=True, exist_ok=True)
        for p, kind in targets:
            tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(default_text(kind))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, p)
    except OSError as e:
        raise WgslError(f"{e.filename or d}: cannot write ({e.strerror}): choose another --config-dir") from None
    return [p for p, _ in targets]
