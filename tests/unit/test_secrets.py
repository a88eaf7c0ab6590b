"""Secrets: the 0600 file keyring, backend choice, W&B/HF validation (offline-safe), and no leaks."""

import io
import json
import stat
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import keyring
import pytest
from keyring.backends import fail

from nanochat_cli import cli
from nanochat_cli.errors import AppError
from nanochat_cli.services import paths
from nanochat_cli.services.config.prefabs import PrefabStore
from nanochat_cli.services.secrets import (
    FileKeyring,
    SecretStore,
    system_keyring,
    validate_hf_token,
    validate_wandb_key,
)
from nanochat_cli.services.state import UIState, save_state

WANDB_KEY = "0123456789abcdef0123456789abcdef01234567"
HF_TOKEN = "hf_" + "AbCdEfGhIjKlMnOpQrStUvWxYz012345"


def test_file_store_round_trip_with_mode_0600(tmp_path):
    store = SecretStore(file_dir=tmp_path / "s")
    assert not store.is_set("wandb_api_key") and store.get("hf_token") is None
    store.set("wandb_api_key", WANDB_KEY)
    path = tmp_path / "s" / "secrets.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert store.get("wandb_api_key") == WANDB_KEY and store.is_set("wandb_api_key")
    assert store.auth_flags() == {"auth.wandb_key_set": True, "auth.hf_token_set": False}
    assert WANDB_KEY not in repr(store) and "mode 0600" in store.backend_name()
    store.delete("wandb_api_key")
    store.delete("wandb_api_key")  # idempotent
    assert not store.is_set("wandb_api_key")
    with pytest.raises(AppError, match="unknown"):
        store.set("aws_key", "x")
    with pytest.raises(AppError, match="empty value"):
        store.set("hf_token", "")


def test_loose_file_permissions_are_refused(tmp_path):
    store = SecretStore(file_dir=tmp_path)
    store.set("hf_token", HF_TOKEN)
    (tmp_path / "secrets.json").chmod(0o644)
    with pytest.raises(AppError, match="readable by other users.*chmod 600"):
        store.get("hf_token")


def test_default_store_is_the_file_in_the_config_dir():
    store = SecretStore()  # conftest sets NANOCHAT_CLI_KEYRING=file
    store.set("hf_token", HF_TOKEN)
    assert paths.secrets_path().exists() and str(paths.user_config_dir()) in store.backend_name()


def test_fail_backend_means_no_system_keyring(monkeypatch):
    monkeypatch.delenv("NANOCHAT_CLI_KEYRING")
    previous = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    try:
        assert system_keyring() is None
        assert isinstance(SecretStore()._backend, FileKeyring)
    finally:
        keyring.set_keyring(previous)


def test_file_keyring_is_never_picked_by_keyring_itself():
    from keyring.backend import get_all_keyring

    assert not any(isinstance(k, FileKeyring) for k in get_all_keyring())


def test_wandb_key_format():
    assert validate_wandb_key("abc", online_check=False)[0] == "invalid"
    assert validate_wandb_key("g" * 39, online_check=False)[0] == "invalid"
    assert validate_wandb_key("has space" * 6, online_check=False)[0] == "invalid"
    assert validate_wandb_key(WANDB_KEY, online_check=False)[0] == "saved_not_verified"
    assert validate_wandb_key("local-" + WANDB_KEY, online_check=False)[0] == "saved_not_verified"
    status, message = validate_wandb_key("x" * 10, online_check=False)
    assert "x" * 10 not in message


def test_wandb_unreachable_is_saved_not_verified_quickly():
    t0 = time.perf_counter()
    status, message = validate_wandb_key(WANDB_KEY, endpoint="http://127.0.0.1:9", timeout=2)
    assert status == "saved_not_verified" and message.startswith("saved, not verified")
    assert time.perf_counter() - t0 < 3


class _FakeWandb(BaseHTTPRequestHandler):
    """A local stand-in for the W&B GraphQL endpoint: knows exactly one key."""

    def do_POST(self):
        import base64

        self.rfile.read(int(self.headers["Content-Length"]))
        auth = base64.b64decode(self.headers["Authorization"].split()[1]).decode()
        if auth != f"api:{WANDB_KEY}":
            self.send_response(401)
            self.end_headers()
            return
        body = json.dumps({"data": {"viewer": {"username": "ada"}}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def fake_wandb():
    server = HTTPServer(("127.0.0.1", 0), _FakeWandb)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def test_wandb_online_check_verified_and_rejected(fake_wandb):
    assert validate_wandb_key(WANDB_KEY, endpoint=fake_wandb) == ("verified", "verified: W&B user ada")
    status, message = validate_wandb_key("f" * 40, endpoint=fake_wandb)
    assert status == "invalid" and "HTTP 401" in message and "f" * 40 not in message


def test_hf_token_format():
    assert validate_hf_token(HF_TOKEN)[0] == "saved_not_verified"
    assert validate_hf_token("hf_short")[0] == "invalid"
    assert validate_hf_token(WANDB_KEY)[0] == "invalid"


def test_secrets_never_reach_any_other_file(tmp_path, monkeypatch, capsys, fake_wandb):
    """Store both secrets, then exercise every service that writes; only the keyring file may hold them."""
    root = tmp_path  # conftest points the config dir, base dir and HOME under tmp_path
    monkeypatch.setattr("sys.stdin", io.StringIO(WANDB_KEY + "\n"))
    assert cli.main(["auth", "wandb", "--stdin", "--endpoint", fake_wandb]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO(HF_TOKEN + "\n"))
    assert cli.main(["auth", "hf", "--stdin"]) == 0
    store = PrefabStore()
    assert store.resolve("cpu-tiny")["auth.wandb_key_set"] is True
    store.save_as("leak-check", "cpu-tiny", {"telemetry.wandb": "online"})
    save_state(UIState(screen="config", prefab="leak-check", overrides={"model.depth": 5}))
    saved = str(paths.user_prefabs_dir() / "leak-check.yaml")
    for argv in (["prefabs", "show", "leak-check"], ["prefabs", "list"], ["auth", "status"],
                 ["prefabs", "diff", "cpu-tiny", "--set", "wandb=online"], ["config", "validate", saved]):
        assert cli.main(argv) == 0
    out = capsys.readouterr()
    secret_file = paths.secrets_path()
    written = [p for p in root.rglob("*") if p.is_file() and p != secret_file]
    assert paths.state_path() in written and paths.user_prefabs_dir() / "leak-check.yaml" in written
    for p in written:
        data = p.read_bytes()
        assert WANDB_KEY.encode() not in data and HF_TOKEN.encode() not in data, p
    for secret in (WANDB_KEY, HF_TOKEN):
        assert secret not in out.out and secret not in out.err
        assert secret in secret_file.read_text()


# ---- which backend, and why (issue 13: the README and `auth` must say so)


def test_auth_status_says_the_file_backend_is_used_and_why(capsys):
    assert cli.main(["auth", "status"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert f"stored in: file {paths.secrets_path()} (mode 0600)" in out
    assert "why: NANOCHAT_CLI_KEYRING=file asks for the file store; only you can read the file (mode 0600)" in out
    assert "to use a system keyring instead:" in out and "gnome-keyring" in out and "auth status" in out


def test_without_a_system_keyring_the_reason_names_what_keyring_offered(monkeypatch):
    monkeypatch.delenv("NANOCHAT_CLI_KEYRING")
    previous = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    try:
        info = SecretStore().backend_info()
    finally:
        keyring.set_keyring(previous)
    assert not info.system and info.name.startswith("file ")
    assert info.why.startswith("no system keyring found (keyring offers keyring.backends.fail.Keyring, which this "
                               "app does not use)")
    assert info.advice and "Secret Service" in info.advice


def test_a_system_keyring_is_named_with_no_advice(monkeypatch):
    from keyring.backend import KeyringBackend

    class Memory(KeyringBackend):  # stands in for an OS keyring: a backend module under keyring.backends
        priority = 1
        values: dict = {}

        def get_password(self, service, username):
            return self.values.get((service, username))

        def set_password(self, service, username, password):
            self.values[(service, username)] = password

        def delete_password(self, service, username):
            self.values.pop((service, username), None)

    Memory.__module__ = "keyring.backends.SecretService"
    monkeypatch.delenv("NANOCHAT_CLI_KEYRING")
    previous = keyring.get_keyring()
    keyring.set_keyring(Memory())
    try:
        store = SecretStore()
        store.set("hf_token", HF_TOKEN)
        info = store.backend_info()
    finally:
        keyring.set_keyring(previous)
    assert info.system and info.name == "system keyring (SecretService)" and info.advice is None
    assert info.lines() == ["stored in: system keyring (SecretService)", "why: keyring found this system's keyring"]
    assert not paths.secrets_path().exists()


def test_auth_wandb_says_where_it_stored_the_key(monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO(WANDB_KEY + "\n"))
    assert cli.main(["auth", "wandb", "--stdin", "--no-verify"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "W&B key saved, not verified (online check skipped)"
    assert f"stored in: file {paths.secrets_path()} (mode 0600)" in out and "why: " in out
    assert WANDB_KEY not in out
