"""Shared test setup: every test gets its own config dir, data dir and HOME, so none touches the real ones."""

import pytest


@pytest.fixture(autouse=True)
def _isolated_dirs(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / ".local" / "share"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    monkeypatch.setenv("NANOCHAT_CLI_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("NANOCHAT_BASE_DIR", str(tmp_path / "base"))
    monkeypatch.setenv("NANOCHAT_CLI_KEYRING", "file")  # secrets go to a 0600 file in the tmp config dir


@pytest.fixture(autouse=True)
def _no_megacontext_left_behind():
    """The in-repo megacontext plugin adds a checkpoint field, an engine extension and a prefab folder to the
    global registry when a test loads the plugins (the app, the CLI): unload it after each test so tests that
    expect no plugin field, or register a stand-in "megacontext" category, start clean."""
    yield
    from nanochat_cli.services.registry import REGISTRY

    if "megacontext" in REGISTRY.plugins:
        REGISTRY.remove_owned("megacontext")
        REGISTRY.plugins.pop("megacontext", None)
