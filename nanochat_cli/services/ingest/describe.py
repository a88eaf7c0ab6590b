"""One line per telemetry event, for people: the Events panel (through MetricStore's log) and the
headless/attach followers print the same words. Text from the run is made printable here (control
characters spelled out), so no renderer can be handed an escape sequence."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nanochat_cli.formatting import file_size
from nanochat_cli.services.text import printable


@dataclass(frozen=True, slots=True)
class Described:
    level: str  # info | warn | error
    message: str  # one line, printable
    step: int | None = None


def sink_fields(ev: Any) -> tuple[str, str, str, str | None]:
    """(name, state, detail, url) of a sink_status event, read leniently: its fields are additive."""
    name = getattr(ev, "sink", None) or getattr(ev, "name", None) or "sink"
    state = getattr(ev, "state", None) or ("ok" if getattr(ev, "ok", True) else "down")
    detail = getattr(ev, "message", None) or getattr(ev, "detail", None) or ""
    return str(name), str(state), str(detail), getattr(ev, "url", None)


def _line(text: str) -> str:
    return printable(text, newlines=False, tabs=False)


def describe(ev: Any, world_size: int = 1) -> Described | None:
    """The line a person reads for `ev`; None for step events (shown as progress) and unknown kinds.
    `world_size` of the run says whether a checkpoint's bytes are one rank's share."""
    kind = getattr(ev, "event", None)
    if kind == "run_start":
        resumed = f", resumed from step {ev.resumed_from_step}" if ev.resumed_from_step is not None else ""
        return Described("info", _line(f"run {ev.run} started: {ev.world_size}× {ev.device} {ev.dtype}, "
                                       f"{ev.num_iterations} steps{resumed}"))
    if kind == "eval":
        parts = [f"val bpb {ev.val_bpb:.4f}" if ev.val_bpb is not None else "",
                 f"val loss {ev.val_loss:.4f}" if ev.val_loss is not None else ""]
        return Described("info", ", ".join(p for p in parts if p) or "eval", ev.step)
    if kind == "sample":
        return Described("info", _line(f"sample {ev.prompt!r} → {ev.text}"), ev.step)
    if kind == "checkpoint":
        # the event counts what rank 0 wrote (model, meta, its optimizer state); the Checkpoints tab adds every rank
        ranks = " by rank 0" if world_size > 1 else ""
        return Described("info", _line(f"checkpoint ({ev.reason}) step {ev.step}: {file_size(ev.bytes)}{ranks} in "
                                       f"{ev.seconds:.1f}s: {ev.path}"), ev.step)
    if kind == "control_ack":
        verdict = "ok" if ev.ok else "rejected"
        return Described("info" if ev.ok else "warn", _line(f"{ev.kind} {verdict}: {ev.message}"), ev.step)
    if kind == "warning":
        return Described("warn", _line(ev.message))
    if kind == "error":
        return Described("error", _line(ev.message), ev.step)
    if kind == "run_end":
        level = "info" if ev.status in ("finished", "stopped") else "error"
        return Described(level, _line(f"run {ev.status} at step {ev.step}: {ev.reason}"), ev.step)
    if kind == "rollout":
        passes = ", ".join(f"pass@{k} {v:.2f}" for k, v in sorted(ev.pass_at_k.items(), key=lambda kv: int(kv[0])
                                                                  if str(kv[0]).isdigit() else 0))
        return Described("info", _line(f"rollouts: {ev.prompts}×{ev.k} samples, reward {ev.reward_mean:.3f} "
                                       f"(± {ev.reward_std:.3f})" + (f", {passes}" if passes else "")
                                       + f", {ev.mean_len:.0f} tokens, tool calls {ev.tool_call_rate:.0%}"), ev.step)
    if kind == "eval_result":
        centred = f" (centred {ev.centered:.3f})" if ev.centered is not None else ""
        return Described("info", _line(f"{ev.suite} eval {ev.task}: {ev.metric} {ev.value:.3f}{centred} over "
                                       f"{ev.n} examples"), ev.step)
    if kind == "sink_status":
        name, state, detail, _ = sink_fields(ev)
        return Described("info" if state == "ok" else "warn",
                         _line(f"{name}: {state}" + (f": {detail}" if detail else "")))
    return None
