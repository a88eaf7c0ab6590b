"""run_end records the step the run reached, whether it finished, was stopped or failed (issue 12)."""

from __future__ import annotations

import pytest
from engine_assets import build_assets, train_in_process

import engine.train
from engine.control import send_request
from engine.telemetry import TelemetryReader

HORIZON = 50


@pytest.fixture(scope="module")
def assets(tmp_path_factory) -> dict[str, str]:
    return build_assets(tmp_path_factory.mktemp("assets"))


def run_events(base, run: str) -> list:
    return TelemetryReader(base / "runs" / run / "telemetry.jsonl").read_new()


def hook_step(monkeypatch, at: int, action) -> None:
    """Call `action()` when the trainer schedules the update of step `at` (inside the real loop)."""
    real = engine.train.apply_schedules

    def schedules(optimizer, step, *args, **kwargs):
        if step == at:
            action()
        return real(optimizer, step, *args, **kwargs)

    monkeypatch.setattr(engine.train, "apply_schedules", schedules)


def test_a_stopped_run_records_the_step_it_stopped_at(tmp_path, assets, monkeypatch):
    base = tmp_path / "base"
    hook_step(monkeypatch, 3, lambda: send_request(base / "runs" / "stopme", "stop"))
    assert train_in_process(base, assets, "stopme", "--num-iterations", str(HORIZON)) == 0
    evs = run_events(base, "stopme")
    end, last_step = evs[-1], [e for e in evs if e.event == "step"][-1]
    assert end.event == "run_end" and end.status == "stopped"
    assert end.step == last_step.step == 4 and end.step != HORIZON


def test_a_failed_run_records_the_step_it_failed_at(tmp_path, assets, monkeypatch):
    def boom() -> None:
        raise RuntimeError("simulated fault in the update")

    base = tmp_path / "base"
    hook_step(monkeypatch, 3, boom)
    assert train_in_process(base, assets, "fails", "--num-iterations", str(HORIZON)) == 1
    evs = run_events(base, "fails")
    end, last_step = evs[-1], [e for e in evs if e.event == "step"][-1]
    assert end.event == "run_end" and end.status == "failed" and "simulated fault" in end.reason
    assert end.step == last_step.step == 3


def test_a_finished_run_records_its_last_step(tmp_path, assets):
    base = tmp_path / "base"
    assert train_in_process(base, assets, "done", "--num-iterations", "3") == 0
    end = run_events(base, "done")[-1]
    assert (end.event, end.status, end.step) == ("run_end", "finished", 3)
