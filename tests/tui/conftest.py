"""Fixtures shared by the TUI tests."""

from __future__ import annotations

import time

import pytest
from train_screen_helpers import MACHINE

from nanochat_cli.app import NanochatApp
from nanochat_cli.services.secrets import SecretStore


@pytest.fixture
def app(tmp_path, monkeypatch):
    """The app as snapshots see it: a fixed machine, fixed labels for the tmp config/base dirs (the root
    conftest points them at tmp_path), a frozen log clock in UTC, no network. A module may define its own."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield NanochatApp(machine=MACHINE, secrets=SecretStore(file_dir=tmp_path / "secrets"), online_checks=False,
                      base_dir_label="~/.cache/nanochat", config_dir_label="~/.config/nanochat-cli",
                      clock=lambda: 0.0)
    monkeypatch.undo()
    time.tzset()
