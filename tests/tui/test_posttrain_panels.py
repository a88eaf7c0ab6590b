"""The Train tab for post-training and eval runs, fed by recorded telemetry (tests/fixtures/telemetry/*.jsonl):
the stage picks the layout (sft, rl, eval) and the SFT loss, RL reward/pass@k/lengths/answers and eval results
panels draw what the run sent. The RL view is also an SVG snapshot."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
from train_screen_helpers import MACHINE, make_app, replayed, shows

from nanochat_cli.app import NanochatApp
from nanochat_cli.services.secrets import SecretStore

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "telemetry"


def recorded(base: Path, fixture: str, name: str, stage: str) -> Path:
    """A finished run dir made of a recorded telemetry file and a launcher record naming its stage."""
    run_dir = base / "runs" / name
    run_dir.mkdir(parents=True)
    shutil.copy(FIXTURES / f"{fixture}.jsonl", run_dir / "telemetry.jsonl")
    (run_dir / "run.json").write_text(json.dumps({"name": name, "stage": stage, "module": f"engine.{stage}",
                                                  "exit_code": 0}))
    return run_dir


async def test_sft_run_shows_train_and_val_loss(tmp_path):
    recorded(tmp_path / "base", "sft_run", "demo-sft", "sft")
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await replayed(pilot)
        screen = app.screen
        assert screen.editor.layout.name == "sft"
        assert [p.spec.id for p in screen.views.panels_in_view()] == ["progress", "sft_loss", "step_time", "events"]
        store = screen.live.store
        assert store.run_state().stage == "sft"
        assert store.latest("val_loss") == pytest.approx(2.3 + 1.6 * 2.718281828 ** -4, abs=1e-3)
        assert store.count("val_loss") == 5  # step 0 (the starting checkpoint) and every 10 steps
        assert shows(app, "SFT loss · loss 2.149  val_loss 2.329", "0 val loss 3.9120", "40 val loss 2.3293")


async def test_rl_run_shows_reward_pass_at_k_lengths_and_answers(tmp_path):
    recorded(tmp_path / "base", "rl_run", "demo-rl", "rl")
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await replayed(pilot)
        screen = app.screen
        assert screen.editor.layout.name == "rl"
        store = screen.live.store
        assert store.count("reward_mean") == 30 and store.latest("pass_at_k") == pytest.approx(0.9744)
        answers = store.answers()
        assert answers[-1].step == 30 and [a.reward for a in answers[-2:]] == [1.0, 0.0]
        assert shows(app, "Reward · reward_mean 0.609", "pass@k · pass_at_1 0.609  pass_at_k 0.9744",
                     "Sample lengths · mean_len 30  max_len 64", "tool_call_rate  70.0%",
                     "1.00 step 30 What is 3 + 4? → <|python_start|>3+4<|python_end|> 7",
                     "0.00 step 30 What is 3 * 4? → 13")


async def test_eval_run_lists_results(tmp_path):
    base = tmp_path / "base"
    recorded(base, "eval_chat_run", "demo-eval-chat", "eval")
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await replayed(pilot)
        assert app.screen.editor.layout.name == "eval"
        assert shows(app, "chat   Arithmetic      pass@1    0.350         -        -  40",
                     "chat   MultipleChoice  accuracy  0.400     0.250   +0.200  40", "chat 0.4333 (mean)")
        assert shows(app, "chat eval SpellCount: pass@1 0.550 over 40 examples")  # the Events panel's line


@pytest.fixture
def rl_app(tmp_path, monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    recorded(tmp_path / "base", "rl_run", "demo-rl", "rl")
    yield NanochatApp(machine=MACHINE, secrets=SecretStore(file_dir=tmp_path / "secrets"), online_checks=False,
                      base_dir_label="~/.cache/nanochat", config_dir_label="~/.config/nanochat-cli",
                      clock=lambda: 0.0)
    monkeypatch.undo()
    time.tzset()


def test_rl_view_snapshot(snap_compare, rl_app):
    assert snap_compare(rl_app, terminal_size=(120, 40), run_before=replayed)
