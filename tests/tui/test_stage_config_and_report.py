"""The Config tab's "starts from" line for post-training stages, and the pipeline report view (m on the Train and
Checkpoints tabs), with an SVG snapshot of the report."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from train_screen_helpers import MACHINE, make_app, wait_for

from nanochat_cli.app import NanochatApp
from nanochat_cli.screens.report import ReportScreen
from nanochat_cli.services.pipeline.state import PipelineDir, PipelineRecord, StepRecord
from nanochat_cli.services.runs.stages import start_point
from nanochat_cli.services.secrets import SecretStore
from nanochat_cli.services.state import UIState, save_state

REPORT = """# Pipeline report: cpu-tiny

- prefab: `cpu-tiny`
- started 2026-01-01 00:00; status **finished**; wall time 21m 3s

## Stages

| stage | module | run | status | wall time | steps | tokens |
|---|---|---|---|---:|---:|---:|
| Base (pretraining) | engine.train | cpu-tiny | finished | 6m 2s | 200/200 | 819,200 |
| SFT | engine.sft | cpu-tiny-sft | finished | 4m 1s | 100/100 | 204,800 |

## Losses and rewards

- SFT: train loss 3.9000 (step 1) → 2.1000 (step 100); val loss 3.9120 (step 0) → 2.3293 (step 100)

## Chat eval

| task | metric | value | n |
|---|---|---:|---:|
| Arithmetic | pass@1 | 0.350 | 40 |
"""


def ckpt(base: Path, phase_dir: str, tag: str, step: int) -> Path:
    d = base / phase_dir / tag
    d.mkdir(parents=True, exist_ok=True)
    (d / f"model_{step:06d}.pt").write_bytes(b"weights")
    (d / f"meta_{step:06d}.json").write_text("{}")
    return d


def test_start_point_rules(tmp_path):
    assert "no base checkpoint in" in start_point(tmp_path, "sft").problem
    older = ckpt(tmp_path, "base_checkpoints", "old", 10)
    newer = ckpt(tmp_path, "base_checkpoints", "new", 5)
    os.utime(older / "model_000010.pt", (1, 1))
    assert (start_point(tmp_path, "sft").ckpt_dir, start_point(tmp_path, "sft").step) == (newer, 5)
    assert start_point(tmp_path, "sft", str(older / "model_000010.pt")).step == 10
    assert "run.start_step: 3 is not a saved step" in start_point(tmp_path, "sft", str(older), 3).problem
    sft = ckpt(tmp_path, "chatsft_checkpoints", "s", 7)
    assert start_point(tmp_path, "chat_eval").ckpt_dir == sft  # no RL checkpoint: the newest SFT one
    assert start_point(tmp_path, "rl").ckpt_dir == sft


async def test_config_tab_says_where_a_stage_starts_from(tmp_path):
    save_state(UIState(screen="config", prefab="cpu-tiny-sft", overrides={}))
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        source = app.screen.query_one("#stage-source")
        await wait_for(pilot, "the stage line", lambda: "Stage sft" in str(source.content))
        assert "no base checkpoint in" in str(source.content) and "nanochat-cli train --prefab cpu-tiny" in \
            str(source.content).replace("\n", " ")
        assert source.has_class("-error")
        d = ckpt(tmp_path / "base", "base_checkpoints", "cpu-tiny", 200)
        app.set_override("training.num_iterations", 50)  # any change redraws
        await wait_for(pilot, "the checkpoint", lambda: "starts from" in str(source.content))
        assert f"{d.name}" in str(source.content) and "step 200" in str(source.content)
        app.session.switch_prefab("cpu-tiny")
        app.config_rev += 1
        await wait_for(pilot, "no line for base", lambda: not source.display)


def _pipeline(base: Path) -> None:
    pdir = PipelineDir(base / "pipelines" / "cpu-tiny")
    pdir.write(PipelineRecord("cpu-tiny", "cpu-tiny", {}, [StepRecord("base", "train"), StepRecord("sft", "sft")],
                              created=0.0, status="finished"))
    pdir.report_path.write_text(REPORT)


async def test_report_opens_from_the_train_tab_and_says_when_there_is_none(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("2")
        await pilot.press("m")
        await wait_for(pilot, "the note", lambda: any("No pipeline report yet" in str(n.message)
                                                      for n in app._notifications))
        _pipeline(tmp_path / "base")
        await pilot.press("m")
        await wait_for(pilot, "the report", lambda: isinstance(app.screen, ReportScreen))
        await pilot.press("escape")
        await wait_for(pilot, "closed", lambda: not isinstance(app.screen, ReportScreen))
        await pilot.press("3")
        await pilot.press("m")
        await wait_for(pilot, "the report from Checkpoints", lambda: isinstance(app.screen, ReportScreen))
        assert json.loads((tmp_path / "base/pipelines/cpu-tiny/pipeline.json").read_text())["status"] == "finished"


@pytest.fixture
def report_app(tmp_path, monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    _pipeline(tmp_path / "base")
    yield NanochatApp(machine=MACHINE, secrets=SecretStore(file_dir=tmp_path / "secrets"), online_checks=False,
                      base_dir_label="~/.cache/nanochat", config_dir_label="~/.config/nanochat-cli",
                      clock=lambda: 0.0)
    monkeypatch.undo()
    time.tzset()


def test_report_view_snapshot(snap_compare, report_app):
    async def open_report(pilot) -> None:
        await pilot.press("2")
        await pilot.press("m")
        await wait_for(pilot, "the report", lambda: isinstance(pilot.app.screen, ReportScreen))
        await pilot.pause(0.3)

    assert snap_compare(report_app, terminal_size=(120, 40), run_before=open_report)


async def test_the_tui_runs_a_pipeline_stage_by_stage_and_opens_its_report(tmp_path):
    from fake_stages import fake_specs, stage_orchestrator

    from nanochat_cli.services.config.prefabs import PrefabStore
    from nanochat_cli.services.pipeline import Pipeline, plan

    base = tmp_path / "base"
    overrides = {"training.num_iterations": 3}
    plans = plan(PrefabStore(user_dir=tmp_path / "user", auth_flags=lambda: {}), "cpu-tiny", overrides)
    pipe = Pipeline.open(base, stage_orchestrator(base, tmp_path), "cpu-tiny", plans, overrides, specs=fake_specs)
    app = make_app(tmp_path, start_pipeline=pipe)
    shown: list[str] = []
    async with app.run_test(size=(120, 40)) as pilot:
        app.watch(app, "active_run", lambda name: shown.append(name), init=False)
        await wait_for(pilot, "the report", lambda: isinstance(app.screen, ReportScreen), timeout=120)
        assert "status **finished**" in app.screen.text
        assert shown == ["cpu-tiny", "cpu-tiny-sft", "cpu-tiny-rl", "cpu-tiny-eval-core", "cpu-tiny-eval-chat"]
        assert app.current_mode == "train"
