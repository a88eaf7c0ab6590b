"""Generate, check, retry: a prompt becomes a shader that naga accepts (if the model can write one), then runs.

`generate` tries up to `retries` candidates — the beam's, best first, then samples — and keeps the first that
validates; `check_run` runs a shader on a dataset pair's buffers (correct = matches its numpy reference) or,
with no pair, on random buffers. `Sampler` is what a training run uses on its sample steps and what the
evaluation uses on a whole split: greedy (or beam, or retries) over held-out prompts, with validity and
correctness rates.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from nanochat_plugins.wgsl import dataset, gpu
from nanochat_plugins.wgsl.decode import ShaderModel
from nanochat_plugins.wgsl.errors import WgslError
from nanochat_plugins.wgsl.validate import validate_source
from nanochat_plugins.wgsl.worker import ShaderWorker

MAX_EVENT_SHADER = 4000  # characters of a shader kept in a telemetry event


@dataclass
class Attempt:
    shader: str
    how: str  # "beam 1/3", "sample 2"
    valid: bool | None  # None: no adapter to ask
    message: str  # "ok" or naga's first diagnostic as LINE:COL: message
    validate_s: float = 0.0


@dataclass
class Generation:
    prompt: str
    attempts: list[Attempt] = field(default_factory=list)
    chosen: int = 0  # index of the attempt shown
    seconds: float = 0.0

    @property
    def best(self) -> Attempt:
        return self.attempts[self.chosen]


@dataclass
class RunCheck:
    ok: bool
    message: str
    correct: bool | None  # None: no reference to compare with (random buffers)
    seconds: float = 0.0


def _validate(shader: str) -> tuple[bool | None, str, float]:
    if not shader.strip():
        return False, "empty shader", 0.0
    try:
        v = validate_source(shader)
    except gpu.NoAdapter as e:
        return None, str(e), 0.0
    if v.ok:
        return True, "ok", v.seconds
    d = v.diagnostics[0]
    return False, (f"{d.line}:{d.column}: {d.message}" if d.line else d.message), v.seconds


def generate(sm: ShaderModel, prompt: str, beam: int = 1, retries: int = 1, temperature: float = 0.8,
             seed: int = 0, max_new: int = 0) -> Generation:
    """Up to `retries` candidates (beam's best first, then samples at `temperature`); the first valid one wins,
    else the beam's best is shown with its error."""
    if retries < 1:
        raise WgslError(f"--retries {retries}: must be at least 1")
    t0 = time.perf_counter()
    out = Generation(prompt)
    beams = sm.beam(prompt, beam, max_new)
    candidates = [(c, f"beam {i + 1}/{len(beams)}" if beam > 1 else "greedy") for i, c in enumerate(beams)]
    candidates = candidates[:retries]
    n_more = retries - len(candidates)
    if n_more > 0:
        candidates += [(c, f"sample {i + 1}") for i, c in
                       enumerate(sm.sample(prompt, n_more, temperature, seed=seed, max_new=max_new))]
    for c, how in candidates:
        shader = sm.text(c)
        valid, message, secs = _validate(shader)
        if not c.finished:
            message = f"{message} (stopped at the token limit)" if valid is not False else message
        out.attempts.append(Attempt(shader, how, valid, message, secs))
        if valid:
            out.chosen = len(out.attempts) - 1
            break
        if valid is None:  # no adapter: nothing to retry against
            break
    out.seconds = time.perf_counter() - t0
    return out


def check_run(worker: ShaderWorker, shader: str, record: dataset.Record | None = None) -> RunCheck:
    """Run a (valid) shader: on a pair's buffers against its reference, or on random buffers."""
    t0 = time.perf_counter()
    try:
        if record is not None:
            r = worker.run_case(shader, record.family, record.params, record.seed)
            return RunCheck(r.ok, r.message, r.ok, time.perf_counter() - t0)
        from nanochat_plugins.wgsl import runner
        from nanochat_plugins.wgsl.reflect import reflect

        refl = reflect(shader)
        data = runner.auto_buffers(shader, 1024, 0, {}, refl)
        writable = [(b.group, b.binding) for b in refl.bindings if b.writable]
        out, secs = worker.dispatch(shader, data, writable, (1024, 1, 1))
        shown = "; ".join(runner.describe(b, out.get((b.group, b.binding), b""), 1024, 4)
                          for b in refl.bindings if b.writable)
        return RunCheck(True, f"ran on random buffers in {secs * 1e3:.1f} ms: {shown}", None,
                        time.perf_counter() - t0)
    except gpu.NoAdapter:
        raise
    except WgslError as e:
        return RunCheck(False, str(e), False if record is not None else None, time.perf_counter() - t0)


def spread(records: list[dataset.Record], n: int) -> list[dataset.Record]:
    """`n` records taken round-robin over their families (sorted), so a few samples cover many families."""
    by_family: dict[str, list[dataset.Record]] = {}
    for r in sorted(records, key=lambda r: r.id):
        by_family.setdefault(r.family, []).append(r)
    out: list[dataset.Record] = []
    queues = list(by_family.values())
    while len(out) < n and any(queues):
        for q in queues:
            if q and len(out) < n:
                out.append(q.pop(0))
    return out


class Sampler:
    """Scores a model on held-out prompts: validity (naga) and correctness (run vs numpy)."""

    def __init__(self, tok: Any, records: list[dataset.Record], n: int, max_new: int = 0, run_timeout: float = 10.0):
        self.tok, self.records, self.max_new = tok, spread(records, n), max_new
        self.worker = ShaderWorker(run_timeout)

    def score(self, model: Any, beam: int = 1, retries: int = 1) -> tuple[dict, tuple[str, str] | None]:
        """(event data, (prompt, shader) of the first sample)."""
        sm = ShaderModel(model, self.tok)
        examples, valid, correct, adapter = [], 0, 0, True
        val_s, run_s = [], []
        for rec in self.records:
            g = generate(sm, rec.prompt, beam, retries, max_new=self.max_new)
            a = g.best
            ex = {"id": rec.id, "family": rec.family, "prompt": rec.prompt, "shader": a.shader[:MAX_EVENT_SHADER],
                  "valid": a.valid, "validation": a.message, "correct": None, "run": ""}
            if a.valid is None:
                adapter = False
            elif a.valid:
                valid += 1
                val_s.append(a.validate_s)
                rc = check_run(self.worker, a.shader, rec)
                run_s.append(rc.seconds)
                ex["correct"], ex["run"] = rc.correct, rc.message
                correct += bool(rc.correct)
            examples.append(ex)
        n = len(self.records)
        data = {"split": self.records[0].split if self.records else "", "n": n, "valid": valid, "correct": correct,
                "validity": valid / n if adapter and n else None, "correctness": correct / n if adapter and n else None,
                "examples": examples[:4]}
        if not adapter:
            data["error"] = examples[0]["validation"] if examples else ""
        first = (examples[0]["prompt"], examples[0]["shader"]) if examples else None
        self.last_timings = (val_s, run_s)
        return data, first

    def close(self) -> None:
        self.worker.close()
