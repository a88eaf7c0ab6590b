"""Planted secrets (issue 12, "Secrets"): a W&B key in the secret store and tokens in the environment must not
appear in anything the app writes or prints: the JSON log, the Logs screen's tail, crash dumps, Textual's exit
traceback on stderr, the CLI's error lines and debug tracebacks. Log files are 0600 in a 0700 dir."""

from __future__ import annotations

import logging
import os
import stat

import pytest

from nanochat_cli.app import NanochatApp
from nanochat_cli.cli import main
from nanochat_cli.logging_setup import LOGGER_NAME, log_event, setup_logging
from nanochat_cli.services import paths
from nanochat_cli.services.config.guardrails import MachineInfo
from nanochat_cli.services.secrets import SecretStore

MACHINE = MachineInfo(cpu_count=2, ram_total_bytes=8_000_000_000, ram_free_bytes=6_000_000_000)
STORED_KEY = "5t0red" + "k3y" * 12  # in the secret store only (40 characters, a W&B key's form)
ENV_KEY = "env" + "W4ndbK3y" * 5  # in WANDB_API_KEY only
ENV_HF = "hf_" + "EnvT0ken" * 4  # in HF_TOKEN only


@pytest.fixture
def planted(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", ENV_KEY)
    monkeypatch.setenv("HF_TOKEN", ENV_HF)
    store = SecretStore(file_dir=tmp_path / "secrets")
    store.set("wandb_api_key", STORED_KEY)
    return store


def assert_clean(text: str, where: str) -> None:
    for secret in (STORED_KEY, ENV_KEY, ENV_HF):
        assert secret not in text, f"{where} holds a planted secret"


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


class CrashingApp(NanochatApp):
    def action_boom(self) -> None:  # a handler bug whose message quotes every secret
        raise RuntimeError(
            f"boom with {self.secrets.get('wandb_api_key')} {os.environ['WANDB_API_KEY']} {os.environ['HF_TOKEN']}"
        )


async def test_a_crash_leaks_no_secret_to_stderr_log_or_dump(planted, capsys):
    app = CrashingApp(machine=MACHINE, secrets=planted, online_checks=False)
    with pytest.raises(RuntimeError):
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.pause()
            app.call_later(app.action_boom)
            await pilot.pause()
    err = capsys.readouterr().err
    assert "RuntimeError" in err and "boom with" in err and "***" in err  # Textual's exit traceback, masked
    assert_clean(err, "stderr")
    log = paths.logs_dir() / "app.jsonl"
    text = log.read_text()
    assert '"crashed"' in text and "***" in text
    assert_clean(text, "app.jsonl")
    assert app.crash_path is not None
    assert_clean(app.crash_path.read_text(), "crash dump")
    assert mode(app.crash_path) == 0o600 and mode(app.crash_path.parent) == 0o700
    assert mode(log) == 0o600 and mode(log.parent) == 0o700


def test_every_log_record_is_masked(planted, tmp_path):
    log = setup_logging(tmp_path / "logs")
    try:
        planted.get("wandb_api_key")  # read once, as the app does when it launches a run
        log_event(f"message with {STORED_KEY}", token=ENV_KEY, nested={"list": [ENV_HF]})
        try:
            raise ValueError(f"exception with {STORED_KEY}")
        except ValueError:
            logging.getLogger(LOGGER_NAME).exception("it failed: %s", ENV_HF)
    finally:
        log.close()
    text = (tmp_path / "logs" / "app.jsonl").read_text()
    assert text.count("***") >= 5 and "exception with ***" in text
    assert_clean(text, "app.jsonl")
    assert_clean(repr(list(log.tail.records)), "the Logs screen's tail")


def test_log_files_are_private_even_with_a_loose_umask(tmp_path):
    from nanochat_cli.logging_setup import PrivateRotatingFileHandler

    old = os.umask(0o022)
    try:
        logs = tmp_path / "logs"
        logs.mkdir(mode=0o755)
        (logs / "app.jsonl").write_text("")  # a log from before logs were private
        (logs / "app.jsonl.1").write_text("")
        os.chmod(logs / "app.jsonl", 0o644)
        os.chmod(logs / "app.jsonl.1", 0o644)
        log = setup_logging(logs)
        log_event("hello")
        log.close()
        assert mode(logs) == 0o700
        assert mode(logs / "app.jsonl") == 0o600 and mode(logs / "app.jsonl.1") == 0o600
        fresh = tmp_path / "fresh"
        fresh.mkdir()
        handler = PrivateRotatingFileHandler(fresh / "r.jsonl", maxBytes=64, backupCount=2)
        for i in range(10):  # several rollovers: each new file is created 0600 too
            handler.emit(logging.makeLogRecord({"msg": f"line {i} " + "x" * 40}))
        handler.close()
        files = sorted(fresh.iterdir())
        assert len(files) == 3 and all(mode(f) == 0o600 for f in files)
    finally:
        os.umask(old)


def test_cli_internal_errors_are_masked(planted, capsys, monkeypatch):
    def broken_is_set(self, name):
        raise RuntimeError(f"keyring said {STORED_KEY} / {ENV_KEY}")

    monkeypatch.setattr(SecretStore, "is_set", broken_is_set)
    assert main(["auth", "status"]) == 2
    err = capsys.readouterr().err
    assert "internal error (RuntimeError: keyring said *** / ***)" in err
    assert_clean(err, "the CLI's error line")


def test_cli_debug_traceback_is_masked(planted, capsys, monkeypatch):
    def broken_is_set(self, name):
        raise RuntimeError(f"keyring said {STORED_KEY}")

    monkeypatch.setattr(SecretStore, "is_set", broken_is_set)
    monkeypatch.setenv("NANOCHAT_CLI_DEBUG", "1")
    assert main(["auth", "status"]) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "RuntimeError: keyring said ***" in err
    assert_clean(err, "the CLI's debug traceback")
