"""The checkpoint registry: every nanochat-layout checkpoint under a base dir, indexed, checked, usable.

Scans `<base>/{base,chatsft,chatrl}_checkpoints/<tag>/` (entries.py reads each step). The index is a
JSON file keyed by checkpoint and step and validated by each file's size and mtime, so a rescan only
reads the metas that changed; evaluation reports and tokenizer fingerprints are kept in it too.
`with_compat()` checks every entry against the active config (compat.py); `baseline()` turns an entry
into the config overrides and LaunchSpec that resume it (full state) or start a new run from its
weights; `delete()` removes a step meta first; `evaluate()` measures one and caches the report.

Torch-free on import and for listing.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import EngineError
from engine.shared import CHECKPOINT_FILE_RE, atomic_write, remove_stale_temps
from nanochat_cli.errors import USER_ERRORS
from nanochat_cli.services import paths
from nanochat_cli.services.checkpoints.compat import (
    ActiveConfig,
    Compat,
    arch_overrides,
    compatibility,
    config_model_config,
    data_overrides,
    embedded_corpus_dir,
    stock_tokenizer_dir,
)
from nanochat_cli.services.checkpoints.entries import (
    PHASE_DIRS,
    PHASE_OF_DIR,
    CheckpointEntry,
    read_entry,
    signature,
    step_files,
)
from nanochat_cli.services.checkpoints.reports import EvalReport

if TYPE_CHECKING:
    from nanochat_cli.services.runs import LaunchSpec

INDEX_VERSION = 2  # 2: entries carry integrity checks (checksums, weights-only scan); older ones are redone


def index_path() -> Path:
    return paths.user_config_dir() / "checkpoint_index.json"


@dataclass
class Baseline:
    """A checkpoint as the next run's starting point: the overrides, the config they give, what to launch."""

    mode: str  # "resume" | "weights"
    overrides: dict[str, Any]
    resolved: dict[str, Any]
    spec: LaunchSpec
    resume: bool  # pass to RunOrchestrator.start(spec, resume=...)


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
            atomic_write(self.index_file, json.dumps(self._index, indent=1, default=str))
            self._dirty = False

    # -- scanning

    def scan(self) -> list[CheckpointEntry]:
        """Every step of every checkpoint under the base dir, newest first (by file date, then step); refreshes
        the index."""
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
        entries.sort(key=lambda e: (e.date, e.step), reverse=True)
        return entries

    def _scan_dir(self, ckpt_dir: Path, phase: str) -> list[CheckpointEntry]:
        remove_stale_temps(ckpt_dir, CHECKPOINT_FILE_RE)  # what saves killed mid-write left (never a live one's)
        out = []
        for step, files in sorted(step_files(ckpt_dir).items(), reverse=True):
            key = f"{ckpt_dir}#{step}"
            try:
                sig = signature(files)
            except FileNotFoundError:  # deleted while we looked
                continue
            cached = self._index["entries"].get(key)
            # an entry cached before val_tokens existed is read again (its cached evaluation stays)
            if cached and cached.get("sig") == sig and "val_tokens" in cached["entry"]:
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
                              f"{self.base / PHASE_DIRS['base'] / '<tag>'} or a model_XXXXXX.pt file in it")
        path = path.resolve()
        entries = self._scan_dir(path, PHASE_OF_DIR.get(path.parent.name, "base"))
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
            data_dir = embedded_corpus_dir(str(base))
        explicit = bool(resolved.get("data.tokenizer_dir"))
        tok_hash, vocab, note = None, None, ""
        from engine.tct.location import SCHEME, uses_tct, window_dir_for

        if uses_tct(data_dir):  # TCT windows: the tokenizer is TCT's own, whatever the data
            from engine.tct import fingerprint, vocab_size

            if str(data_dir).startswith(SCHEME):  # the folder the engine resolves it to
                data_dir = str(window_dir_for(str(data_dir), base, resolved["model.max_seq_len"]))

            tok_hash, vocab = fingerprint(), vocab_size()
            return ActiveConfig(resolved=resolved, base=base, model_config=config_model_config(resolved, vocab),
                                tokenizer_dir=None, tokenizer_hash=tok_hash, tokenizer_note="TCT tokenizer",
                                explicit_tokenizer=False, data_dir=data_dir)
        if explicit:
            tok_dir: str | None = str(Path(resolved["data.tokenizer_dir"]).expanduser())
        else:
            tok_dir = None
            if data_dir and Path(data_dir).is_dir():
                from engine.dataset import data_id
                from engine.tokenizer import cache_dir

                try:
                    tok_dir = str(cache_dir(base, resolved["model.vocab_size"], data_id(Path(data_dir))))
                except USER_ERRORS as e:
                    note = str(e)
            else:
                note = f"data dir {data_dir} not built yet; a tokenizer is trained on first run"
        if tok_dir:
            if (Path(tok_dir) / "tokenizer.pkl").is_file():
                try:
                    tok_hash, vocab = self._tokenizer_info(Path(tok_dir))
                except USER_ERRORS as e:
                    note = str(e)
            else:
                note = f"no tokenizer at {tok_dir} yet; the first run trains it"
        self._save_index()
        return ActiveConfig(resolved=resolved, base=base, model_config=config_model_config(resolved, vocab),
                            tokenizer_dir=tok_dir, tokenizer_hash=tok_hash, tokenizer_note=note,
                            explicit_tokenizer=explicit, data_dir=data_dir)

    def with_compat(self, resolved: dict[str, Any]) -> list[tuple[CheckpointEntry, Compat]]:
        active = self.active(resolved)
        return [(e, compatibility(e, active)) for e in self.scan()]

    # -- using a checkpoint

    def baseline(self, entry: CheckpointEntry, resolved: dict[str, Any], mode: str) -> Baseline:
        """Overrides + LaunchSpec that resume `entry` ("resume": full state, same run tag) or start a new run
        from its weights ("weights": init_from, fresh optimizer). Raises ConfigError when they do not validate."""
        from nanochat_cli.services.config.schema import ConfigError, validate_overrides
        from nanochat_cli.services.runs import spec_from_resolved

        if mode not in ("resume", "weights"):
            raise EngineError(f"baseline mode {mode!r}: unknown: use 'resume' or 'weights'")
        if not entry.complete:
            raise EngineError(f"{entry.ckpt_dir} step {entry.step}: {entry.status} ({entry.problem}): pick another")
        overrides: dict[str, Any] = arch_overrides(entry.model_config)
        tok = entry.tokenizer_dir or stock_tokenizer_dir(entry)
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
                overrides.update(data_overrides(entry))
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
                 data_dir: str | Path | None = None, device: str = "cpu", prompts: list | None = None) -> EvalReport:
        """Evaluate (val bpb + the eval prompt set) and cache the report in the index."""
        from nanochat_cli.services.checkpoints.evaluate import evaluate

        if not entry.complete:
            raise EngineError(f"{entry.ckpt_dir} step {entry.step}: {entry.status} ({entry.problem}): pick another")
        report = evaluate(entry.model_file, tokens=tokens, max_new_tokens=max_new_tokens,
                          data_dir=data_dir or entry.data_dir, device=device, prompts=prompts)
        self.store_eval(entry, report)
        return report
