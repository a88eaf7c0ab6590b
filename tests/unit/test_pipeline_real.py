"""The real pipeline, shortened: `nanochat-cli pipeline --prefab cpu-tiny --headless` with few steps per stage,
the engine's own modules under torchrun on the CPU. Asserts the direction of each stage (SFT val loss falls from
the base model's on the same held-out conversations) and that the report carries the RL reward before/after,
CORE and chat-eval tables. Slow: minutes on a 2-core CPU (the embedded corpus and tokenizer are built first)."""

from __future__ import annotations

import pytest

from nanochat_cli.cli.main import main
from nanochat_cli.services.pipeline import PipelineDir
from nanochat_cli.services.pipeline.report import RunFacts, reward_change
from nanochat_cli.services.runs.rundir import RunDir

pytestmark = pytest.mark.slow

SHORT = ["base:training.num_iterations=60", "sft:training.num_iterations=30", "sft:telemetry.eval_every=10",
         "rl:training.num_iterations=8",
         "rl:run.stage_options=num_samples=4 max_new_tokens=24 examples_per_step=2 eval_examples=8 eval_every=-1",
         "eval:run.stage_options=max_per_task=8 num_examples=8 max_new_tokens=32 bpb_tokens=4096"]


def test_shortened_pipeline_end_to_end(tmp_path, capsys):
    base = tmp_path / "base"  # conftest points NANOCHAT_BASE_DIR here
    code = main(["pipeline", "--prefab", "cpu-tiny", "--headless", "--set", *SHORT])
    out = capsys.readouterr().out
    assert code == 0, out[-3000:]
    record = PipelineDir(base / "pipelines" / "cpu-tiny").read()
    assert record.status == "finished" and all(s.done for s in record.steps)

    sft = RunFacts.read(RunDir(base / "runs" / record.step("sft").last.run))
    assert len(sft.val_loss) >= 2
    assert sft.val_loss[-1][1] < sft.val_loss[0][1]  # step 0 is the base model on the same conversations
    rl = RunFacts.read(RunDir(base / "runs" / record.step("rl").last.run))
    assert len(rl.rewards) == 8 and reward_change(rl) is not None

    report = (base / "pipelines" / "cpu-tiny" / "report.md").read_text()
    assert report in out  # printed headless too
    for text in ("status **finished**", "val loss on the held-out conversations fell", "- RL: reward ",
                 "held-out arithmetic reward: ", " ± ",
                 "## CORE (base model)", "CORE score (mean centred accuracy)", "## Chat eval", "Mean accuracy"):
        assert text in report
    assert any((base / "base_checkpoints" / "cpu-tiny").glob("eval_core_*.json"))

    # once finished, the same command launches nothing and prints the report again
    assert main(["pipeline", "--prefab", "cpu-tiny", "--headless", "--set", *SHORT]) == 0
    assert PipelineDir(base / "pipelines" / "cpu-tiny").read().steps == record.steps
