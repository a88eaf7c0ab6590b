"""The pipeline's report card, in markdown: config, wall time per stage, tokens, losses, RL reward, CORE and
chat-eval tables. Every figure is read back from the stage runs' telemetry (and their config files);
nothing is typed in. Saved atomically as `<pipeline dir>/report.md`."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.shared import atomic_write
from engine.telemetry import TelemetryReader
from nanochat_cli.services.pipeline.state import PipelineDir, PipelineRecord, StepRecord
from nanochat_cli.services.runs.rundir import RunDir
from nanochat_cli.services.text import duration

STAGE_TITLE = {"base": "Base (pretraining)", "sft": "SFT", "rl": "RL (GRPO)", "eval": "Eval"}
CONFIG_KEYS = ("depth", "max_seq_len", "vocab_size", "num_iterations", "device_batch_size", "total_batch_size",
               "source", "num_samples", "max_new_tokens", "max_per_task", "max_examples")
EDGE = 5  # rollouts averaged at each end for "reward before/after"


@dataclass
class RunFacts:
    """What one stage run's telemetry says, for the report."""

    run: str
    stage: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    steps: int = 0
    total: int = 0
    tokens: int = 0
    num_params: int = 0
    losses: list[tuple[int, float]] = field(default_factory=list)  # (step, loss)
    val_bpb: list[tuple[int, float]] = field(default_factory=list)
    val_loss: list[tuple[int, float]] = field(default_factory=list)
    rewards: list[tuple[int, float]] = field(default_factory=list)
    pass_at_k: dict[str, list[float]] = field(default_factory=dict)
    lengths: list[float] = field(default_factory=list)
    tool_rates: list[float] = field(default_factory=list)
    results: list[Any] = field(default_factory=list)  # eval_result events, last per (suite, task)
    scored: list[Any] = field(default_factory=list)  # every eval_result event, in order (RL's held-out evals)
    end: str = ""

    @classmethod
    def read(cls, run: RunDir) -> RunFacts:
        facts = cls(run.name)
        results: dict[tuple[str, str], Any] = {}
        for ev in TelemetryReader(run.telemetry_path).read_new():
            kind = ev.event
            if kind == "run_start":
                facts.stage, facts.config, facts.num_params = ev.stage, dict(ev.config), ev.num_params
                facts.total = ev.num_iterations
            elif kind == "step":
                facts.steps, facts.total, facts.tokens = ev.step, ev.total, ev.tokens_seen
                facts.losses.append((ev.step, ev.loss))
            elif kind == "eval":
                if ev.val_bpb is not None:
                    facts.val_bpb.append((ev.step, ev.val_bpb))
                if ev.val_loss is not None:
                    facts.val_loss.append((ev.step, ev.val_loss))
            elif kind == "rollout":
                facts.rewards.append((ev.step, ev.reward_mean))
                for k, v in ev.pass_at_k.items():
                    facts.pass_at_k.setdefault(str(k), []).append(v)
                facts.lengths.append(ev.mean_len)
                facts.tool_rates.append(ev.tool_call_rate)
            elif kind == "eval_result":
                results[(ev.suite, ev.task)] = ev
                facts.scored.append(ev)
            elif kind == "run_end":
                facts.end = ev.status
        facts.results = list(results.values())
        return facts


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else float("nan")


def _first_last(points: list[tuple[int, float]], what: str) -> str:
    if not points:
        return ""
    (s0, v0), (s1, v1) = points[0], points[-1]
    if len(points) == 1:
        return f"{what} {v0:.4f} (step {s0})"
    return f"{what} {v0:.4f} (step {s0}) → {v1:.4f} (step {s1})"


def reward_change(facts: RunFacts) -> tuple[float, float] | None:
    """Mean RL reward over the first and the last EDGE steps (None without rollouts)."""
    if not facts.rewards:
        return None
    ys = [r for _, r in facts.rewards]
    n = min(EDGE, max(1, len(ys) // 2))
    return _mean(ys[:n]), _mean(ys[-n:])


def held_out_lines(facts: RunFacts) -> list[str]:
    """RL's own evaluations on held-out prompts: each task and metric at its first and last evaluation."""
    series: dict[tuple[str, str], list[Any]] = {}
    for ev in facts.scored:
        series.setdefault((ev.task, ev.metric), []).append(ev)
    out = []
    for (task, metric), evs in series.items():
        first, last = evs[0], evs[-1]
        where = f"step {first.step} → step {last.step}" if len(evs) > 1 else f"step {first.step}"
        out.append(f"  - held-out {task} {metric}: {first.value:.3f} → {last.value:.3f} ({where}, "
                   f"{last.n} prompts)" if len(evs) > 1 else f"  - held-out {task} {metric}: {first.value:.3f} "
                   f"({where}, {first.n} prompts)")
    return out


def _result_table(results: list[Any], centred: bool) -> list[str]:
    head = "| task | metric | value | baseline | centred | n |" if centred else "| task | metric | value | n |"
    rule = "|---|---|---:|---:|---:|---:|" if centred else "|---|---|---:|---:|"
    rows = [head, rule]
    for r in sorted(results, key=lambda r: r.task):
        if centred:
            base = f"{r.baseline:.3f}" if r.baseline is not None else "-"
            cen = f"{r.centered:+.3f}" if r.centered is not None else "-"
            rows.append(f"| {r.task} | {r.metric} | {r.value:.3f} | {base} | {cen} | {r.n} |")
        else:
            rows.append(f"| {r.task} | {r.metric} | {r.value:.3f} | {r.n} |")
    return rows


def _step_facts(runs_dir: Path, step: StepRecord) -> RunFacts | None:
    if step.last is None:
        return None
    run = RunDir(runs_dir / step.last.run)
    return RunFacts.read(run) if run.telemetry_path.exists() else RunFacts(step.last.run)


def build_report(record: PipelineRecord, runs_dir: Path, base: Path | None = None) -> str:
    """The markdown report of a pipeline as far as it got."""
    facts = {s.module: _step_facts(runs_dir, s) for s in record.steps}
    total = sum(s.seconds for s in record.steps)
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(record.created)) if record.created else "?"
    sets = " ".join(f"{k}={v}" for k, v in record.overrides.items())
    out = [f"# Pipeline report: {record.name}", "",
           f"- prefab: `{record.prefab}`" + (f", overrides: `{sets}`" if sets else ""),
           f"- started {when}; status **{record.status}**; wall time {duration(total)}"]
    if base is not None:
        out.append(f"- base dir: `{base}`")
    out += ["", "## Stages", "", "| stage | module | run | status | wall time | steps | tokens |",
            "|---|---|---|---|---:|---:|---:|"]
    for s in record.steps:
        f = facts[s.module]
        status = s.last.status if s.last else "not run"
        tries = f" ({len(s.attempts)} attempts)" if len(s.attempts) > 1 else ""
        steps = f"{f.steps}/{f.total}" if f and f.losses else "-"  # eval modules take no steps
        tokens = f"{f.tokens:,}" if f and f.tokens else "-"
        out.append(f"| {STAGE_TITLE[s.stage]} | engine.{s.module} | {s.last.run if s.last else '-'} | "
                   f"{status}{tries} | {duration(s.seconds) if s.attempts else '-'} | {steps} | {tokens} |")
    out += ["", "## Config", ""]
    for s in record.steps:
        f = facts[s.module]
        if f is None or not f.config:
            continue
        keys = [f"{k}={f.config[k]}" for k in CONFIG_KEYS if k in f.config and f.config[k] not in (None, "")]
        params = f"; {f.num_params:,} params" if f.num_params else ""
        out.append(f"- engine.{s.module}: " + ", ".join(keys) + params)
    out += ["", "## Losses and rewards", ""]
    base_f, sft_f, rl_f = facts.get("train"), facts.get("sft"), facts.get("rl")
    if base_f and base_f.losses:
        out.append(f"- base: {_first_last(base_f.losses, 'train loss')}"
                   + (f"; {_first_last(base_f.val_bpb, 'val bpb')}" if base_f.val_bpb else ""))
    if sft_f and (sft_f.losses or sft_f.val_loss):
        out.append(f"- SFT: {_first_last(sft_f.losses, 'train loss')}"
                   + (f"; {_first_last(sft_f.val_loss, 'val loss')}" if sft_f.val_loss else ""))
        if len(sft_f.val_loss) > 1:
            fell = sft_f.val_loss[-1][1] < sft_f.val_loss[0][1]
            out.append(f"  - val loss on the held-out conversations {'fell' if fell else 'did NOT fall'} "
                       f"from the starting checkpoint's {sft_f.val_loss[0][1]:.4f} to {sft_f.val_loss[-1][1]:.4f}")
    if rl_f and rl_f.rewards:
        before, after = reward_change(rl_f) or (float("nan"), float("nan"))
        n = min(EDGE, max(1, len(rl_f.rewards) // 2))
        out.append(f"- RL: reward {before:.3f} (mean of the first {n} steps) → {after:.3f} (last {n}) over "
                   f"{len(rl_f.rewards)} steps; sample length {_mean(rl_f.lengths):.0f} tokens; tool calls "
                   f"{_mean(rl_f.tool_rates):.0%}")
        for k, vals in sorted(rl_f.pass_at_k.items(), key=lambda kv: int(kv[0]) if kv[0].isdigit() else 0):
            out.append(f"  - pass@{k}: {vals[0]:.3f} → {vals[-1]:.3f}")
        out += held_out_lines(rl_f)
    if out[-1] == "":
        out.append("(no training telemetry yet)")
    for module, title, centred in (("base_eval", "CORE (base model)", True), ("chat_eval", "Chat eval", False)):
        f = facts.get(module)
        if f is None:
            continue
        out += ["", f"## {title}", ""]
        if not f.results:
            out.append("(no results yet)")
            continue
        out += _result_table(f.results, centred)
        if centred:
            cen = [r.centered for r in f.results if r.centered is not None]
            out += ["", f"CORE score (mean centred accuracy): **{_mean(cen):.4f}**"]
        else:
            out += ["", f"Mean accuracy: **{_mean([r.value for r in f.results]):.4f}**"]
    return "\n".join(out) + "\n"


def write_report(pdir: PipelineDir, record: PipelineRecord, runs_dir: Path, base: Path | None = None) -> Path:
    atomic_write(pdir.report_path, build_report(record, runs_dir, base))
    return pdir.report_path
