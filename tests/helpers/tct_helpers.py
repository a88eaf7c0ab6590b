"""Small TCT fixtures made here (no shared data): workflow files, a prepared window folder, a tiny model and
checkpoint trained on nothing (constrained sampling must make valid workflows even from that)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

WORKFLOWS = [
    {"name": "CI", "on": {"push": {"branches": ["main"]}, "pull_request": None},
     "jobs": {"test": {"runs-on": "ubuntu-latest", "steps": [
         {"uses": "actions/checkout@v4"}, {"name": "Test", "run": "make test\nmake lint\n"}]}}},
    {"name": "Release", "on": {"push": {"tags": ["v*"]}}, "permissions": {"contents": "write"},
     "jobs": {"release": {"runs-on": "ubuntu-latest", "steps": [
         {"uses": "actions/checkout@v4"}, {"uses": "actions/setup-python@v5", "with": {"python-version": "3.12"}},
         {"run": "python -m build && twine upload dist/*", "env": {"TOKEN": "${{ secrets.PYPI }}"}}]}}},
    {"on": "workflow_dispatch", "jobs": {"hello": {"runs-on": "ubuntu-latest",
                                                  "steps": [{"run": "echo hello"}]}}},
]


def write_workflows(folder: Path, copies: int = 4) -> Path:
    """Workflow files (YAML via JSON, which YAML reads) with distinct names, so both splits get some."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(copies):
        for j, wf in enumerate(WORKFLOWS):
            doc = {**wf, "name": f"{wf.get('name', 'wf')} {i}"}
            (folder / f"wf{i}_{j}.yml").write_text(json.dumps(doc), encoding="utf-8")
    return folder


def prepare_windows(tmp: Path, context_size: int = 16) -> Path:
    from engine.tct.prepare import prepare

    out = tmp / f"windows-{context_size}"
    prepare([str(write_workflows(tmp / "workflows"))], str(out), context_size, val_fraction=0.3)
    return out


def tiny_tct_model(seed: int = 0, seq_len: int = 128):
    from engine.gpt import GPT
    from engine.shapes import config_from_depth

    torch.manual_seed(seed)
    model = GPT(config_from_depth(1, 32, 32, seq_len, 8192))
    model.init_weights()
    return model.eval()


def save_tct_checkpoint(base: Path, tag: str = "tct", step: int = 1, kind: str | None = "tct") -> Path:
    """A checkpoint dir as engine.train writes it for a TCT run (kind=None: like any other run's)."""
    from engine.checkpoint import checkpoint_dir, save_model_and_meta

    model = tiny_tct_model()
    ckpt = checkpoint_dir(base, tag)
    meta = {"model_config": model.config.to_dict(), "run": tag, "val_bpb": None}
    if kind:
        meta["tokenizer_kind"] = kind
    save_model_and_meta(ckpt, step, model.state_dict(), meta, {})
    return ckpt
