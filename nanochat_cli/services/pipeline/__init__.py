"""`nanochat-cli pipeline`: base → SFT → RL → eval in one go, resumable, ending in a markdown report.

    state.py    the pipeline's folder (<base>/pipelines/<name>/): pipeline.json (what ran, as which run, how
                it ended) and report.md, both written atomically
    runner.py   the plan (each stage's config from its prefab) and Pipeline, which runs what is left of it
                through the run orchestrator, one engine module per run
    report.py   the report card, read back from the stage runs' telemetry

Plain Python: no Textual, no Rich.
"""

from nanochat_cli.services.pipeline.report import build_report, write_report
from nanochat_cli.services.pipeline.runner import Pipeline, StagePlan, launch_and_wait, plan, split_overrides
from nanochat_cli.services.pipeline.state import PipelineDir, PipelineRecord, list_pipelines

__all__ = ["Pipeline", "PipelineDir", "PipelineRecord", "StagePlan", "build_report", "launch_and_wait",
           "list_pipelines", "plan", "split_overrides", "write_report"]
