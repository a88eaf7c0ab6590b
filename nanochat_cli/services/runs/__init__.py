"""A run's one home: its folder, status, liveness, processes, launch and control.

    rundir.py        RunDir (every path in <base>/runs/<name>/, run.json, config.yaml, rank pids), RunsRoot
    status.py        the status model (running / hung / finished / stopped / failed / crashed / unknown),
                     the one hung threshold (telemetry.hung_after_s), RunSummary, RunInfo
    procs.py         the one liveness check (launcher, ranks, descendants; pid reuse, zombies) and
                     Terminator, which ends every process of a run
    launch.py        LaunchSpec, torchrun command lines (as launched, and runnable previews), dotted_config
    stages.py        pipeline stages: engine module(s) per stage, their configs, the checkpoint each starts from
    orchestrator.py  RunOrchestrator: start, the one control path (request/save_now/patch), stop, info, list
    follow.py        Follower: what `train --headless` and `runs attach` print, read from a byte offset
    live.py          LiveRun: the Train tab's attached run (imports the ingest pipeline: import it directly)

Plain Python: no Textual, no Rich.
"""

from nanochat_cli.services.runs.launch import (
    LaunchSpec,
    display_command,
    dotted_config,
    per_node_commands,
    preview_commands,
    secret_env,
    spec_from_resolved,
    specs_from_resolved,
)
from nanochat_cli.services.runs.orchestrator import RunOrchestrator, StopResult
from nanochat_cli.services.runs.procs import pid_alive, run_processes
from nanochat_cli.services.runs.rundir import RUN_RECORD, RunDir, RunsRoot
from nanochat_cli.services.runs.status import (
    ACTIVE,
    DEFAULT_HUNG_AFTER_S,
    ENDED,
    HUNG_KEY,
    RunInfo,
    RunSummary,
    classify,
)

__all__ = [
    "ACTIVE", "DEFAULT_HUNG_AFTER_S", "ENDED", "HUNG_KEY", "RUN_RECORD", "LaunchSpec", "RunDir", "RunInfo",
    "RunOrchestrator", "RunSummary", "RunsRoot", "StopResult", "classify", "display_command", "dotted_config",
    "per_node_commands", "pid_alive", "preview_commands", "run_processes", "secret_env",
    "spec_from_resolved", "specs_from_resolved",
]
