"""The real pipeline, shortened: `nanochat-cli pipeline --prefab cpu-tiny --headless` with few steps per stage,
the engine's own modules under torchrun on the CPU. Asserts the direction of each stage: SFT val loss falls from
the base model's on the same held-out conversations, RL raises the held-out arithmetic reward by several
standard errors, and the report carries the reward before/after, CORE and chat-eval tables.

SFT trains on the arithmetic task's easy level (`arithmetic_easy`, one calculation on one-digit numbers) for 50
steps, which leaves a model right about half the time at temperature 1 (held-out reward ~0.5): the range where
GRPO's groups hold both right and wrong answers. RL takes 40 steps of 8 prompts × 8 samples at init_lr_frac 0.1
(0.15 and above drove this model's reward to ~0.2 within 40 steps with 4 prompts a step) and evaluates 128
held-out prompts × 4 samples, with the same seeds, at the start and the end; the asserted rise is paired over
those prompts. Everything is seeded: on one machine two runs give the same figures. Slow: minutes on a 2-core
CPU (the embedded corpus and tokenizer are built first)."""

from __future__ import annotations

import pytest

from nanochat_cli.cli.main import main
from nanochat_cli.services.pipeline import PipelineDir
from nanochat_cli.services.pipeline.report import RunFacts, reward_change
from nanochat_cli.services.runs.rundir import RunDir

pytestmark = pytest.mark.slow

RL_STEPS = 40
SHORT = ["base:training.num_iterations=60", "sft:training.num_iterations=50", "sft:telemetry.eval_every=25",
         "sft:run.stage_options=tasks=arithmetic_easy",
         f"rl:training.num_iterations={RL_STEPS}",
         "rl:run.stage_options=task=arithmetic_easy num_samples=8 max_new_tokens=48 examples_per_step=8 "
         "eval_examples=128 eval_samples=4 eval_every=-1 init_lr_frac=0.1",
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
    assert len(rl.rewards) == RL_STEPS and reward_change(rl) is not None
    held = {(e.step, e.metric): e.value for e in rl.scored if e.task == "arithmetic_easy"}
    before, after = held[0, "reward"], held[RL_STEPS, "reward"]
    change, change_se = held[RL_STEPS, "reward_change"], held[RL_STEPS, "reward_change_se"]
    figures = (before, held[0, "reward_se"], after, held[RL_STEPS, "reward_se"], change, change_se)
    assert 0.2 < before < 0.8, f"SFT should leave a mid-range model (GRPO has no signal at 0 or 1): {figures}"
    # the same 128 prompts and sampling seeds at both evaluations: the change is paired over the prompts
    assert change == pytest.approx(after - before) and change > 3 * change_se > 0, figures

    report = (base / "pipelines" / "cpu-tiny" / "report.md").read_text()
    assert report in out  # printed headless too
    for text in ("status **finished**", "val loss on the held-out conversations fell", "- RL: reward ",
                 "held-out arithmetic_easy reward: ", "held-out arithmetic_easy reward_change: ", " ± ",
                 "## CORE (base model)", "CORE score (mean centred accuracy)", "## Chat eval", "Mean accuracy"):
        assert text in report
    assert any((base / "base_checkpoints" / "cpu-tiny").glob("eval_core_*.json"))

    # once finished, the same command launches nothing and prints the report again
    assert main(["pipeline", "--prefab", "cpu-tiny", "--headless", "--set", *SHORT]) == 0
    assert PipelineDir(base / "pipelines" / "cpu-tiny").read().steps == record.steps
