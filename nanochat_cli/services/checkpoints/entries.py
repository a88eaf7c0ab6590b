"""One checkpoint step as the registry sees it: read from its files without loading any tensor.

A step is `meta_<step>.json` + `model_<step>.pt` (+ `optim_<step>_rank<r>.pt` per rank) in
`<base>/{base,chatsft,chatrl}_checkpoints/<tag>/`, written by our engine or by stock nanochat.
Steps whose save was cut short (no meta, no model) are "incomplete"; steps whose meta or model file
is damaged are "corrupt", and so is a model file that a weights-only load would refuse (torchfile.py).
Our metas record each file's size and sha256: those files are checked against them ("verified"); a
stock nanochat meta records none ("unverified"). A damaged optimizer file keeps the step from resuming.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from engine.shared import PHASE_DIRS, PHASE_OF_DIR, file_record_problem
from nanochat_cli.services.checkpoints.reports import EvalReport
from nanochat_cli.services.checkpoints.torchfile import check_torch_file
from nanochat_cli.services.registry import MISSING, REGISTRY, Registry

__all__ = ["PHASE_DIRS", "PHASE_OF_DIR", "CheckpointEntry", "read_entry", "step_files", "signature",
           "MODEL_CONFIG_KEYS"]

_FILE_RE = re.compile(r"^(?:meta_(\d{6})\.json|model_(\d{6})\.pt|optim_(\d{6})_rank(\d+)\.pt)$")
MODEL_CONFIG_KEYS = ("sequence_len", "vocab_size", "n_layer", "n_head", "n_kv_head", "n_embd", "window_pattern")


@dataclass
class CheckpointEntry:
    ckpt_dir: str
    phase: str  # base | sft | rl
    tag: str
    step: int
    status: str  # complete | incomplete | corrupt
    problem: str = ""  # what is wrong when not complete
    integrity: str = "unverified"  # "verified": its meta's checksums match; "unverified": stock, none recorded
    optim_problem: str = ""  # what is wrong with an optimizer file (the step cannot resume)
    origin: str = "stock"  # "ours" (our engine wrote it) or "stock" (stock nanochat)
    run: str | None = None
    val_bpb: float | None = None
    val_tokens: int | None = None  # tokens that val_bpb (the run's last evaluation) was measured over
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
        """Full state on disk: a base-phase step with every rank's optimizer file, each one whole."""
        ranks = self.world_size or len(self.optim_ranks)
        return (self.complete and self.phase == "base" and ranks > 0 and not self.optim_problem
                and set(range(ranks)) <= set(self.optim_ranks))

    def files(self) -> list[Path]:
        """This step's files that exist, meta first (the order a delete must follow)."""
        optims = [self.path / f"optim_{self.step:06d}_rank{r}.pt" for r in sorted(self.optim_ranks)]
        extensions = sorted(self.path.glob(f"ext_*_{self.step:06d}.pt"))  # engine extensions' states
        return [p for p in (self.meta_file, self.model_file, *optims, *extensions) if p.exists()]

    def setting(self, key: str, registry: Registry = REGISTRY) -> Any:
        """The value of config key `key` this checkpoint was trained with: as its meta recorded it, else the
        field's default (stock nanochat records none). Plugins name such keys as checkpoint fields."""
        value = recorded_value(self.user_config, key)
        return registry.config_default(key) if value is MISSING else value

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("eval")
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CheckpointEntry:
        names = {f.name for f in fields(cls)} - {"eval"}
        return cls(**{k: v for k, v in d.items() if k in names})


def recorded_value(user_config: dict[str, Any] | None, key: str) -> Any:
    """Config key "category.field" as a meta's user_config holds it: flat, or nested as {category: {field: ...}}.
    MISSING when it is not there."""
    uc = user_config or {}
    if key in uc:
        return uc[key]
    category, _, name = key.partition(".")
    section = uc.get(category)
    return section.get(name, MISSING) if isinstance(section, dict) else MISSING


def trained_eval_tokens(user_config: dict[str, Any] | None, world_size: int | None) -> int | None:
    """Tokens the run's own evaluation measured: eval_tokens rounded down to whole batches of every rank (at least
    one), as the trainer counts them; None when the meta does not say enough."""
    uc = user_config or {}
    tokens, rows, seq = uc.get("eval_tokens"), uc.get("device_batch_size"), uc.get("max_seq_len")
    if not all(isinstance(v, int) and v > 0 for v in (tokens, rows, seq, world_size)):
        return None
    per_batch = rows * seq * world_size
    return max(1, tokens // per_batch) * per_batch


def param_count(model_config: dict[str, Any]) -> int:
    """Parameters of a GPT with this model_config (the analytic count the config estimates use)."""
    from nanochat_cli.services.config.estimate import Shape, param_counts

    L, C, H = model_config["n_layer"], model_config["n_embd"], model_config["n_head"]
    V = model_config["vocab_size"]
    shape = Shape(L, C, H, model_config["n_kv_head"], C // H, model_config["sequence_len"], V, -(-V // 64) * 64, ())
    return param_counts(shape)["total"]


def _check_files(entry: CheckpointEntry, meta: dict[str, Any], files: dict[str, Any]) -> None:
    """Check the model and optimizer files against the meta's checksums (when it has them) and for what a
    weights-only load refuses: a bad model file makes the step corrupt, a bad optimizer file unresumable."""
    records = meta.get("files")
    verified = isinstance(records, dict)
    checks = [("model", files["model"])] + [("optim", p) for _, p in sorted(files["optim"].items())]
    for kind, path in checks:
        problem = check_torch_file(path)
        if problem is None and verified:
            if path.name in records:
                problem = file_record_problem(path, records[path.name])
                problem = problem and f"{path.name}: {problem}"
            else:
                verified = False  # a file the meta does not know (e.g. a rank added by hand)
        if problem and kind == "model":
            entry.status, entry.problem = "corrupt", problem
            return
        if problem and not entry.optim_problem:
            entry.optim_problem = problem
    entry.integrity = "verified" if verified else "unverified"


def step_files(ckpt_dir: Path) -> dict[int, dict[str, Any]]:
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


def signature(files: dict[str, Any]) -> list:
    sig = []
    for p in [files["meta"], files["model"], *files["optim"].values()]:
        if p is not None:
            st = p.stat()
            sig.append([p.name, st.st_size, st.st_mtime_ns])
    return sorted(sig)


def _text(value: Any) -> str | None:
    """A meta's string field; anything else (a hand-edited or hostile meta) counts as absent."""
    return value if isinstance(value, str) and value else None


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
    entry.engine_version = _text(meta.get("engine_version"))
    entry.run = _text(meta.get("run")) or _text((uc or {}).get("run"))
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
    entry.tokenizer_hash = _text(meta.get("tokenizer_hash"))
    entry.tokenizer_dir = _text(meta.get("tokenizer_dir"))
    entry.data_dir = _text(meta.get("data_dir"))
    entry.world_size = meta.get("world_size") if isinstance(meta.get("world_size"), int) else None
    entry.val_tokens = trained_eval_tokens(uc, entry.world_size) if entry.val_bpb is not None else None
    if entry.status == "complete":
        _check_files(entry, meta, files)
    return entry
