"""What to launch and the torchrun command lines for it.

A resolved config (dotted keys from the prefab store) becomes a `LaunchSpec`; the orchestrator runs it
with `--config <run dir>/config.yaml`. Before a launch there is no such file, so the command a person
copies (`runs command`, the Train tab's `c` without a run) carries the config as engine flags instead:
that line runs as is, from any directory. Multi-node training is torch.distributed's job: with
nodes > 1 we only build the rendezvous form of the command, one line per node.
"""

from __future__ import annotations

import json
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from engine.config import TrainConfig
from nanochat_cli.errors import AppError
from nanochat_cli.services.runs.status import DEFAULT_HUNG_AFTER_S, HUNG_KEY


@dataclass
class LaunchSpec:
    """What to run: the engine module and its config, plus how torchrun spreads it over processes and nodes.

    `config` is the module's config object (TrainConfig for engine.train; SFTConfig, RLConfig, ... for the
    post-training and eval stages: services/runs/stages.py builds those)."""

    config: TrainConfig | BaseModel
    nproc_per_node: int = 1
    nnodes: int = 1
    node_rank: int = 0
    rdzv_endpoint: str | None = None  # host:port of node 0, needed when nnodes > 1
    hung_after_s: float = DEFAULT_HUNG_AFTER_S  # no telemetry for this long while it lives: "hung"
    module: str = "engine.train"  # the engine module torchrun runs
    stage: str = "base"  # the pipeline stage it belongs to (run.stage)


def specs_from_resolved(resolved: dict[str, Any]) -> list[LaunchSpec]:
    """A resolved config (dotted keys, from the prefab store) → what to launch: one spec per engine module of
    its stage (two for eval: base_eval, then chat_eval), run one after the other."""
    from nanochat_cli.services.config.schema import to_engine_config
    from nanochat_cli.services.runs.stages import build_config, modules_for

    stage = resolved.get("run.stage", "base")
    out = []
    for module in modules_for(stage):
        config = to_engine_config(resolved) if module == "train" else build_config(resolved, module)
        out.append(LaunchSpec(config=config, nproc_per_node=resolved.get("hardware.nproc_per_node", 1),
                              nnodes=resolved.get("hardware.nnodes", 1),
                              node_rank=resolved.get("hardware.node_rank", 0),
                              rdzv_endpoint=resolved.get("hardware.rdzv_endpoint"),
                              hung_after_s=float(resolved.get(HUNG_KEY, DEFAULT_HUNG_AFTER_S)),
                              module=f"engine.{module}", stage=stage))
    return out


def spec_from_resolved(resolved: dict[str, Any]) -> LaunchSpec:
    """The one launch of a single-module stage (base, sft, rl); eval runs two: see specs_from_resolved."""
    specs = specs_from_resolved(resolved)
    if len(specs) != 1:
        raise AppError(f"run.stage: {resolved.get('run.stage')} runs {len(specs)} modules one after the other: "
                       f"start it with nanochat-cli pipeline --prefab NAME --stages {resolved.get('run.stage')}")
    return specs[0]


def dotted_config(engine_config: dict[str, Any], hung_after_s: float | None = None) -> dict[str, Any]:
    """An engine config (flat TrainConfig keys) as dotted config keys, for thresholds that name them."""
    from nanochat_cli.services.config.schema import field_specs

    out = {s.key: engine_config[s.engine_name] for s in field_specs()
           if s.engine_name and s.engine_name in engine_config}
    if hung_after_s is not None:
        out[HUNG_KEY] = hung_after_s
    return out


def secret_env(config: TrainConfig | BaseModel, store: Any = None) -> dict[str, str]:
    """Secrets the job needs, passed through its environment only (never the config file or telemetry)."""
    env: dict[str, str] = {}
    if getattr(config, "wandb", "disabled") != "disabled":
        if store is None:
            from nanochat_cli.services.secrets import SecretStore

            store = SecretStore()
        key = store.get("wandb_api_key")
        if key:
            env["WANDB_API_KEY"] = key
    return env


def _torchrun_args(spec: LaunchSpec, engine_args: list[str], node_rank: int | None = None) -> list[str]:
    if spec.nnodes <= 1:
        args = ["--standalone", f"--nproc_per_node={spec.nproc_per_node}"]
    else:
        if not spec.rdzv_endpoint:
            raise AppError("hardware.rdzv_endpoint: needed when nnodes > 1: set it to <node0-host>:<port>")
        rank = spec.node_rank if node_rank is None else node_rank
        args = [f"--nnodes={spec.nnodes}", f"--node_rank={rank}", f"--nproc_per_node={spec.nproc_per_node}",
                "--rdzv_backend=c10d", f"--rdzv_endpoint={spec.rdzv_endpoint}", f"--rdzv_id={spec.config.run}"]
    # `--` keeps torchrun's own parser off the engine's flags (it would read --run as --run-path)
    return args + ["-m", spec.module, "--", *engine_args]


def torchrun_args(spec: LaunchSpec, config_path: Path, node_rank: int | None = None) -> list[str]:
    """torchrun's arguments (without the program): standalone on one node, c10d rendezvous on several."""
    return _torchrun_args(spec, ["--config", str(config_path)], node_rank)


def build_command(spec: LaunchSpec, config_path: Path, python: str = sys.executable) -> list[str]:
    """The argv we execute: `python -m torch.distributed.run` is torchrun without relying on PATH."""
    return [python, "-m", "torch.distributed.run", *torchrun_args(spec, config_path)]


def display_command(spec: LaunchSpec, config_path: Path, node_rank: int | None = None) -> str:
    """The copyable command a person would type (on node `node_rank` for multi-node runs)."""
    return shlex.join(["torchrun", *torchrun_args(spec, config_path, node_rank)])


def per_node_commands(spec: LaunchSpec, config_path: Path) -> list[str]:
    return [display_command(spec, config_path, r) for r in range(max(spec.nnodes, 1))]


def engine_flags(config: TrainConfig | BaseModel) -> list[str]:
    """The engine flags that give `config` (fields that differ from the engine's defaults), `--k=v` each."""
    out = []
    for name, info in type(config).model_fields.items():
        value = getattr(config, name)
        if value == info.default:
            continue
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            out.append(flag if value else "--no-" + flag[2:])
        elif isinstance(value, list | dict):  # extensions: the engine reads them back as JSON
            out.append(f"{flag}={json.dumps(value)}")
        else:
            out.append(f"{flag}={'none' if value is None else value}")
    return out


def preview_commands(spec: LaunchSpec) -> list[str]:
    """The command(s) for a config not launched yet, one per node: flags inline, nothing to write first."""
    return [shlex.join(["torchrun", *_torchrun_args(spec, engine_flags(spec.config), r)])
            for r in range(max(spec.nnodes, 1))]
