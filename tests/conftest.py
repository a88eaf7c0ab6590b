"""Shared test setup: every test gets its own config dir, data dir and HOME, so none touches the real ones."""

import signal

import pytest

# The Ctrl-C tests deliver SIGINT to the CLI, to its runs and to this process. A shell that starts the suite as a
# background job without job control leaves SIGINT ignored, and an ignored signal stays ignored across exec, so
# every child would shrug it off. Python's own handler here means the default again in each child.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


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
def _no_plugins_left_behind():
    """Plugins a test loads (the app, the CLI) go into the global registry: unload them all after each test, so
    the next one starts clean and loads them in the same order (the Config screen lists their categories in
    load order). The in-repo megacontext plugin adds a checkpoint field and an engine extension, which tests of
    the plugin-free registry or with a stand-in "megacontext" category must not see."""
    yield
    from nanochat_cli.services.registry import REGISTRY

    for name in list(REGISTRY.plugins):
        REGISTRY.remove_owned(name)
        REGISTRY.plugins.pop(name, None)
