"""The engine's data source for NL -> WGSL training (`data_source = nanochat_plugins.wgsl.source:make`).

The engine calls `make(options, base_dir, seed)` (see engine/data_source.py). It reads the pairs (the shipped
dataset, a dataset folder, or pairs generated from the templates as a `wgsl_generation.toml` says), builds
the joint tokenizer from the train split (cached under `<base>/wgsl/tokenizer/<key>/`), and serves batches
of whole pairs packed into rows, targets -1 everywhere but on the shader tokens and <|wgsl_end|>: the loss
is on the shader only. On sample steps rank 0 writes shaders for held-out prompts, validates them with naga
and runs them against their numpy references, and emits `plugin` events (`wgsl`, kind `samples`).

`options` is `key=value` pairs separated by `;` (all optional):

    config=PATH          a wgsl_generation.toml: its [tokenizer] and [dataset] sections (default: the defaults)
    per_family=N         pairs per template family, generated (overrides dataset.per_family; the shipped
                         files hold 10, the same first 10 of any larger draw is not guaranteed)
    samples=N            prompts written and checked on each sample step (default 8; 0 = none)
    sample_split=val     the split they come from (val or test)
    max_new_tokens=N     most tokens per sampled shader (default: what the context leaves)
    run_timeout=S        seconds a sampled shader may run before it is killed (default 10)
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nanochat_plugins.wgsl import dataset, joint
from nanochat_plugins.wgsl.errors import WgslError

STATE_VERSION = 1
PLUGIN = "wgsl"


@dataclass
class SourceOptions:
    config: str = ""
    per_family: int = 0
    samples: int = 8
    sample_split: str = "val"
    max_new_tokens: int = 0
    run_timeout: float = 10.0


def parse_options(text: str | None) -> SourceOptions:
    opts = SourceOptions()
    for item in (text or "").split(";"):
        if not item.strip():
            continue
        key, sep, value = (p.strip() for p in item.partition("="))
        if not sep or key not in SourceOptions.__dataclass_fields__:
            raise WgslError(f"data_source_options: {item.strip()!r}: expected key=value with key one of "
                            f"{', '.join(SourceOptions.__dataclass_fields__)}")
        kind = type(getattr(opts, key))
        try:
            setattr(opts, key, kind(value))
        except ValueError:
            raise WgslError(f"data_source_options: {key}={value!r}: not a {kind.__name__}") from None
    if opts.sample_split not in ("val", "test"):
        raise WgslError(f"data_source_options: sample_split={opts.sample_split!r}: use val or test")
    if opts.samples < 0 or opts.max_new_tokens < 0 or opts.per_family < 0 or opts.run_timeout <= 0:
        raise WgslError("data_source_options: samples and max_new_tokens must be >= 0, run_timeout > 0")
    return opts


def generation_config(path: str) -> Any:
    from nanochat_plugins.wgsl import config

    return config.load(path, "generation") if path else config.GenerationConfig()


def load_records(cfg: Any) -> list[dataset.Record]:
    """The pairs a generation config names: a folder, the shipped files, or generated from the templates."""
    ds = cfg.dataset
    if ds.path:
        return dataset.load(ds.path)
    if (ds.per_family == dataset.PER_FAMILY and ds.seed == dataset.SEED
            and tuple(ds.val_families) == dataset.VAL_FAMILIES and tuple(ds.test_families) == dataset.TEST_FAMILIES):
        return dataset.load()
    # templates are checked by the test suite; generating unchecked keeps a run's start quick
    return dataset.generate(ds.per_family, ds.seed, ds.val_families, ds.test_families, check=False).records


class EngineTokenizer:
    """The joint tokenizer as the engine sees a tokenizer (vocab size, BOS, bytes per token, fingerprint)."""

    def __init__(self, tok: joint.JointTokenizer, directory: Path):
        self.joint = tok
        self.directory = directory
        self.fingerprint = tok.fingerprint

    def get_vocab_size(self) -> int:
        return self.joint.vocab_size

    def get_bos_token_id(self) -> int:
        return self.joint.bos_id

    def token_bytes(self) -> torch.Tensor:
        """Bytes of each id for bits per byte; the BPE's specials and <|wgsl_start|> 0 (never scored),
        <|wgsl_end|> 1 (stopping is part of the answer)."""
        nl = self.joint.nl.token_bytes().tolist()
        wgsl = [1] * 256 + [len(t.encode()) for t in self.joint.wgsl.tokens]
        return torch.tensor(nl + wgsl + [0, 1], dtype=torch.int32)


def tokenizer_for(records: list[dataset.Record], cfg: Any, base_dir: Path) -> EngineTokenizer:
    """The joint tokenizer of the train pairs, built once per (pairs, [tokenizer] section) and cached."""
    train = [r for r in records if r.split == "train"]
    if not train:
        raise WgslError("dataset: no train pairs: every family is held out; shrink val_families/test_families")
    t = cfg.tokenizer
    h = hashlib.sha256(f"{t.nl_vocab_size}|{t.lowercase}|{t.min_freq}|{joint.FORMAT_VERSION}".encode())
    for r in train:
        h.update(r.prompt.encode() + b"\0" + r.shader.encode() + b"\0")
    directory = base_dir / "wgsl" / "tokenizer" / h.hexdigest()[:16]
    if (directory / joint.JOINT_FILE).is_file():
        return EngineTokenizer(joint.JointTokenizer.load(directory), directory)
    tok = joint.build([r.prompt for r in train], [r.shader for r in train], t.nl_vocab_size, t.lowercase,
                      t.min_freq)
    directory.mkdir(parents=True, exist_ok=True)
    tok.save(directory)  # joint.json is written last and atomically: a half-written folder is rebuilt
    return EngineTokenizer(tok, directory)


class PairLoader:
    """Batches of whole pairs packed into rows of T+1 tokens; an exactly resumable iterator.

    Each epoch shuffles the split's pairs (seeded by seed and epoch; the val split keeps its order) and
    gives rank r every world_size-th of them. Pairs fill a row in that order while they fit; the rest of
    the row is padding (BOS, target -1). State: (epoch, next pair, batches)."""

    def __init__(self, pairs: list[tuple[list[int], list[int]]], split: str, B: int, T: int, rank: int,
                 world_size: int, device: Any, seed: int, bos: int, data_id: str, state: dict | None = None):
        if not pairs:
            raise WgslError(f"dataset: the {split} split has no pairs: check dataset.val_families/test_families")
        longest = max(len(ids) for ids, _ in pairs)
        if longest > T + 1:
            raise WgslError(f"dataset: a {split} pair has {longest} tokens, over max_seq_len+1={T + 1}: raise "
                            f"model.max_seq_len to at least {longest - 1}")
        if len(pairs) < world_size:
            raise WgslError(f"dataset: {len(pairs)} {split} pairs for {world_size} processes: use fewer processes")
        self.pairs, self.split, self.B, self.T = pairs, split, B, T
        self.rank, self.world_size, self.device, self.seed, self.bos = rank, world_size, torch.device(device), seed, bos
        self.header = {"version": STATE_VERSION, "kind": "wgsl_pairs", "split": split, "rank": rank,
                       "world_size": world_size, "data_id": data_id, "seq_len": T}
        self.epoch, self.pos, self.batches = 0, 0, 0
        if state is not None:
            for key, want in self.header.items():
                if not isinstance(state, dict) or state.get(key) != want:
                    got = state.get(key) if isinstance(state, dict) else state
                    raise WgslError(f"dataloader state: {key} was {got!r}, now {want!r}: resume with the same "
                                    "dataset, processes and max_seq_len, or start fresh")
            self.epoch, self.pos, self.batches = int(state["epoch"]), int(state["pos"]), int(state["batches"])
        self._order = self._epoch_order(self.epoch)

    def _epoch_order(self, epoch: int) -> list[int]:
        idx = np.arange(len(self.pairs))
        if self.split == "train":
            idx = np.random.default_rng([self.seed, epoch]).permutation(len(self.pairs))
        return [int(i) for i in idx[self.rank::self.world_size]]

    def _next_pair(self) -> tuple[list[int], list[int]]:
        if self.pos >= len(self._order):
            self.epoch, self.pos = self.epoch + 1, 0
            self._order = self._epoch_order(self.epoch)
        return self.pairs[self._order[self.pos]]

    def state(self) -> dict:
        return {**self.header, "epoch": self.epoch, "pos": self.pos, "batches": self.batches}

    def __iter__(self) -> PairLoader:
        return self

    def __next__(self) -> tuple[torch.Tensor, torch.Tensor, dict]:
        row_len = self.T + 1
        rows = np.full((self.B, row_len), self.bos, dtype=np.int64)
        learn = np.zeros((self.B, row_len), dtype=bool)
        for b in range(self.B):
            at = 0
            while True:
                ids, mask = self._next_pair()
                if at + len(ids) > row_len:
                    break
                rows[b, at:at + len(ids)] = ids
                learn[b, at:at + len(ids)] = mask
                at += len(ids)
                self.pos += 1
        self.batches += 1
        x = torch.from_numpy(rows[:, :-1].copy())
        y = torch.from_numpy(np.where(learn[:, 1:], rows[:, 1:], -1))
        if self.device.type != "cpu":
            x, y = x.to(self.device), y.to(self.device)
        return x, y, self.state()


class WgslSource:
    """What engine.train asks a data source for; see the module docstring."""

    def __init__(self, options: str | None, base_dir: Path, seed: int):
        self.opts = parse_options(options)
        self.cfg = generation_config(self.opts.config)
        if self.opts.per_family:
            self.cfg.dataset.per_family = self.opts.per_family
        self.records = load_records(self.cfg)
        self.tokenizer = tokenizer_for(self.records, self.cfg, Path(base_dir))
        self.seed = seed
        tok = self.tokenizer.joint
        h = hashlib.sha256(self.tokenizer.fingerprint.encode())
        for r in self.records:
            h.update(f"{r.id}|{r.split}|".encode() + r.shader.encode())
        self.data_id = h.hexdigest()[:16]
        self.pairs = {s: [tok.render_pair(r.prompt, r.shader) for r in self.records if r.split == s]
                      for s in dataset.SPLITS}
        ds = self.cfg.dataset
        generated = f"generated: {ds.per_family} per family, seed {ds.seed}"
        where = ds.path or (generated if ds.per_family != dataset.PER_FAMILY else "shipped dataset")
        self.description = f"wgsl pairs ({where}; {sum(map(len, self.pairs.values()))} pairs, data id {self.data_id})"
        self._sampler: Any = None

    def loader(self, split: str, B: int, T: int, rank: int, world_size: int, device: Any,
               state: dict | None = None) -> PairLoader:
        return PairLoader(self.pairs[split], split, B, T, rank, world_size, device, self.seed,
                          self.tokenizer.get_bos_token_id(), self.data_id, state)

    def sample(self, model: Any, step: int, emit: Any) -> None:
        """Write shaders for a few held-out prompts and score them (rank 0, on sample steps)."""
        if self.opts.samples <= 0:
            return
        from nanochat_plugins.wgsl.sampling import Sampler

        if self._sampler is None:
            records = [r for r in self.records if r.split == self.opts.sample_split]
            self._sampler = Sampler(self.tokenizer.joint, records, self.opts.samples, self.opts.max_new_tokens,
                                    self.opts.run_timeout)
        t0 = time.perf_counter()
        data, first = self._sampler.score(model)
        data["seconds"] = time.perf_counter() - t0
        emit("plugin", plugin=PLUGIN, kind="samples", step=step, data=data)
        if first is not None:
            emit("sample", step=step, prompt=first[0], text=first[1])
        rates = ("no adapter" if data["validity"] is None else
                 f"valid {data['valid']}/{data['n']}, correct {data['correct']}/{data['n']}")
        print(f"wgsl samples | step {step} | {rates} | {data['seconds']:.1f}s", flush=True)


def make(options: str | None, base_dir: Path, seed: int) -> WgslSource:
    """The entry point engine.train imports (`data_source = nanochat_plugins.wgsl.source:make`)."""
    return WgslSource(options, base_dir, seed)
