"""Pretrain a nanochat-style GPT: `torchrun --standalone --nproc_per_node=N -m engine.train [flags]`.

Also runs as a single process (`python -m engine.train`). torchrun-native: RANK/WORLD_SIZE/LOCAL_RANK
come from the environment, gloo on CPU, NCCL on CUDA. Gradients are averaged by the optimizer
itself (no DDP wrapper). Rank 0 writes `<base>/runs/<run>/telemetry.jsonl` and reads the control
channel; checkpoints go to `<base>/base_checkpoints/<tag>/` in nanochat's layout.

Step numbering follows nanochat: at loop step s the model has taken s optimizer steps; evals, samples
and checkpoints happen before the update of step s, so checkpoint s resumes by taking update s next.
"""

from __future__ import annotations

if __name__ == "__main__":  # before torch's slow import: a worker must not outlive its launcher, even then
    from engine.lifeline import tie_to_launcher

    tie_to_launcher()

import math
import os
import re
import resource
import sys
import time
import traceback
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.distributed as dist

from engine import IMPORTED_AT, __version__
from engine.checkpoint import (
    CheckpointError,
    check_model_config,
    checkpoint_dir,
    complete_steps,
    load_extra_state,
    load_meta,
    load_model_state,
    load_rank_state,
    meta_file,
    meta_model_config,
    model_file,
    optim_file,
    restore_rng,
    rng_state,
    save_model_and_meta,
    save_rank_state,
    weights_mismatch,
)
from engine.common import DistInfo, EngineError, cleanup_distributed, compute_dtype, init_distributed, print0
from engine.config import TrainConfig, parse_config
from engine.control import ControlChannel, apply_patch
from engine.corpus import resolve_data_dir
from engine.data_source import load_data_source
from engine.dataloader import make_loader
from engine.dataset import data_id, iter_texts
from engine.extensions import Extension, ExtensionContext, extension_file, guarded, load_extension
from engine.fp8 import fp8_disabled, fp8_module_filter
from engine.gpt import GPT, config_from_depth, load_state_dict_compat
from engine.lifeline import record_pid, tie_to_launcher
from engine.loss_eval import evaluate_bpb
from engine.optim import apply_schedules, build_optimizer
from engine.shared import base_dir, one_line
from engine.shared import peak_flops as peak_flops_for
from engine.sinks import Sinks
from engine.startup import StartupClock
from engine.tct.location import uses_tct
from engine.telemetry import SCHEMA_VERSION, TELEMETRY_FILE, TelemetryWriter
from engine.tokenizer import Tokenizer, ensure_tokenizer

SAMPLE_PROMPTS = ["def fibonacci(n):", "The Python standard library", "import os\n"]


def peak_flops(device: torch.device) -> float | None:
    """Dense bf16 peak FLOP/s of a CUDA device, for MFU; None (not shown) where none is known, e.g. CPUs."""
    return peak_flops_for(torch.cuda.get_device_name(device)) if device.type == "cuda" else None


def memory_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def horizon(cfg: TrainConfig, model: GPT, flops_per_token: int) -> int:
    """Steps to train: explicit, from a FLOPs budget, or from the tokens:params ratio."""
    if cfg.num_iterations > 0:
        return cfg.num_iterations
    if cfg.target_flops > 0:
        return max(1, round(cfg.target_flops / (flops_per_token * cfg.total_batch_size)))
    # scaling params: everything but the embedding lookups, which do no per-token compute
    embeds = model.transformer.wte.weight.numel() + sum(e.weight.numel() for e in model.value_embeds.values())
    return max(1, round(cfg.target_param_data_ratio * (model.num_params() - embeds) / cfg.total_batch_size))


def make_samples(model: GPT, tokenizer: Tokenizer, max_tokens: int = 32) -> list[tuple[str, str]]:
    from engine.engine import Engine  # inference code is only needed on sample steps

    engine = Engine(model, tokenizer)
    out = []
    for prompt in SAMPLE_PROMPTS:
        tokens = tokenizer.encode(prompt, prepend=tokenizer.get_bos_token_id())
        rows, _ = engine.generate_batch(tokens, num_samples=1, max_tokens=max_tokens, temperature=0.0)
        out.append((prompt, tokenizer.decode(rows[0][len(tokens):])))
    return out


class Trainer:
    """Owns one training run: setup, the loop, checkpoints, telemetry and control requests.

    Post-training stages (engine.sft) subclass it: they override setup, evaluate, sample and the hooks
    `forward_backward`, `checkpoint_meta` and `start_fields`, and keep the loop, control, saving and resume."""

    tct = False  # training on TCT windows (set by setup; a subclass with its own setup trains on text)

    phase = "base"  # checkpoint folder (engine.shared.PHASE_DIRS) and run_start.stage
    extensions: tuple[Extension, ...] | list[Extension] = ()  # engine extensions: setup() loads the config's

    def __init__(self, cfg: TrainConfig, info: DistInfo, telemetry: TelemetryWriter, run_dir: Path,
                 sinks: Sinks | None = None):
        self.cfg, self.info, self.tel, self.run_dir = cfg, info, telemetry, run_dir
        self.sinks = sinks or Sinks()
        self.base = Path(cfg.base_dir).expanduser() if cfg.base_dir else base_dir()
        self.device = info.device
        self.dtype = compute_dtype(self.device)
        self.autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if self.dtype == torch.bfloat16
                         else nullcontext())
        self.ckpt_dir = checkpoint_dir(self.base, cfg.tag, self.phase)
        self.control = ControlChannel(run_dir, info)
        self.t_start = time.time()
        self.val_bpb: float | None = None
        self.step = 0  # the step the model has reached: what run_end records however the run ends
        self.setup_warnings: list[str] = []  # emitted right after run_start
        self.startup = StartupClock()  # main() hands over its own, started earlier

    # ---- setup -------------------------------------------------------------------------------
    def _rank0_first(self, fn):
        """Run fn on rank 0 first (it may build caches), then on the other ranks."""
        if self.info.master:
            result = fn()
        if self.info.ddp:
            dist.barrier()
        if not self.info.master:
            result = fn()
        return result

    def setup(self) -> None:
        cfg, info = self.cfg, self.info
        if cfg.fp8 and not (self.device.type == "cuda" and torch.cuda.get_device_capability(self.device) >= (8, 9)):
            raise EngineError("fp8: needs a CUDA GPU with compute capability 8.9+ (Ada/Hopper): drop --fp8")
        self.source = None
        self.tct = not cfg.data_source and uses_tct(cfg.data_dir)  # TCT windows: own tokenizer, loader, eval
        if cfg.data_source:  # a plugin's token stream (engine/data_source.py) instead of parquet text
            self.source = self._rank0_first(lambda: load_data_source(cfg.data_source, cfg.data_source_options,
                                                                     self.base, cfg.seed))
            self.data_dir = self.source.description
            self.startup.mark("data")
            self.tokenizer = self.source.tokenizer
        elif self.tct:
            from engine.tct_lm import TCTTokenizer
            from engine.tct_windows import resolve_window_dir

            self.data_dir = self._rank0_first(lambda: resolve_window_dir(cfg.data_dir, self.base, cfg.max_seq_len)
                                              if cfg.data_dir.startswith("tct:") else Path(cfg.data_dir).expanduser())
            self.startup.mark("data")
            self.tokenizer = TCTTokenizer()
        else:
            self.data_dir = self._rank0_first(lambda: resolve_data_dir(cfg.data_dir, self.base))
            self.startup.mark("data")
            self.tokenizer = self._rank0_first(lambda: ensure_tokenizer(
                cfg.tokenizer_dir, self.base, cfg.vocab_size, lambda: iter_texts(self.data_dir, "train"),
                data_id=data_id(self.data_dir)))
        self.token_bytes = self.tokenizer.token_bytes().to(self.device)
        self.startup.mark("tokenizer")

        mcfg = config_from_depth(cfg.depth, cfg.aspect_ratio, cfg.head_dim, cfg.max_seq_len,
                                 self.tokenizer.get_vocab_size(), cfg.window_pattern, cfg.n_kv_head)
        self.model_config = mcfg
        torch.manual_seed(cfg.seed)
        model = GPT(mcfg).to(self.device)
        model.init_weights()
        self.extensions = self._load_extensions(model)
        self.start_step, loader_state = 0, None
        resume_step, meta, rank_state = self._resume(model)
        if resume_step is not None:
            loader_state = rank_state["dataloader"]
            self.start_step = self.step = resume_step
            self.val_bpb = meta.get("val_bpb") if isinstance(meta.get("val_bpb"), int | float) else None
            self._load_extension_state(self.ckpt_dir, resume_step, meta, required=True)
        elif cfg.init_from:
            self._init_from(model)
        self.resumed_from = resume_step
        self.raw_model = model
        self.model = torch.compile(model, dynamic=False) if cfg.compile else model
        if cfg.fp8:
            self._enable_fp8(model)
        self.startup.mark("model")

        self.optimizer = build_optimizer(model, embedding_lr=cfg.embedding_lr, unembedding_lr=cfg.unembedding_lr,
                                         matrix_lr=cfg.matrix_lr, scalar_lr=cfg.scalar_lr,
                                         weight_decay=cfg.weight_decay, world_size=info.world_size)
        for ext in self.extensions:
            for group in guarded(ext, "param_groups", ext.param_groups):
                group = {"kind": "adamw", "eps": 1e-10, "weight_decay": 0.0, **group}
                group.setdefault("initial_lr", group["lr"])
                self.optimizer.add_param_group(group)
        if rank_state is not None:
            self._restore_optimizer(rank_state, resume_step)

        self.startup.mark("optimizer")
        self.flops_per_token = model.estimate_flops()
        per_fwdbwd = cfg.device_batch_size * cfg.max_seq_len * info.world_size
        if cfg.total_batch_size % per_fwdbwd:
            raise EngineError(f"total_batch_size={cfg.total_batch_size} is not a multiple of device_batch_size × "
                              f"max_seq_len × world_size = {per_fwdbwd}: set total_batch_size to a multiple of it")
        self.grad_accum = cfg.total_batch_size // per_fwdbwd
        self.num_iterations = horizon(cfg, model, self.flops_per_token)
        self.train_loader = self._loader("train", loader_state)
        self.loader_state = loader_state
        self.startup.mark("loader")

    # ---- extensions (engine/extensions.py): none configured = a vanilla run, none of this runs ----------------
    def _load_extensions(self, model: GPT) -> list[Extension]:
        exts = []
        for spec in self.cfg.extensions:
            ctx = ExtensionContext(model=model, tokenizer=self.tokenizer, device=self.device, data_dir=self.data_dir,
                                   rank=self.info.rank, world_size=self.info.world_size,
                                   max_seq_len=self.cfg.max_seq_len, seed=self.cfg.seed, emit=self.tel.emit)
            ext = load_extension(spec, ctx)
            for module in guarded(ext, "modules", ext.modules).values():
                module.to(self.device)
            exts.append(ext)
        return exts

    def _load_extension_state(self, ckpt_dir: Path, step: int, meta: dict, required: bool) -> None:
        for ext in self.extensions:
            path = extension_file(ckpt_dir, ext.name, step)
            if not path.exists():
                if required:
                    raise CheckpointError(f"{path}: missing: this checkpoint was saved without extension {ext.name}: "
                                          f"turn it off ({ext.name}.enabled=false) or start fresh")
                continue
            state = load_extra_state(path, self.device, meta)
            guarded(ext, "load_state_dict", ext.load_state_dict, state)

    def _loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The micro-batch loss: the model's, or as the extensions wrap it (each gets the one below as base)."""
        if not self.extensions:
            return self.model(x, y)
        base = self.model
        for ext in self.extensions:
            base = (lambda e, b: lambda xx, yy: guarded(e, "train_loss", e.train_loss, xx, yy, b))(ext, base)
        return base(x, y)

    def _restore_optimizer(self, rank_state: dict, step: int) -> None:
        """The resumed step's optimizer state and RNG (a state from another model is a one-line error)."""
        try:
            self.optimizer.load_state_dict(rank_state["optimizer"])
            restore_rng(rank_state["rng"])
        except (KeyError, ValueError, TypeError, IndexError, AttributeError, RuntimeError) as e:
            raise CheckpointError(f"{optim_file(self.ckpt_dir, step, self.info.rank)}: optimizer state does "
                                  f"not fit this model ({one_line(e)}): delete this step or start fresh") from None

    def _resume_candidates(self) -> list[int]:
        """Steps to try, newest first: the one asked for, all complete ones under --resume, else none."""
        cfg = self.cfg
        steps = complete_steps(self.ckpt_dir)
        if not (cfg.resume or cfg.resume_from_step >= 0):
            if steps:
                raise EngineError(f"{self.ckpt_dir}: run '{cfg.tag}' already has checkpoints (latest step "
                                  f"{steps[-1]}): pass --resume to continue it or choose another --run")
            return []
        if cfg.resume_from_step >= 0:
            return [cfg.resume_from_step]
        if not steps:
            raise EngineError(f"{self.ckpt_dir}: no complete checkpoint to resume: drop --resume to start fresh")
        return steps[::-1]

    def _resume(self, model: GPT) -> tuple[int | None, dict | None, dict | None]:
        """(step, meta, this rank's state) of the newest step whose files load fully on every rank, the model
        holding its weights; a damaged newer step is skipped with a warning. (None, None, None): a fresh run."""
        candidates = self._resume_candidates()
        skipped: list[str] = []
        for step in candidates:
            try:
                meta, rank_state = self._load_step(model, step)
                error = None
            except CheckpointError as e:
                meta = rank_state = None
                error = str(e)
            errors = [err for err in self._gather(error) if err]
            if not errors:
                for why in skipped:
                    self.setup_warnings.append(f"resume: skipped a damaged checkpoint step ({why}); "
                                               f"resuming from step {step}")
                return step, meta, rank_state
            skipped.append(error or errors[0])
        if not skipped:
            return None, None, None
        if len(candidates) == 1:
            raise CheckpointError(skipped[0])
        raise CheckpointError(f"{self.ckpt_dir}: no checkpoint step loads fully (newest: {skipped[0]}): delete the "
                              "damaged steps or drop --resume to start fresh")

    def _gather(self, value):
        """Every rank's `value`, in rank order (one process: just this one)."""
        if not self.info.ddp:
            return [value]
        out = [None] * self.info.world_size
        dist.all_gather_object(out, value)
        return out

    def _load_step(self, model: GPT, step: int) -> tuple[dict, dict]:
        """Load one resume step into `model`: its meta (checked against the config), weights and this rank's
        state. A damaged or refused file raises CheckpointError; a config or tokenizer mismatch EngineError."""
        meta = load_meta(self.ckpt_dir, step)
        self._check_meta(meta, self.ckpt_dir, step)
        self._load_weights(model, self.ckpt_dir, step, meta)
        rank_state = load_rank_state(self.ckpt_dir, step, self.info.rank, self.device, meta)
        rng = rank_state["rng"]
        if not isinstance(rank_state["optimizer"], dict) or not (
                rng is None or isinstance(rng, dict) and isinstance(rng.get("cpu"), torch.Tensor)):
            raise CheckpointError(f"{optim_file(self.ckpt_dir, step, self.info.rank)}: malformed optimizer state "
                                  "(not the layout engine.train writes): delete this step")
        return meta, rank_state

    def _check_meta(self, meta: dict, ckpt_dir: Path, step: int) -> None:
        source = meta_file(ckpt_dir, step)
        check_model_config(meta_model_config(meta, source), self.model_config.to_dict(), source)
        self._check_tokenizer(meta, ckpt_dir)

    def _load_weights(self, model: GPT, ckpt_dir: Path, step: int, meta: dict) -> None:
        state = load_model_state(ckpt_dir, step, self.device, meta)
        try:
            load_state_dict_compat(model, state)
        except RuntimeError as e:  # strict load: missing/unexpected keys or shape mismatches
            raise weights_mismatch(model_file(ckpt_dir, step), e) from None

    def _init_from(self, model: GPT) -> None:
        path = Path(self.cfg.init_from).expanduser()
        if path.suffix == ".pt":
            m = re.fullmatch(r"model_(\d{6})\.pt", path.name)
            if not m:
                raise EngineError(f"init_from: {path}: not a model_XXXXXX.pt file: point at a checkpoint's model "
                                  "file or its folder")
            ckpt_dir, step = path.parent, int(m.group(1))
            if step not in complete_steps(ckpt_dir):
                raise EngineError(f"init_from: {path}: not a complete checkpoint (meta_{step:06d}.json and the "
                                  "model file): pick another step")
        else:
            ckpt_dir, steps = path, complete_steps(path)
            if not steps:
                raise EngineError(f"init_from: {path}: no complete checkpoint there: point at a model_*.pt file")
            step = steps[-1]
        meta = load_meta(ckpt_dir, step)
        self._check_meta(meta, ckpt_dir, step)
        self._load_weights(model, ckpt_dir, step, meta)
        self._load_extension_state(ckpt_dir, step, meta, required=False)

    def _check_tokenizer(self, meta: dict, ckpt_dir: Path) -> None:
        """Token ids only mean the same thing under the same tokenizer (stock checkpoints carry no hash)."""
        if meta.get("tokenizer_hash") not in (None, self.tokenizer.fingerprint):
            raise EngineError(f"{ckpt_dir}: checkpoint was trained with another tokenizer: pass "
                              f"--tokenizer-dir {meta.get('tokenizer_dir')} or start a new run")

    def _enable_fp8(self, model: GPT) -> None:
        try:
            from torchao.float8 import convert_to_float8_training
        except ImportError:
            raise EngineError("fp8: needs the torchao package: pip install torchao, or drop --fp8") from None
        convert_to_float8_training(model, module_filter_fn=fp8_module_filter)

    # ---- events --------------------------------------------------------------------------------
    def emit_start(self) -> None:
        self.tel.emit("run_start", config=self.cfg.model_dump(), world_size=self.info.world_size,
                      device=str(self.device), dtype=str(self.dtype).removeprefix("torch."),
                      num_params=self.raw_model.num_params(), num_flops_per_token=self.flops_per_token,
                      num_iterations=self.num_iterations, tokens_per_step=self.cfg.total_batch_size,
                      engine_version=__version__, pid=os.getpid(), run_dir=str(self.run_dir),
                      resumed_from_step=self.resumed_from, startup=self.startup.stamps, **self.start_fields())
        for message in self.setup_warnings:
            self.tel.emit("warning", message=message)
            print0(f"warning: {message}")
        print0(f"run {self.cfg.run}: {self.raw_model.num_params():,} params, {self.num_iterations} steps of "
               f"{self.cfg.total_batch_size:,} tokens (grad accum {self.grad_accum}), world {self.info.world_size}, "
               f"{self.device} {str(self.dtype).removeprefix('torch.')}, data {self.data_dir}")

    def start_fields(self) -> dict:
        """Extra run_start fields of a stage (pretraining: none, so its event is unchanged)."""
        return {}

    def checkpoint_meta(self) -> dict:
        """What a checkpoint's meta records besides step, engine version and file checksums."""
        cfg = self.cfg
        return {"val_bpb": self.val_bpb, "model_config": self.model_config.to_dict(),
                "user_config": cfg.model_dump(), "device_batch_size": cfg.device_batch_size,
                "max_seq_len": cfg.max_seq_len, "total_batch_size": cfg.total_batch_size,
                "dataloader_state_dict": self.loader_state, "loop_state": {"num_iterations": self.num_iterations},
                "run": cfg.run, "tokenizer_hash": self.tokenizer.fingerprint,
                "tokenizer_dir": str(self.tokenizer_dir()), "data_dir": str(self.data_dir),
                "telemetry_schema_version": SCHEMA_VERSION, "world_size": self.info.world_size,
                **({"tokenizer_kind": "tct", "tokenizer_dir": ""} if self.tct else {})}

    def save(self, step: int, reason: str) -> None:
        t0 = time.time()
        record = save_rank_state(self.ckpt_dir, step, self.info.rank, self.optimizer.state_dict(),
                                 self.loader_state, rng_state())
        # every rank's state is on disk before the meta marks the step complete; the meta records their checksums
        records = dict(enumerate(self._gather(record)))
        size = record["bytes"]
        if self.info.master:
            meta = self.checkpoint_meta()
            extra = {}
            if self.extensions:  # settings as config keys <name>.<field>, meta fields, and weights next to the model
                meta["user_config"].update({e.name: dict(e.settings) for e in self.extensions})
                meta["extensions"] = {e.name: guarded(e, "meta", e.meta) for e in self.extensions}
                extra = {extension_file(self.ckpt_dir, e.name, step).name: guarded(e, "state_dict", e.state_dict)
                         for e in self.extensions}
            size += save_model_and_meta(self.ckpt_dir, step, self.raw_model.state_dict(), meta, records, extra)
            self.tel.emit("checkpoint", step=step, path=str(self.ckpt_dir / f"model_{step:06d}.pt"), reason=reason,
                          seconds=time.time() - t0, bytes=size)
            print0(f"saved checkpoint step {step} ({reason}) to {self.ckpt_dir}")
        if self.info.ddp:
            dist.barrier()

    def _loader(self, split: str, state: dict | None = None):
        cfg, info = self.cfg, self.info
        if self.source is not None:
            return self.source.loader(split, cfg.device_batch_size, cfg.max_seq_len, info.rank, info.world_size,
                                      self.device, state=state)
        if self.tct:
            from engine.tct_windows import make_window_loader

            return make_window_loader(self.data_dir, cfg.device_batch_size, cfg.max_seq_len, split, info.rank,
                                      info.world_size, self.device, state=state, seed=cfg.seed)
        return make_loader(self.tokenizer, cfg.device_batch_size, cfg.max_seq_len, split, self.data_dir,
                           info.rank, info.world_size, self.device, state=state)

    def tokenizer_dir(self) -> Path:
        return Path(getattr(self.tokenizer, "directory", None) or self.cfg.tokenizer_dir or "")

    def evaluate(self, step: int) -> None:
        cfg = self.cfg
        tokens_per_batch = cfg.device_batch_size * cfg.max_seq_len * self.info.world_size
        steps = max(1, cfg.eval_tokens // tokens_per_batch)
        val = self._loader("val")
        self.model.eval()
        if self.tct:
            from engine.tct_lm import evaluate_windows

            with fp8_disabled(self.raw_model):
                self.val_bpb, val_loss = evaluate_windows(self.model, val, steps, self.token_bytes, self.autocast)
            self.model.train()
            self.tel.emit("eval", step=step, val_bpb=self.val_bpb, val_loss=val_loss)
            print0(f"step {step:05d} | val bpb {self.val_bpb:.4f} | val loss {val_loss:.4f}")
            return
        with fp8_disabled(self.raw_model):  # evaluated in the compute dtype, as nanochat does
            self.val_bpb = evaluate_bpb(self.model, val, steps, self.token_bytes, self.autocast)
        self.model.train()
        self.tel.emit("eval", step=step, val_bpb=self.val_bpb)
        print0(f"step {step:05d} | val bpb {self.val_bpb:.4f}")

    def sample(self, step: int) -> None:
        if not self.info.master:
            return
        self.raw_model.eval()
        if self.source is not None:
            if hasattr(self.source, "sample"):
                self.source.sample(self.raw_model, step, self.tel.emit)
        else:
            if self.tct:
                from engine.tct_lm import tct_samples

                samples = tct_samples(self.raw_model, seed=step)
            else:
                samples = make_samples(self.raw_model, self.tokenizer)
            for prompt, text in samples:
                self.tel.emit("sample", step=step, prompt=prompt, text=text)
                print0(f"sample | {prompt!r} -> {text!r}")
        self.raw_model.train()

    # ---- control -----------------------------------------------------------------------------
    def handle_control(self, step: int) -> tuple[bool, bool]:
        """Apply control requests polled this step. Returns (save_now, stop)."""
        save_now = stop = False
        requests = self.control.poll(step)
        for ack in self.control.rejected:  # malformed lines get a rejection ack too
            self.tel.emit(ack)
        for req in requests:
            ok, message, applied = True, "", {}
            if req.kind == "save_now":
                save_now, message = True, f"saving at step {step}"
            elif req.kind == "stop":
                stop, message = True, f"stopping at step {step} after saving"
            elif req.kind == "patch":
                new_cfg, message = apply_patch(self.cfg, req)
                ok = new_cfg is not None
                if ok:
                    applied = {k: getattr(new_cfg, k) for k in req.changes}
                    self.cfg = new_cfg
                    if "num_iterations" in applied and new_cfg.num_iterations > 0:
                        self.num_iterations = max(new_cfg.num_iterations, step)
            else:
                ok, message = False, f"unknown request kind {req.kind!r}"
            self.tel.emit("control_ack", request_id=req.id, kind=req.kind, ok=ok, message=message, step=step,
                          applied=applied)
            print0(f"control {req.kind}: {'ok' if ok else 'rejected'} {message}")
        return save_now, stop

    # ---- the loop ----------------------------------------------------------------------------
    def train(self) -> str:
        cfg, info, device = self.cfg, self.info, self.device
        peak = peak_flops(device)
        smooth, beta = 0.0, 0.9
        tokens_seen = self.start_step * cfg.total_batch_size
        t_loop, steps_timed = 0.0, 0
        x, y, self.next_state = self._next_batch()
        step = self.start_step
        while True:
            self.step = step
            cfg = self.cfg  # a patch may have replaced it
            last = step >= self.num_iterations
            save_now, stop = self.handle_control(step)
            if (cfg.eval_every > 0 and step % cfg.eval_every == 0 and step > self.start_step) or last:
                with self.sinks.span("eval", step=step):
                    self.evaluate(step)
            if info.master and cfg.sample_every > 0 and step % cfg.sample_every == 0 and step > self.start_step:
                self.sample(step)
            periodic = cfg.save_every > 0 and step % cfg.save_every == 0 and step > self.start_step
            if last or stop or save_now or periodic:
                reason = "final" if last else "stop" if stop else "request" if save_now else "periodic"
                with self.sinks.span("checkpoint", step=step, reason=reason):
                    self.save(step, reason)
            if last:
                return "finished"
            if stop:
                return "stopped"

            # one optimizer step: grad_accum micro-batches, then the update
            sync(device)
            t0 = time.perf_counter()
            t_data = 0.0
            loss_sum = torch.zeros((), device=device)
            for _ in range(self.grad_accum):
                loss_sum += self.forward_backward(x, y)
                td = time.perf_counter()
                self.loader_state = self.next_state
                x, y, self.next_state = self._next_batch()
                t_data += time.perf_counter() - td
            sync(device)
            t1 = time.perf_counter()
            sched = apply_schedules(self.optimizer, step, self.num_iterations, lr_scale=cfg.lr_scale,
                                    warmup_iters=cfg.warmup_iters, warmdown_ratio=cfg.warmdown_ratio,
                                    final_lr_frac=cfg.final_lr_frac)
            self.optimizer.step()
            self.model.zero_grad(set_to_none=True)
            loss_val = loss_sum.item() / self.grad_accum  # the one host sync per step, for the progress line
            t2 = time.perf_counter()
            if not math.isfinite(loss_val):
                self.tel.emit("warning", message=f"non-finite loss {loss_val} at step {step + 1}")

            step += 1
            dt = t2 - t0
            tokens_seen += cfg.total_batch_size
            smooth = beta * smooth + (1 - beta) * loss_val
            smooth_debiased = smooth / (1 - beta ** (step - self.start_step))
            if step - self.start_step > 1:  # the first step includes warm-up/compilation
                t_loop += dt
                steps_timed += 1
            avg_dt = t_loop / steps_timed if steps_timed else dt
            eta = avg_dt * (self.num_iterations - step)
            tok_s = cfg.total_batch_size / dt
            mfu = (self.flops_per_token * tok_s / (peak * info.world_size)) if peak else None
            if info.master:
                self.tel.emit("step", step=step, total=self.num_iterations, loss=loss_val, smooth_loss=smooth_debiased,
                              lr_mult=sched["lr_mult"], muon_momentum=sched["muon_momentum"], tokens_per_sec=tok_s,
                              mfu=mfu, dt=dt, t_data=t_data, t_fwd_bwd=t1 - t0 - t_data, t_optim=t2 - t1,
                              mem_bytes=memory_bytes(device), tokens_seen=tokens_seen,
                              elapsed=time.time() - self.t_start, eta=eta)
                if step % cfg.log_every == 0 or step == self.num_iterations:
                    mfu_s = f"{100 * mfu:.1f}%" if mfu is not None else "-"
                    print0(f"step {step:05d}/{self.num_iterations:05d} ({100 * step / self.num_iterations:5.1f}%) | "
                           f"loss {loss_val:.4f} | lrm {sched['lr_mult']:.2f} | dt {dt * 1000:.0f}ms | "
                           f"tok/s {tok_s:,.0f} | mfu {mfu_s} | eta {eta:.0f}s")
            for ext in self.extensions:
                guarded(ext, "after_step", ext.after_step, step)

    def forward_backward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """One micro-batch: forward, backward of its share of the step's loss; returns the detached loss."""
        with self.autocast:
            loss = self._loss(x, y)
        (loss / self.grad_accum).backward()
        return loss.detach()

    def _next_batch(self):
        return next(self.train_loader)


def main(argv: list[str] | None = None) -> int:
    return run_training(argv, Trainer, parse_config, "engine.train")


def run_training(argv: list[str] | None, trainer_cls: type, parse, prog: str) -> int:
    """A training stage's main: parse the config (`parse(argv)`), open the run dir and telemetry, run
    `trainer_cls` under torch.distributed, and end with run_end whatever happens. Returns the exit code."""
    startup = StartupClock(IMPORTED_AT)
    startup.mark("imports")
    tie_to_launcher()
    try:
        cfg = parse(argv)
    except EngineError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    base = Path(cfg.base_dir).expanduser() if cfg.base_dir else base_dir()
    run_dir = base / "runs" / cfg.run
    rank = int(os.environ.get("RANK", 0))
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / f".write-test-{rank}"
        probe.touch()
        probe.unlink()
        record_pid(run_dir, rank)  # `runs stop` ends every rank, also after its launcher is gone
    except OSError as e:
        print(f"{prog}: error: run dir {run_dir}: not writable ({e.strerror}): set --base-dir or "
              f"NANOCHAT_BASE_DIR to a writable folder", file=sys.stderr)
        return 2
    telemetry = TelemetryWriter(run_dir / TELEMETRY_FILE, run=cfg.run, enabled=rank == 0)
    t0 = time.time()
    status, reason, code = "failed", "", 1
    trainer = None
    sinks = Sinks()
    try:
        sinks = Sinks.from_config(cfg, run_dir, rank, telemetry.emit)
        telemetry.listeners.append(sinks.on_event)
        info = init_distributed(cfg.device_type)
        startup.mark("distributed")
        trainer = trainer_cls(cfg, info, telemetry, run_dir, sinks)
        trainer.startup = startup
        trainer.setup()
        trainer.emit_start()
        status = trainer.train()
        reason = "completed all steps" if status == "finished" else "stop requested"
        code = 0
    except EngineError as e:
        reason = one_line(e)
        telemetry.emit("error", message=reason, traceback="", step=None)
        print(f"{prog}: error: {reason}", file=sys.stderr)
    except KeyboardInterrupt:
        status, reason, code = "stopped", "interrupted (SIGINT)", 130
    except Exception as e:
        reason = one_line(e)
        telemetry.emit("error", message=reason, traceback=traceback.format_exc(), step=None)
        traceback.print_exc()
        print(f"{prog}: error: {reason}", file=sys.stderr)
    finally:
        step = trainer.step if trainer is not None else 0
        telemetry.emit("run_end", status=status, reason=reason, step=step, elapsed=time.time() - t0)
        sinks.close()
        telemetry.close()
        cleanup_distributed(synchronize=code == 0)
    return code


if __name__ == "__main__":
    sys.exit(main())
