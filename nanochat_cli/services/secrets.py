"""Secrets (W&B API key, Hugging Face token): stored with `keyring`, never shown, logged or written elsewhere.

Two backends, and `auth status` says which one is in use and why:
- the system keyring (Secret Service, KWallet, macOS Keychain, Windows Credential Locker) when keyring
  finds one;
- otherwise a file: one JSON file, mode 0600, in the user config dir (FileKeyring). Headless Linux
  usually has no system keyring (Secret Service needs a D-Bus session and a keyring daemon); keyring then
  offers its "fail" backend, an empty chainer, or keyrings.alt's plaintext file (one file that every
  Python program of the user reads and writes), which this app never uses. NANOCHAT_CLI_KEYRING=file
  picks the file on purpose (CI, tests, servers where a keyring prompt would hang).
Only flags ("is a W&B key set") ever leave this module; values go from the store to the engine's
environment and nowhere else, and every value that passes through is handed to the masker
(services/masking.py), so logs, crash dumps and tracebacks print *** in its place.

W&B keys: the classic format is 40 hex characters; newer and self-hosted keys are longer and carry a
prefix (e.g. "local-..."), so the format check accepts 40-200 characters of [A-Za-z0-9_-]. A real check
asks the W&B GraphQL API who the key belongs to, with a short timeout; unreachable means "saved, not
verified", never a hang.
"""

from __future__ import annotations

import base64
import json
import os
import re
import stat
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from keyring.backend import KeyringBackend
from keyring.errors import KeyringError, PasswordDeleteError

from engine.shared import atomic_write
from nanochat_cli.errors import AppError
from nanochat_cli.services import paths
from nanochat_cli.services.masking import remember_secret

SECRET_NAMES = ("wandb_api_key", "hf_token")
AUTH_FLAGS = {"wandb_api_key": "auth.wandb_key_set", "hf_token": "auth.hf_token_set"}
WANDB_KEY_RE = re.compile(r"^[A-Za-z0-9_-]{40,200}$")
HF_TOKEN_RE = re.compile(r"^hf_[A-Za-z0-9]{30,}$")
WANDB_API_URL = "https://api.wandb.ai"


class FileKeyring(KeyringBackend):
    """A keyring backend over one JSON file with mode 0600; chosen explicitly, never by keyring's discovery."""

    priority = 0.0
    viable = False  # keep keyring's own auto-selection away from it

    def __init__(self, path: Path | None = None) -> None:
        super().__init__()
        self.path = Path(path) if path else paths.secrets_path()

    def _read(self) -> dict[str, dict[str, str]]:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return {}
        if st.st_mode & 0o077:
            raise AppError(f"{self.path}: readable by other users (mode {stat.filemode(st.st_mode)}): run "
                              f"chmod 600 {self.path}")
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            raise AppError(f"{self.path}: not valid JSON: delete it and set the secrets again "
                              "(nanochat-cli auth wandb / auth hf)") from None
        return data if isinstance(data, dict) else {}

    def get_password(self, service: str, username: str) -> str | None:
        return self._read().get(service, {}).get(username)

    def set_password(self, service: str, username: str, password: str) -> None:
        data = self._read()
        data.setdefault(service, {})[username] = password
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        atomic_write(self.path, json.dumps(data, indent=1), mode=0o600)

    def delete_password(self, service: str, username: str) -> None:
        data = self._read()
        if username not in data.get(service, {}):
            raise PasswordDeleteError(f"no {username} stored for {service}")
        del data[service][username]
        atomic_write(self.path, json.dumps(data, indent=1), mode=0o600)


def _is_system_backend(backend: KeyringBackend) -> bool:
    """A real OS keyring: one of keyring's own backends other than fail/null/chainer."""
    module = type(backend).__module__
    return module.startswith("keyring.backends.") and module.rsplit(".", 1)[-1] not in ("fail", "null", "chainer")


def _backend_label(backend: KeyringBackend) -> str:
    return f"{type(backend).__module__}.{type(backend).__name__}"


def _pick_backend() -> tuple[KeyringBackend | None, str]:
    """(the OS keyring keyring would use, or None when only fail/plaintext backends are on offer; why)."""
    if os.environ.get("NANOCHAT_CLI_KEYRING") == "file":
        return None, "NANOCHAT_CLI_KEYRING=file asks for the file store"
    import keyring
    from keyring.backends.chainer import ChainerBackend

    backend = keyring.get_keyring()
    candidates = backend.backends if isinstance(backend, ChainerBackend) else [backend]
    system = next((b for b in candidates if _is_system_backend(b)), None)
    if system is not None:
        return system, "keyring found this system's keyring"
    offered = ", ".join(_backend_label(b) for b in candidates) or "nothing"
    return None, f"no system keyring found (keyring offers {offered}, which this app does not use)"


def _secret_service_problem() -> str | None:
    """Why Secret Service (the Linux system keyring) is unusable here, in keyring's words; None if usable.
    Only asked for when explaining (it may open a D-Bus connection)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        from keyring.backends import SecretService

        SecretService.Keyring.priority  # noqa: B018 - raises with the reason when Secret Service is unusable
    except Exception as e:  # RuntimeError from keyring; any other failure is as good a reason
        return str(e) or type(e).__name__
    return None


def system_keyring() -> KeyringBackend | None:
    """The OS keyring keyring would use, or None when only fail/plaintext backends are on offer.

    NANOCHAT_CLI_KEYRING=file skips the OS keyring (CI, tests, servers where a keyring prompt would hang).
    """
    return _pick_backend()[0]


GET_SYSTEM_KEYRING = (
    "to use a system keyring instead: on a Linux desktop install and unlock a Secret Service provider (GNOME "
    "Keyring, KWallet or KeePassXC; e.g. `sudo apt install gnome-keyring`, then log in again); on a server without "
    "a desktop, start one in a D-Bus session (`dbus-run-session -- bash`, then `echo -n PASSWORD | "
    "gnome-keyring-daemon --unlock`) and run nanochat-cli from that shell; macOS and Windows have one built in. "
    "Then run `nanochat-cli auth status` to check, and enter the secrets again (auth wandb / auth hf): they are "
    "not moved from the file")


@dataclass(frozen=True)
class BackendInfo:
    """Where secrets are stored, why there, and (for the file) how to get a system keyring instead."""

    name: str  # "system keyring (SecretService)" | "file /path/secrets.json (mode 0600)"
    system: bool
    why: str
    advice: str | None = None

    def lines(self) -> list[str]:
        return [f"stored in: {self.name}", f"why: {self.why}"] + ([self.advice] if self.advice else [])


class SecretStore:
    """Get/set the app's secrets. file_dir forces the file backend in that dir (tests, sandboxes)."""

    def __init__(self, service: str = "nanochat-cli", file_dir: Path | None = None) -> None:
        self.service = service
        self._file_asked_for = bool(file_dir) or os.environ.get("NANOCHAT_CLI_KEYRING") == "file"
        if file_dir:
            self._backend: KeyringBackend = FileKeyring(Path(file_dir) / "secrets.json")
            self._why = "a file store was asked for (file_dir)"
        else:
            system, self._why = _pick_backend()
            self._backend = system or FileKeyring()

    def __repr__(self) -> str:  # no values, ever
        return f"SecretStore({self.backend_name()})"

    @staticmethod
    def _check(name: str) -> None:
        if name not in SECRET_NAMES:
            raise AppError(f"secret {name!r}: unknown: use one of {', '.join(SECRET_NAMES)}")

    def backend_name(self) -> str:
        if isinstance(self._backend, FileKeyring):
            return f"file {self._backend.path} (mode 0600)"
        return f"system keyring ({type(self._backend).__module__.rsplit('.', 1)[-1]})"

    def backend_info(self) -> BackendInfo:
        if isinstance(self._backend, FileKeyring):
            why = self._why
            problem = None if self._file_asked_for else _secret_service_problem()
            if problem:
                why += f"; Secret Service: {problem}"
            return BackendInfo(self.backend_name(), False, f"{why}; only you can read the file (mode 0600)",
                               GET_SYSTEM_KEYRING)
        return BackendInfo(self.backend_name(), True, self._why)

    def set(self, name: str, value: str) -> None:
        self._check(name)
        if not value:
            raise AppError(f"secret {name}: empty value: paste the value, or use delete to remove it")
        remember_secret(value)
        try:
            self._backend.set_password(self.service, name, value)
        except KeyringError as e:
            raise AppError(f"secret {name}: the keyring refused to store it ({type(e).__name__}): unlock the "
                              "system keyring and retry") from None

    def get(self, name: str) -> str | None:
        self._check(name)
        try:
            value = self._backend.get_password(self.service, name)
        except KeyringError as e:
            raise AppError(f"secret {name}: the keyring could not be read ({type(e).__name__}): unlock the "
                              "system keyring and retry") from None
        remember_secret(value)
        return value

    def delete(self, name: str) -> None:
        self._check(name)
        try:
            self._backend.delete_password(self.service, name)
        except PasswordDeleteError:
            return  # already absent: deleting is idempotent

    def is_set(self, name: str) -> bool:
        return bool(self.get(name))

    def auth_flags(self) -> dict[str, bool]:
        """The config's read-only auth.* fields: which secrets are stored, never what they are."""
        return {flag: self.is_set(name) for name, flag in AUTH_FLAGS.items()}


def validate_wandb_key(key: str, online_check: bool = True, timeout: float = 3,
                       endpoint: str | None = None) -> tuple[str, str]:
    """('invalid' | 'verified' | 'saved_not_verified', message). The message never contains the key."""
    key = key.strip()
    if not WANDB_KEY_RE.match(key):
        return "invalid", (f"W&B key: {len(key)} characters of the wrong form: paste the key from "
                           "https://wandb.ai/authorize (40 or more letters, digits, '-' or '_')")
    if not online_check:
        return "saved_not_verified", "saved, not verified (online check skipped)"
    url = (endpoint or os.environ.get("WANDB_BASE_URL") or WANDB_API_URL).rstrip("/") + "/graphql"
    auth = base64.b64encode(f"api:{key}".encode()).decode()
    req = urllib.request.Request(url, data=json.dumps({"query": "query { viewer { username } }"}).encode(),
                                 headers={"Content-Type": "application/json", "Authorization": f"Basic {auth}"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            body = json.loads(resp.read().decode("utf-8", "replace") or "{}")
    except urllib.error.HTTPError as e:
        if e.code in (401, 403):
            return "invalid", f"W&B key: rejected by {url} (HTTP {e.code}): copy a current key from " \
                              "https://wandb.ai/authorize"
        return "saved_not_verified", f"saved, not verified ({url} answered HTTP {e.code})"
    except (urllib.error.URLError, TimeoutError, OSError, ValueError) as e:
        reason = getattr(e, "reason", None) or type(e).__name__
        return "saved_not_verified", f"saved, not verified (W&B not reachable: {reason})"
    viewer = (body.get("data") or {}).get("viewer") if isinstance(body, dict) else None
    if not viewer:
        return "invalid", f"W&B key: {url} does not know this key: copy a current key from https://wandb.ai/authorize"
    return "verified", f"verified: W&B user {viewer.get('username') or '(unnamed)'}"


def validate_hf_token(token: str) -> tuple[str, str]:
    """Format check only ('hf_' + 30+ letters/digits); there is no online check."""
    token = token.strip()
    if not HF_TOKEN_RE.match(token):
        return "invalid", (f"HF token: {len(token)} characters of the wrong form: paste a token from "
                           "https://huggingface.co/settings/tokens (it starts with hf_)")
    return "saved_not_verified", "saved, not verified (format checked; no online check)"
