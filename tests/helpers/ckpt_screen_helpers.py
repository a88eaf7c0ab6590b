"""Shared by several test modules (moved out of test_checkpoints_screen.py)."""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

from ckpt_helpers import STOCK_FIXTURE, save_ours, tiny_config_overrides, tiny_model, write_data_dir

from engine.checkpoint import checkpoint_dir
from engine.tokenizer import Tokenizer
from nanochat_cli.app import NanochatApp
from nanochat_cli.services.config.guardrails import MachineInfo
from nanochat_cli.services.secrets import SecretStore
from nanochat_cli.services.state import UIState, save_state

MACHINE = MachineInfo(cpu_count=2, ram_total_bytes=8_000_000_000, ram_free_bytes=6_000_000_000)


FIXED_TIME = 1_700_000_000  # 2023-11-14 22:13 UTC: file dates in the listing are deterministic


META_BYTES = 8192  # metas record tmp paths; padded to one size, the size column does not depend on them


WORDS = "the model reads text and learns which token comes next so that a small network can write code".split()


def synthetic_tokenizer(directory: Path) -> Tokenizer:
    """A tokenizer trained on seeded synthetic text: unlike ckpt_helpers' (trained on the engine's sources), its
    hash and token counts stay the same when the repo changes, as snapshots need."""
    rng = random.Random(0)
    texts = [" ".join(rng.choice(WORDS) for _ in range(200)) for _ in range(50)]
    Tokenizer.train_from_iterator(texts, 300).save(directory)
    return Tokenizer.from_directory(directory)


def build_world(base: Path, tok_src: Tokenizer, stock: bool = True) -> dict:
    """Under `base`: tiny@5 (fits the config), trunc@3 (model file cut in half), deep@7 (depth 3: incompatible),
    and the stock fixture d4@0 when /work/shared is there; the tokenizer and data live under base too, and the
    UI state loads cpu-tiny with overrides describing the tiny model."""
    shutil.copytree(tok_src.directory, base / "tok")
    tok = Tokenizer.from_directory(base / "tok")
    data = write_data_dir(base / "corpus")
    save_ours(base, "tiny", 5, tiny_model(300), tok, data)
    trunc = save_ours(base, "trunc", 3, tiny_model(300), tok, data)
    blob = (trunc / "model_000003.pt").read_bytes()
    (trunc / "model_000003.pt").write_bytes(blob[: len(blob) // 2])
    save_ours(base, "deep", 7, tiny_model(300, depth=3), tok, data)
    if stock and STOCK_FIXTURE.is_dir():
        d = checkpoint_dir(base, "d4")
        d.mkdir(parents=True)
        for name in ("model_000000.pt", "meta_000000.json"):
            shutil.copy(STOCK_FIXTURE / name, d / name)
    for meta in base.glob("base_checkpoints/*/meta_*.json"):
        text = meta.read_text()
        assert len(text) < META_BYTES
        meta.write_text(text + " " * (META_BYTES - len(text)))
    for p in base.glob("*_checkpoints/*/*"):
        os.utime(p, (FIXED_TIME, FIXED_TIME))
    overrides = {**tiny_config_overrides(base, data, tok.directory), "telemetry.eval_tokens": 512,
                 "hardware.nproc_per_node": 1}
    save_state(UIState(screen="checkpoints", prefab="cpu-tiny", overrides=overrides))
    return {"base": base, "tok": tok, "data": data}


def make_app(tmp_path: Path, **labels) -> NanochatApp:
    return NanochatApp(machine=MACHINE, secrets=SecretStore(file_dir=tmp_path / "secrets"), online_checks=False,
                       **labels)


async def settle(pilot) -> None:
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()
    await pilot.pause()


async def select(pilot, label: str) -> None:
    table = pilot.app.screen.query_one("#ckpt-table")
    rows = [str(table.get_row_at(i)[0]) for i in range(table.row_count)]
    table.move_cursor(row=rows.index(label))
    await pilot.pause()


