"""SVG snapshots of the Train screen with a replayed, finished run from hand-written telemetry. Deterministic:
fixed event times and values, no run.json (no pid, no start clock), a fixed machine, labelled dirs, UTC.

Update the baselines after an intended UI change: pytest tests/tui/test_train_screen_snapshots.py --snapshot-update
"""

from __future__ import annotations

import time

import pytest
from train_screen_helpers import MACHINE, replayed, run_events, write_run

from nanochat_cli.app import NanochatApp
from nanochat_cli.services.secrets import SecretStore


@pytest.fixture
def app(tmp_path, monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    write_run(tmp_path / "base", "demo", run_events("demo"))
    yield NanochatApp(machine=MACHINE, secrets=SecretStore(file_dir=tmp_path / "secrets"), online_checks=False,
                      base_dir_label="~/.cache/nanochat", config_dir_label="~/.config/nanochat-cli",
                      clock=lambda: 0.0)
    monkeypatch.undo()
    time.tzset()


def test_train_replayed_run_120x40(snap_compare, app):
    assert snap_compare(app, terminal_size=(120, 40), run_before=replayed)


def test_train_replayed_run_80x24(snap_compare, app):
    assert snap_compare(app, terminal_size=(80, 24), run_before=replayed)
