"""The pipeline service with stand-in stage modules (tests/helpers/fake_stages.py): real processes that write
telemetry and checkpoints, launched by the real orchestrator. Plan, source pinning, skip, resume, report."""

from __future__ import annotations

import json

import pytest
from fake_stages import fake_specs, stage_orchestrator

from nanochat_cli.errors import AppError
from nanochat_cli.services.config.prefabs import PrefabStore
from nanochat_cli.services.pipeline import Pipeline, PipelineDir, launch_and_wait, plan, split_overrides, write_report

SHORT = {"training.num_iterations": 4}


@pytest.fixture
def store(tmp_path):
    return PrefabStore(user_dir=tmp_path / "user", auth_flags=lambda: {})


def _pipeline(tmp_path, store, **kw):
    base = tmp_path / "base"
    orch = stage_orchestrator(base, tmp_path)
    plans = plan(store, "cpu-tiny", SHORT)
    return Pipeline.open(base, orch, "cpu-tiny", plans, SHORT, specs=fake_specs, **kw), orch


def test_plan_takes_each_stage_from_its_prefab(store):
    plans = plan(store, "cpu-tiny", {"training.num_iterations": 7, "rl:training.num_iterations": 3})
    assert [(p.stage, p.prefab) for p in plans] == [("base", "cpu-tiny"), ("sft", "cpu-tiny-sft"),
                                                    ("rl", "cpu-tiny-rl"), ("eval", "cpu-tiny-eval")]
    assert [p.resolved["run.stage"] for p in plans] == ["base", "sft", "rl", "eval"]
    assert [p.resolved["training.num_iterations"] for p in plans] == [7, 7, 3, 7]
    # a prefab without stage prefabs runs every stage with its own config
    assert [p.resolved["run.stage"] for p in plan(store, "cpu-small", stages=["base", "sft"])] == ["base", "sft"]
    with pytest.raises(AppError, match="'sfx' is not a stage"):
        split_overrides({"sfx:training.seed": 1})


def test_full_pipeline_pins_sources_and_writes_the_report(tmp_path, store):
    pipe, orch = _pipeline(tmp_path, store)
    record = pipe.run(launch_and_wait(orch))
    assert record.status == "finished", [(s.module, s.last) for s in record.steps]
    runs = {s.module: s.last.run for s in record.steps}
    assert runs == {"train": "cpu-tiny", "sft": "cpu-tiny-sft", "rl": "cpu-tiny-rl", "base_eval": "cpu-tiny-eval-core",
                    "chat_eval": "cpu-tiny-eval-chat"}
    base = tmp_path / "base"
    # each stage started from the checkpoint its previous stage wrote in this pipeline
    sft_meta = json.loads((base / "chatsft_checkpoints/cpu-tiny-sft/meta_000004.json").read_text())
    assert sft_meta["source"] == str(base / "base_checkpoints/cpu-tiny")
    rl_meta = json.loads((base / "chatrl_checkpoints/cpu-tiny-rl/meta_000004.json").read_text())
    assert rl_meta["source"] == str(base / "chatsft_checkpoints/cpu-tiny-sft")
    assert (base / "base_checkpoints/cpu-tiny/eval_core_000004.json").exists()
    assert (base / "chatrl_checkpoints/cpu-tiny-rl/eval_chat_000004.json").exists()

    path = write_report(pipe.dir, record, orch.runs_dir, base)
    text = path.read_text()
    assert path == base / "pipelines/cpu-tiny/report.md"
    assert "status **finished**" in text
    assert "| SFT | engine.sft | cpu-tiny-sft | finished |" in text
    assert "val loss on the held-out conversations fell from the starting checkpoint's 2.8000 to 2.2000" in text
    assert "RL: reward 0.150 (mean of the first 2 steps) → 0.350 (last 2)" in text
    assert "| arithmetic_mc | accuracy | 0.400 | 0.250 | +0.200 | 20 |" in text
    assert "CORE score (mean centred accuracy): **0.1000**" in text
    assert "| SpellCount | accuracy | 0.500 | 20 |" in text


def test_rerun_skips_finished_stages_and_resumes_the_failed_one(tmp_path, store, monkeypatch):
    monkeypatch.setenv("FAKE_FAIL_MODULE", "sft")
    pipe, orch = _pipeline(tmp_path, store)
    record = pipe.run(launch_and_wait(orch))
    assert record.status == "failed"
    assert [s.module for s in record.steps if s.done] == ["train"]
    assert PipelineDir(tmp_path / "base/pipelines/cpu-tiny").read().status == "failed"

    monkeypatch.delenv("FAKE_FAIL_MODULE")
    again, _ = _pipeline(tmp_path, store)
    assert again.name == "cpu-tiny"  # the same pipeline, found again
    launched = []
    record = again.run(launch_and_wait(orch), on_step=lambda step, attempt: launched.append((step.module, attempt)))
    assert record.status == "finished"
    assert [m for m, _ in launched] == ["sft", "rl", "base_eval", "chat_eval"]  # base was skipped
    sft = record.step("sft")
    assert len(sft.attempts) == 2 and sft.attempts[1].resumed and sft.attempts[1].run == "cpu-tiny-sft"
    events = [json.loads(line) for line in (tmp_path / "base/runs/cpu-tiny-sft/telemetry.jsonl").open()]
    assert [e.get("resumed_from_step") for e in events if e["event"] == "run_start"] == [None, 1]

    third, _ = _pipeline(tmp_path, store)  # everything finished: nothing left to launch
    assert third.name == "cpu-tiny" and third.pending() == []
    fresh, _ = _pipeline(tmp_path, store, new=True)
    assert fresh.name == "cpu-tiny-2"


def test_cli_errors_are_one_line_and_runs_command_shows_each_module(capsys):
    from nanochat_cli.cli.main import main

    assert main(["pipeline", "--report"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("nanochat-cli: error: no pipeline under ") and "\n" not in err
    assert main(["pipeline", "--headless", "--set", "sfx:training.seed=1"]) == 2
    assert "'sfx' is not a stage" in capsys.readouterr().err
    assert main(["runs", "command", "--prefab", "cpu-tiny-eval"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [ln.split(" -- ")[0].split()[-1] for ln in lines] == ["engine.base_eval", "engine.chat_eval"]
    assert "--run=cpu-tiny-eval-core" in lines[0] and "--run=cpu-tiny-eval-chat" in lines[1]
    assert main(["runs", "command", "--prefab", "cpu-tiny-rl", "--set", "run.stage_options=num_samples=4"]) == 0
    assert "-m engine.rl -- --run=cpu-tiny-rl" in capsys.readouterr().out
    assert main(["runs", "command", "--prefab", "cpu-tiny-rl", "--set", "run.stage_options=bogus=1"]) == 2
    assert "run.stage_options: bogus: not a setting of engine.rl" in capsys.readouterr().err


def test_ctrl_c_stops_the_running_stage_and_starts_nothing_more(tmp_path, store, monkeypatch):
    import os
    import signal
    import threading
    import time

    from nanochat_cli.cli.pipeline import run_headless_pipeline

    monkeypatch.setenv("FAKE_SLOW_MODULE", "sft")
    base = tmp_path / "base"
    orch = stage_orchestrator(base, tmp_path)
    overrides = {"training.num_iterations": 1000}
    pipe = Pipeline.open(base, orch, "cpu-tiny", plan(store, "cpu-tiny", overrides), overrides, specs=fake_specs)
    telemetry = base / "runs" / "cpu-tiny-sft" / "telemetry.jsonl"

    def interrupt() -> None:  # Ctrl-C once the SFT stage is stepping
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (telemetry.exists() and b'"step"' in telemetry.read_bytes()):
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt, daemon=True).start()
    assert run_headless_pipeline(pipe) == 130
    record = PipelineDir(base / "pipelines" / "cpu-tiny").read()
    assert record.status == "stopped"
    assert [(s.module, s.last.status if s.last else None) for s in record.steps] == [
        ("train", "finished"), ("sft", "stopped"), ("rl", None), ("base_eval", None), ("chat_eval", None)]
    assert orch.info("cpu-tiny-sft").pids == []  # nothing of it is left running
    assert "status **stopped**" in (base / "pipelines" / "cpu-tiny" / "report.md").read_text()


def test_a_stage_left_running_is_waited_for_not_started_again(tmp_path, store, monkeypatch):
    """Quitting the TUI leaves the running stage going; the next run of the pipeline waits for it."""
    monkeypatch.setenv("FAKE_SLOW_MODULE", "sft")  # 0.2 s a step: still running when the first run returns
    base = tmp_path / "base"
    orch = stage_orchestrator(base, tmp_path)
    overrides = {"training.num_iterations": 8}
    first = Pipeline.open(base, orch, "cpu-tiny", plan(store, "cpu-tiny", overrides), overrides, specs=fake_specs)

    def launch_then_quit(spec):
        info = orch.launch(spec)
        if spec.module == "engine.sft":
            first.stop()  # what quitting the TUI does
        else:
            orch.wait(info.name)

    record = first.run(launch_then_quit)
    assert record.status == "stopped" and record.step("sft").last.status == "running"
    second = Pipeline.open(base, orch, "cpu-tiny", plan(store, "cpu-tiny", overrides), overrides, specs=fake_specs)
    record = second.run(launch_and_wait(orch))
    assert record.status == "finished"
    assert [a.run for a in record.step("sft").attempts] == ["cpu-tiny-sft"]  # one attempt, waited for
