"""The "wgsl" Chat mode: a prompt in, a shader out — highlighted, with naga's verdict and a run under it.

Registered through the app's chat-mode extension (`registry.register_chat_mode`). A checkpoint whose meta names
a joint WGSL tokenizer is claimed by this mode, so it opens in it. The beam, retries, token limit and run
timeout are the "wgsl" config category's defaults (`WgslCategory`); the Chat tab's temperature and seed are used
for the sampled retries. If the prompt names a dataset pair (`chromatic.gamma-000`) or equals a pair's prompt,
the run is checked against that pair's numpy reference; otherwise the shader runs on random buffers.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from nanochat_cli.plugin_api import ChatMode, ModeRequest, ModeResult, cached_load

MODE = "wgsl"
_CASE = re.compile(r"^\s*([a-z_]+\.[a-z_0-9]+-\d{3})\s*$")


def _meta_of(checkpoint: Path) -> dict | None:
    if checkpoint.is_file():
        m = re.fullmatch(r"model_(\d{6})\.pt", checkpoint.name)
        metas = [checkpoint.parent / f"meta_{m.group(1)}.json"] if m else []
    else:
        metas = sorted(checkpoint.glob("meta_*.json"))[-1:]
    for meta in metas:
        try:
            data = json.loads(meta.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None
    return None


def claims(checkpoint: Path) -> bool:
    """A WGSL run's checkpoint: its tokenizer folder holds a joint tokenizer."""
    meta = _meta_of(Path(checkpoint))
    tok_dir = (meta or {}).get("tokenizer_dir")
    return isinstance(tok_dir, str) and bool(tok_dir) and (Path(tok_dir) / "joint.json").is_file()


def _record_for(prompt: str) -> Any:
    from nanochat_plugins.wgsl import dataset

    m = _CASE.match(prompt)
    records = dataset.load()
    if m:
        return next((r for r in records if r.id == m.group(1)), None)
    return next((r for r in records if r.prompt.strip() == prompt.strip()), None)


def run(request: ModeRequest, defaults: Any = None) -> ModeResult:
    from nanochat_plugins.wgsl.decode import ShaderModel
    from nanochat_plugins.wgsl.sampling import check_run, generate
    from nanochat_plugins.wgsl.tui import WgslCategory
    from nanochat_plugins.wgsl.worker import ShaderWorker

    cfg = defaults or WgslCategory()
    record = _record_for(request.prompt)
    prompt = record.prompt if record is not None and _CASE.match(request.prompt) else request.prompt
    if not prompt.strip():
        from nanochat_cli.plugin_api import AppError

        raise AppError("prompt: empty: describe the shader, e.g. 'add two arrays of floats', or name a dataset "
                       "pair such as chromatic.gamma-000")
    sm = cached_load(MODE, request.checkpoint, request.device,
                     lambda path, device: ShaderModel.load(path, None, device))
    max_new = min(x for x in (cfg.max_new_tokens or 1 << 30, request.max_tokens or 1 << 30))
    max_new = 0 if max_new >= 1 << 30 else max_new
    g = generate(sm, prompt, cfg.beam, cfg.retries, request.temperature, request.seed, max_new)
    a = g.best
    tries = f", {len(g.attempts)} tries" if len(g.attempts) > 1 else ""
    lines = [f"validation: {'valid' if a.valid else 'no adapter' if a.valid is None else 'invalid'} "
             f"({a.how}{tries}): {a.message}"]
    ok = a.valid
    if a.valid:
        rc = check_run(ShaderWorker.shared(cfg.run_timeout_s), a.shader, record)
        what = ("correct" if rc.correct else "wrong" if rc.correct is False else "ran" if rc.ok else "failed")
        against = f" against {record.id}" if record is not None else ""
        lines.append(f"run{against}: {what}: {rc.message}")
        ok = rc.ok and rc.correct is not False
    header = f"// {prompt}\n" if prompt != request.prompt else ""
    return ModeResult(text=header + a.shader, language="wgsl", validation=tuple(lines), ok=ok,
                      stats=f"{g.seconds:.1f} s, step {sm.meta.get('step')}")


def register(registry: Any) -> None:
    registry.register_chat_mode(ChatMode(MODE, "WGSL shader", run, help="writes a WGSL compute shader for the "
                                         "prompt, validates it with naga and runs it",
                                         claims=claims, prompt_hint="describe a compute shader, or a dataset pair "
                                                                    "id such as chromatic.gamma-000"))
