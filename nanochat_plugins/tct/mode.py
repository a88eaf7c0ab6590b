"""The Chat tab's "workflow" mode: one schema-constrained workflow per prompt, as YAML with its validation."""

from __future__ import annotations

from pathlib import Path

from nanochat_cli.plugin_api import ChatMode, ModeRequest, ModeResult, cached_load


def _load(checkpoint: Path, device: str):  # noqa: ANN202 - (model, meta)
    from engine.tct_sample import load_workflow_model

    return load_workflow_model(checkpoint, device)


def validation_lines(result) -> tuple[str, ...]:  # noqa: ANN001 - an engine.tct_sample.SampleResult
    """What the schema check said, one line each: the verdict, then the violations."""
    how = "constrained" if result.constrained else "unconstrained"
    if result.valid:
        head = f"valid: the workflow schema accepts it ({how} sampling"
        head += f", {result.backtracks} container{'s' if result.backtracks != 1 else ''} resampled)" \
            if result.constrained else ")"
        return (head,)
    why = "incomplete: the token budget ran out, closed as far as it went" if not result.complete else "invalid"
    if result.stopped:
        why = "stopped before the end: closed as far as it went"
    return (f"{why} ({how} sampling):", *(f"  {line}" for line in result.errors))


def stats_line(result) -> str:  # noqa: ANN001
    per = result.mask_seconds / max(1, result.sampled + result.finished) * 1000
    return (f"{result.new_tokens} tokens · {result.seconds:.1f} s · constraints {per:.2f} ms/token · "
            f"{result.backtracks} resampled")


def run(request: ModeRequest) -> ModeResult:
    from engine.tct_sample import sample_workflow, to_yaml

    model, _meta = cached_load("workflow", request.checkpoint, request.device, _load)
    result = sample_workflow(model, request.prompt, max_tokens=request.max_tokens,
                             temperature=request.temperature, top_k=request.top_k, seed=request.seed,
                             stop=request.stop)
    return ModeResult(to_yaml(result.json), "yaml", validation_lines(result), ok=result.valid,
                      stats=stats_line(result))


def claims(checkpoint: Path) -> bool:
    from engine.tct_sample import is_tct_checkpoint

    return is_tct_checkpoint(checkpoint)


WORKFLOW_MODE = ChatMode(
    "workflow", "workflow (Actions YAML)", run,
    help="Each prompt samples one GitHub Actions workflow, constrained by the schema so it validates: give a "
         "name, a partial YAML document (name: CI, on: push), or nothing.",
    claims=claims, prompt_hint="workflow name or partial YAML (empty: anything); Enter samples")
