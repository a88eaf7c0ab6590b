"""The checkpoint registry: every nanochat-layout checkpoint under a base dir, indexed, checked, usable.

Scans `<base>/{base,chatsft,chatrl}_checkpoints/<tag>/` for steps written by our engine or by stock
nanochat. Each step becomes a `CheckpointEntry` (run/tag, phase, step, val bpb, params, shape,
tokenizer hash, MegaContext flag, date, size on disk); steps whose save was cut short (no meta, no
model) are "incomplete", steps whose meta or model file is damaged are "corrupt": both are listed,
never loaded. The index is a JSON file keyed by checkpoint and step and validated by each file's size
and mtime, so a rescan only reads the metas that changed; evaluation reports are kept in it too.

Against the active config (a resolved dict with dotted keys) each entry is compatible, loadable with
warnings, or incompatible, every reason with its remedy. `baseline()` turns an entry into the config
overrides and LaunchSpec that resume it (full state) or start a new run from its weights.

Torch-free: the model file is checked through its zip directory (torch.save's format), not loaded.
"""

from __future__ import annotations

import json
import os
import re
import zipfile
from dataclasses import asdict, dataclass, field, fields
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import EngineError
from nanochat_cli.services import paths
from nanochat_cli.services.checkpoints.reports import EvalReport
from nanochat_cli.services.fileio import atomic_write_text

if TYPE_CHECKING:
    from nanochat_cli.services.orchestrator import LaunchSpec

# engine.checkpoint.PHASE_DIRS (importing that module would load torch); a test keeps them equal
PHASE_DIRS = {"base": "base_checkpoints", "sft": "chatsft_checkpoints", "rl": "chatrl_checkpoints"}
_PHASE_OF_DIR = {v: k for k, v in PHASE_DIRS.items()}
_FILE_RE = re.compile(r"^(?:meta_(\d{6})\.json|model_(\d{6})\.pt|optim_(\d{6})_rank(\d+)\.pt)$")
MODEL_CONFIG_KEYS = ("sequence_len", "vocab_size", "n_layer", "n_head", "n_kv_head", "n_embd", "window_pattern")
INDEX_VERSION = 1
MC_KEY = "megacontext.enabled"  # the MegaContext plugin's on/off field (category "megacontext", field "enabled")


def index_path() -> Path:
    return paths.user_config_dir() / "checkpoint_index.json"


@dataclass
class CheckpointEntry:
    ckpt_dir: str
    phase: str  # base | sft | rl
    tag: str
    step: int
    status: str  # complete | incomplete | corrupt
    problem: str = ""  # what is wrong when not complete
    origin: str = "stock"  # "ours" (our engine wrote it) or "stock" (stock nanochat)
    run: str | None = None
    val_bpb: float | None = None
    params: int | None = None
    depth: int | None = None
    n_embd: int | None = None
    n_head: int | None = None
    n_kv_head: int | None = None
    vocab_size: int | None = None
    sequence_len: int | None = None
    window_pattern: str | None = None
    tokenizer_hash: str | None = None
    tokenizer_dir: str | None = None  # as recorded in the meta
    data_dir: str | None = None
    mc: bool = False  # MegaContext plugin on (user_config), False when absent
    date: float = 0.0  # mtime of the newest file of this step
    size_bytes: int = 0
    optim_ranks: list[int] = field(default_factory=list)
    world_size: int | None = None
    model_config: dict[str, Any] | None = None
    user_config: dict[str, Any] | None = None
    engine_version: str | None = None
    eval: EvalReport | None = None  # the latest evaluation, when one was run

    @property
    def path(self) -> Path:
        return Path(self.ckpt_dir)

    @property
    def key(self) -> str:
        return f"{self.ckpt_dir}#{self.step}"

    @property
    def label(self) -> str:
        return f"{self.run}/{self.tag}" if self.run and self.run != self.tag else self.tag

    @property
    def base(self) -> Path:
        return self.path.parents[1]

    @property
    def model_file(self) -> Path:
        return self.path / f"model_{self.step:06d}.pt"

    @property
    def meta_file(self) -> Path:
        return self.path / f"meta_{self.step:06d}.json"

    @property
    def complete(self) -> bool:
        return self.status == "complete"

    @property
    def resumable(self) -> bool:
        """Full state on disk: a base-phase step with every rank's optimizer file."""
        ranks = self.world_size or len(self.optim_ranks)
        return (self.complete and self.phase == "base" and ranks > 0
                and set(range(ranks)) <= set(self.optim_ranks))

    def files(self) -> list[Path]:
        """This step's files that exist, meta first (the order a delete must follow)."""
        optims = [self.path / f"optim_{self.step:06d}_rank{r}.pt" for r in sorted(self.optim_ranks)]
        return [p for p in (self.meta_file, self.model_file, *optims) if p.exists()]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("eval")
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CheckpointEntry:
        names = {f.name for f in fields(cls)} - {"eval"}
        return cls(**{k: v for k, v in d.items() if k in names})


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
    mc: bool


@dataclass
class Baseline:
    """A checkpoint as the next run's starting point: the overrides, the config they give, what to launch."""

    mode: str  # "resume" | "weights"
    overrides: dict[str, Any]
    resolved: dict[str, Any]
    spec: LaunchSpec
    resume: bool  # pass to RunOrchestrator.start(spec, resume=...)


# ---- reading one step ---------------------------------------------------------------------------

def mc_enabled(user_config: dict[str, Any] | None) -> bool:
    """The MegaContext flag: `megacontext.enabled` flat, or {"megacontext": {"enabled": ...}} nested."""
    uc = user_config or {}
    if MC_KEY in uc:
        return bool(uc[MC_KEY])
    section = uc.get("megacontext")
    return bool(section.get("enabled", False)) if isinstance(section, dict) else False


def param_count(model_config: dict[str, Any]) -> int:
    """Parameters of a GPT with this model_config (the analytic count the config estimates use)."""
    from nanochat_cli.services.config.estimate import Shape, param_counts

    L, C, H = model_config["n_layer"], model_config["n_embd"], model_config["n_head"]
    V = model_config["vocab_size"]
    shape = Shape(L, C, H, model_config["n_kv_head"], C // H, model_config["sequence_len"], V, -(-V // 64) * 64, ())
    return param_counts(shape)["total"]


def check_model_file(path: Path) -> str | None:
    """None when the file looks whole; else what is wrong. Reads the zip directory only, not the tensors."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as e:
        return f"model file unreadable ({e.strerror})"
    if size == 0:
        return "model file is empty"
    if head[:2] == b"PK":
        try:
            with zipfile.ZipFile(path) as z:
                infos = z.infolist()
        except (zipfile.BadZipFile, OSError, ValueError):
            return "model file is truncated or damaged (no zip directory)"
        if not any(i.filename.endswith("data.pkl") for i in infos):
            return "model file is not a torch checkpoint (no data.pkl)"
        if any(i.header_offset + i.compress_size > size for i in infos):
            return "model file is truncated (entries run past its end)"
        return None
    if head[:1] == b"\x80":  # torch's legacy (pre-zip) pickle format: nothing cheap to check
        return None
    return "model file is not a torch checkpoint"


def _step_files(ckpt_dir: Path) -> dict[int, dict[str, Any]]:
    """step -> {"meta": Path|None, "model": Path|None, "optim": {rank: Path}} from one listing."""
    out: dict[int, dict[str, Any]] = {}
    try:
        names = os.listdir(ckpt_dir)
    except OSError:
        return out
    for name in names:
        m = _FILE_RE.match(name)
        if not m:
            continue
        step = int(m.group(1) or m.group(2) or m.group(3))
        slot = out.setdefault(step, {"meta": None, "model": None, "optim": {}})
        if m.group(1):
            slot["meta"] = ckpt_dir / name
        elif m.group(2):
            slot["model"] = ckpt_dir / name
        else:
            slot["optim"][int(m.group(4))] = ckpt_dir / name
    return out


def _signature(files: dict[str, Any]) -> list:
    sig = []
    for p in [files["meta"], files["model"], *files["optim"].values()]:
        if p is not None:
            st = p.stat()
            sig.append([p.name, st.st_size, st.st_mtime_ns])
    return sorted(sig)


def read_entry(ckpt_dir: Path, phase: str, step: int, files: dict[str, Any]) -> CheckpointEntry:
    """Build one entry from its files: the meta is parsed, the model file's zip directory checked."""
    present = [p for p in [files["meta"], files["model"], *files["optim"].values()] if p is not None]
    stats = [p.stat() for p in present]
    entry = CheckpointEntry(ckpt_dir=str(ckpt_dir), phase=phase, tag=ckpt_dir.name, step=step, status="complete",
                            date=max(s.st_mtime for s in stats), size_bytes=sum(s.st_size for s in stats),
                            optim_ranks=sorted(files["optim"]))
    if files["meta"] is None:
        entry.status = "incomplete"
        entry.problem = (f"no meta_{step:06d}.json: the save was interrupted" if files["model"] or files["optim"]
                         else "no files")
        return entry
    if files["model"] is None:
        entry.status, entry.problem = "incomplete", f"no model_{step:06d}.pt: the model file is missing"
    try:
        meta = json.loads(files["meta"].read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        entry.status, entry.problem = "corrupt", f"meta_{step:06d}.json is not valid JSON ({type(e).__name__})"
        return entry
    mc = meta.get("model_config") if isinstance(meta, dict) else None
    if not isinstance(mc, dict) or any(k not in mc for k in MODEL_CONFIG_KEYS):
        entry.status, entry.problem = "corrupt", f"meta_{step:06d}.json has no complete model_config"
        return entry
    uc = meta.get("user_config") if isinstance(meta.get("user_config"), dict) else None
    entry.origin = "ours" if "engine_version" in meta else "stock"
    entry.engine_version = meta.get("engine_version")
    entry.run = meta.get("run") or (uc or {}).get("run")
    entry.val_bpb = meta.get("val_bpb") if isinstance(meta.get("val_bpb"), int | float) else None
    entry.model_config = {k: mc[k] for k in MODEL_CONFIG_KEYS}
    entry.user_config = uc
    entry.depth, entry.n_embd, entry.n_head = mc["n_layer"], mc["n_embd"], mc["n_head"]
    entry.n_kv_head, entry.vocab_size, entry.sequence_len = mc["n_kv_head"], mc["vocab_size"], mc["sequence_len"]
    entry.window_pattern = mc["window_pattern"]
    try:
        entry.params = param_count(mc)
    except (TypeError, ZeroDivisionError):
        entry.status, entry.problem = "corrupt", f"meta_{step:06d}.json has a malformed model_config"
        return entry
    entry.tokenizer_hash = meta.get("tokenizer_hash")
    entry.tokenizer_dir = meta.get("tokenizer_dir") or None
    entry.data_dir = meta.get("data_dir") or None
    entry.world_size = meta.get("world_size") if isinstance(meta.get("world_size"), int) else None
    entry.mc = mc_enabled(uc)
    if entry.status == "complete":
        problem = check_model_file(files["model"])
        if problem:
            entry.status, entry.problem = "corrupt", problem
    return entry


# ---- comparing with the active config -----------------------------------------------------------

def arch_overrides(model_config: dict[str, Any]) -> dict[str, Any]:
    """Config values (dotted keys) that rebuild exactly this model_config."""
    from nanochat_cli.services.config.schema import model_dim

    L, C, H, kv = model_config["n_layer"], model_config["n_embd"], model_config["n_head"], model_config["n_kv_head"]
    hd = C // H
    ar = C // L if C % L == 0 else 0
    if not ar or model_dim(L, ar, hd) != C:
        ar = next((a for a in range(1, C + 1) if model_dim(L, a, hd) == C), C)
    return {"model.depth": L, "model.aspect_ratio": ar, "model.head_dim": hd,
            "model.n_kv_head": None if kv == H else kv, "model.max_seq_len": model_config["sequence_len"],
            "model.window_pattern": model_config["window_pattern"], "model.vocab_size": model_config["vocab_size"]}


def config_model_config(resolved: dict[str, Any], vocab_size: int | None = None) -> dict[str, Any]:
    """The model_config a run of this config would write (engine.gpt.config_from_depth without torch)."""
    from nanochat_cli.services.config.schema import model_dim

    hd = resolved["model.head_dim"]
    dim = model_dim(resolved["model.depth"], resolved["model.aspect_ratio"], hd)
    n_head = dim // hd
    return {"sequence_len": resolved["model.max_seq_len"], "vocab_size": vocab_size or resolved["model.vocab_size"],
            "n_layer": resolved["model.depth"], "n_head": n_head, "n_kv_head": resolved["model.n_kv_head"] or n_head,
            "n_embd": dim, "window_pattern": resolved["model.window_pattern"]}


@lru_cache(maxsize=8)
def _embedded_corpus_dir(base: str) -> str:
    from engine.corpus import corpus_dir

    return str(corpus_dir(Path(base)))


def _set(overrides: dict[str, Any]) -> str:
    def show(v: Any) -> str:
        return "none" if v is None else str(v)

    return "set " + " ".join(f"{k}={show(v)}" for k, v in overrides.items())


_ARCH_NAMES = {"n_layer": "depth", "n_embd": "model_dim", "n_head": "heads", "n_kv_head": "kv heads",
               "sequence_len": "max_seq_len", "window_pattern": "window_pattern"}


def compatibility(entry: CheckpointEntry, active: ActiveConfig) -> Compat:
    """Can `entry` seed a run of the active config (and be evaluated/chatted with)? Reasons carry remedies."""
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
    ckpt_tok = entry.tokenizer_dir or _stock_tokenizer_dir(entry)
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
        fix = _data_overrides(entry)
        add("warn", f"trained on other data ({entry.data_dir}; the config reads {active.data_dir})",
            f"to continue on the same data, {_set(fix)}", fix)
    if entry.phase != "base":
        add("warn", f"a {entry.phase.upper()} checkpoint: only its weights can seed a run (no resume)",
            "start from its weights (init_from)")
    elif not entry.resumable:
        add("warn", "no optimizer state for every rank: it cannot be resumed exactly", "start from its weights")
    if entry.mc != active.mc:
        add("warn", f"MegaContext is {'on' if entry.mc else 'off'} in the checkpoint, {'on' if active.mc else 'off'} "
                    "in the config", f"set {MC_KEY}={'true' if entry.mc else 'false'}", {MC_KEY: entry.mc})
    level = ("incompatible" if any(r.level == "error" for r in reasons)
             else "warnings" if reasons else "compatible")
    return Compat(level, reasons)


def _stock_tokenizer_dir(entry: CheckpointEntry) -> str | None:
    """Stock nanochat keeps one tokenizer at <base>/tokenizer."""
    p = entry.base / "tokenizer"
    return str(p) if (p / "tokenizer.pkl").is_file() else None


def _data_overrides(entry: CheckpointEntry) -> dict[str, Any]:
    """Config values that read the data the checkpoint was trained on."""
    d = Path(entry.data_dir)
    if d.parent == entry.base / "data" and d.name.startswith("embedded-"):
        return {"data.source": "embedded", "data.data_dir": None}
    return {"data.source": "parquet", "data.data_dir": str(d)}


# ---- the registry -------------------------------------------------------------------------------

class CheckpointRegistry:
    """Scans a base dir, keeps the index, checks entries against a config, deletes and evaluates them."""

    def __init__(self, base: Path | None = None, index_file: Path | None = None):
        self.base = Path(base) if base else paths.base_dir()
        self.index_file = Path(index_file) if index_file else index_path()
        self._index = self._read_index()
        self._dirty = False

    # -- index

    def _read_index(self) -> dict[str, Any]:
        empty = {"version": INDEX_VERSION, "entries": {}, "evals": {}, "tokenizers": {}}
        try:
            data = json.loads(self.index_file.read_text())
        except (OSError, json.JSONDecodeError):
            return empty  # a missing or damaged cache is rebuilt by the next scan
        if not isinstance(data, dict) or data.get("version") != INDEX_VERSION:
            return empty
        return {**empty, **{k: v for k, v in data.items() if isinstance(v, dict)}, "version": INDEX_VERSION}

    def _save_index(self) -> None:
        if self._dirty:
            atomic_write_text(self.index_file, json.dumps(self._index, indent=1, default=str))
            self._dirty = False

    # -- scanning

    def scan(self) -> list[CheckpointEntry]:
        """Every step of every checkpoint under the base dir, newest first within a tag; refreshes the index."""
        entries, seen = [], set()
        for phase, dirname in PHASE_DIRS.items():
            root = self.base / dirname
            if not root.is_dir():
                continue
            for ckpt_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
                for entry in self._scan_dir(ckpt_dir.resolve(), phase):
                    entries.append(entry)
                    seen.add(entry.key)
        under_base = str(self.base.resolve()) + os.sep
        for key in [k for k in self._index["entries"] if k.startswith(under_base) and k not in seen]:
            del self._index["entries"][key]
            self._dirty = True
        self._save_index()
        return entries

    def _scan_dir(self, ckpt_dir: Path, phase: str) -> list[CheckpointEntry]:
        out = []
        for step, files in sorted(_step_files(ckpt_dir).items(), reverse=True):
            key = f"{ckpt_dir}#{step}"
            try:
                sig = _signature(files)
            except FileNotFoundError:  # deleted while we looked
                continue
            cached = self._index["entries"].get(key)
            if cached and cached.get("sig") == sig:
                entry = CheckpointEntry.from_dict(cached["entry"])
            else:
                entry = read_entry(ckpt_dir, phase, step, files)
                self._index["entries"][key] = {"sig": sig, "entry": entry.to_dict()}
                self._dirty = True
            entry.eval = self._cached_eval(entry, sig)
            out.append(entry)
        return out

    def _cached_eval(self, entry: CheckpointEntry, sig: list) -> EvalReport | None:
        cached = self._index["evals"].get(entry.key)
        if not cached:
            return None
        if cached.get("sig") != [s for s in sig if s[0] == entry.model_file.name]:
            del self._index["evals"][entry.key]  # the model file changed: the report is stale
            self._dirty = True
            return None
        return EvalReport.from_dict(cached["report"])

    def find(self, path: str | Path, step: int | None = None) -> CheckpointEntry:
        """The entry for a checkpoint dir (latest complete step, or `step`) or a model_XXXXXX.pt file."""
        path = Path(path).expanduser()
        m = re.match(r"^model_(\d{6})\.pt$", path.name)
        if m:
            if step is not None and step != int(m.group(1)):
                raise EngineError(f"{path}: names step {int(m.group(1))} but step={step} was asked for: "
                                  "pass one of them")
            path, step = path.parent, int(m.group(1))
        if not path.is_dir():
            raise EngineError(f"{path}: no such checkpoint dir or model file: pass a dir such as "
                              f"{self.base / 'base_checkpoints' / '<tag>'} or a model_XXXXXX.pt file in it")
        path = path.resolve()
        entries = self._scan_dir(path, _PHASE_OF_DIR.get(path.parent.name, "base"))
        self._save_index()
        if not entries:
            raise EngineError(f"{path}: holds no checkpoint files (meta_/model_/optim_*): pick a checkpoint dir")
        if step is None:
            complete = [e for e in entries if e.complete]
            if not complete:
                raise EngineError(f"{path}: no complete checkpoint ({entries[0].problem}): pick another dir")
            return complete[0]
        for e in entries:
            if e.step == step:
                return e
        raise EngineError(f"{path}: no step {step}: pick one of {', '.join(str(e.step) for e in entries)}")

    # -- the active config

    def _tokenizer_info(self, directory: Path) -> tuple[str, int]:
        """(fingerprint, vocab size) of a tokenizer dir, cached in the index by the pickle's size and mtime."""
        pkl = directory / "tokenizer.pkl"
        st = pkl.stat()
        sig = [st.st_size, st.st_mtime_ns]
        cached = self._index["tokenizers"].get(str(directory))
        if cached and cached.get("sig") == sig:
            return cached["hash"], cached["vocab"]
        from engine.tokenizer import Tokenizer

        tok = Tokenizer.from_directory(directory)
        self._index["tokenizers"][str(directory)] = {"sig": sig, "hash": tok.fingerprint,
                                                    "vocab": tok.get_vocab_size()}
        self._dirty = True
        return tok.fingerprint, tok.get_vocab_size()

    def active(self, resolved: dict[str, Any]) -> ActiveConfig:
        """What the config implies: model shape, the tokenizer the engine would use (and its hash), data dir."""
        base = Path(resolved.get("run.base_dir") or self.base).expanduser()
        if resolved.get("data.source") == "parquet" and resolved.get("data.data_dir"):
            data_dir: str | None = str(Path(resolved["data.data_dir"]).expanduser())
        else:
            data_dir = _embedded_corpus_dir(str(base))
        explicit = bool(resolved.get("data.tokenizer_dir"))
        tok_hash, vocab, note = None, None, ""
        if explicit:
            tok_dir: str | None = str(Path(resolved["data.tokenizer_dir"]).expanduser())
        else:
            tok_dir = None
            if data_dir and Path(data_dir).is_dir():
                from engine.dataset import data_id
                from engine.tokenizer import cache_dir

                try:
                    tok_dir = str(cache_dir(base, resolved["model.vocab_size"], data_id(Path(data_dir))))
                except EngineError as e:
                    note = str(e)
            else:
                note = f"data dir {data_dir} not built yet; a tokenizer is trained on first run"
        if tok_dir:
            if (Path(tok_dir) / "tokenizer.pkl").is_file():
                try:
                    tok_hash, vocab = self._tokenizer_info(Path(tok_dir))
                except EngineError as e:
                    note = str(e)
            else:
                note = f"no tokenizer at {tok_dir} yet; the first run trains it"
        self._save_index()
        return ActiveConfig(resolved=resolved, base=base, model_config=config_model_config(resolved, vocab),
                            tokenizer_dir=tok_dir, tokenizer_hash=tok_hash, tokenizer_note=note,
                            explicit_tokenizer=explicit, data_dir=data_dir, mc=bool(resolved.get(MC_KEY, False)))

    def with_compat(self, resolved: dict[str, Any]) -> list[tuple[CheckpointEntry, Compat]]:
        active = self.active(resolved)
        return [(e, compatibility(e, active)) for e in self.scan()]

    # -- using a checkpoint

    def baseline(self, entry: CheckpointEntry, resolved: dict[str, Any], mode: str) -> Baseline:
        """Overrides + LaunchSpec that resume `entry` ("resume": full state, same run tag) or start a new run
        from its weights ("weights": init_from, fresh optimizer). Raises ConfigError when they do not validate."""
        from nanochat_cli.services.config.schema import ConfigError, validate_overrides
        from nanochat_cli.services.orchestrator import spec_from_resolved

        if mode not in ("resume", "weights"):
            raise EngineError(f"baseline mode {mode!r}: unknown: use 'resume' or 'weights'")
        if not entry.complete:
            raise EngineError(f"{entry.ckpt_dir} step {entry.step}: {entry.status} ({entry.problem}): pick another")
        overrides: dict[str, Any] = arch_overrides(entry.model_config)
        tok = entry.tokenizer_dir or _stock_tokenizer_dir(entry)
        if tok:
            overrides["data.tokenizer_dir"] = tok
        if mode == "resume":
            if not entry.resumable:
                why = "it is not a base-phase checkpoint" if entry.phase != "base" else "optimizer files are missing"
                raise EngineError(f"{entry.ckpt_dir} step {entry.step}: cannot resume ({why}): start from its weights")
            for name, value in (entry.user_config or {}).items():  # the run's own training settings
                for key in (f"training.{name}", f"telemetry.{name}" if name == "eval_tokens" else ""):
                    if key in resolved:
                        overrides[key] = value
            if entry.data_dir:
                overrides.update(_data_overrides(entry))
            world = entry.world_size or len(entry.optim_ranks)
            if resolved.get("hardware.nproc_per_node", 1) * resolved.get("hardware.nnodes", 1) != world:
                overrides.update({"hardware.nproc_per_node": world, "hardware.nnodes": 1})
            overrides.update({"run.name": entry.run or entry.tag, "run.model_tag": entry.tag,
                              "run.base_dir": str(entry.base), "run.resume": True, "run.resume_from_step": entry.step,
                              "run.init_from": None})
        else:
            base = Path(resolved.get("run.base_dir") or self.base).expanduser()
            name = resolved.get("run.name") or entry.tag
            taken = {p.name for d in ("runs", PHASE_DIRS["base"]) if (base / d).is_dir() for p in (base / d).iterdir()}
            if name in taken:
                n = 2
                while f"{name}-{n}" in taken:
                    n += 1
                name = f"{name}-{n}"
            overrides.update({"run.name": name, "run.model_tag": None, "run.resume": False,
                              "run.resume_from_step": -1, "run.init_from": str(entry.model_file)})
        issues = validate_overrides(resolved, overrides)
        if issues:
            raise ConfigError(issues)
        new = {**resolved, **overrides}
        return Baseline(mode, overrides, new, spec_from_resolved(new), resume=mode == "resume")

    def delete(self, entry: CheckpointEntry) -> list[Path]:
        """Remove one step's files, meta first so that no moment looks complete; the dir goes when empty."""
        removed = []
        for p in entry.files():
            p.unlink(missing_ok=True)
            removed.append(p)
        for p in entry.path.glob(f".*_{entry.step:06d}*.tmp"):  # leftovers of an interrupted save
            p.unlink(missing_ok=True)
            removed.append(p)
        try:
            entry.path.rmdir()  # only when nothing else is left in it
        except OSError:
            pass
        self._index["entries"].pop(entry.key, None)
        self._index["evals"].pop(entry.key, None)
        self._dirty = True
        self._save_index()
        return removed

    def store_eval(self, entry: CheckpointEntry, report: EvalReport) -> None:
        """Keep a report in the index, tied to the model file it measured."""
        st = entry.model_file.stat()
        self._index["evals"][entry.key] = {"sig": [[entry.model_file.name, st.st_size, st.st_mtime_ns]],
                                           "report": report.to_dict()}
        self._dirty = True
        self._save_index()
        entry.eval = report

    def evaluate(self, entry: CheckpointEntry, tokens: int = 65536, max_new_tokens: int = 64,
                 data_dir: str | Path | None = None, device: str = "cpu", presets: list | None = None) -> EvalReport:
        """Evaluate (val bpb + preset prompts) and cache the report in the index."""
        from nanochat_cli.services.checkpoints.evaluate import evaluate

        if not entry.complete:
            raise EngineError(f"{entry.ckpt_dir} step {entry.step}: {entry.status} ({entry.problem}): pick another")
        report = evaluate(entry.model_file, tokens=tokens, max_new_tokens=max_new_tokens,
                          data_dir=data_dir or entry.data_dir, device=device, presets=presets)
        self.store_eval(entry, report)
        return report
