"""The tokens dialog: enter the W&B key / HF token, validated (the W&B check may go online) and stored
through the secret store off the UI thread; the masker learns each value before anything else sees it."""

from __future__ import annotations

from nanochat_cli.app_actions.shell import Shell
from nanochat_cli.errors import USER_ERRORS
from nanochat_cli.logging_setup import log_event
from nanochat_cli.services.masking import remember_secret


class TokenActions(Shell):
    def action_auth(self) -> None:
        from nanochat_cli.screens.auth import TOKENS, AuthScreen

        try:
            is_set = {name: self.secrets.is_set(name) for name in TOKENS}
        except USER_ERRORS as e:
            self._error(str(e))
            return
        self.push_screen(AuthScreen(is_set, self.secrets.backend_name()), self._store_tokens)

    def _store_tokens(self, entered: dict[str, str] | None) -> None:
        if not entered:
            return
        self.run_worker(lambda: self._store_tokens_worker(entered), thread=True, group="auth")

    def _store_tokens_worker(self, entered: dict[str, str]) -> None:
        """Validate and store each entered token (the W&B check may go online: off the UI thread)."""
        from nanochat_cli.services.secrets import validate_hf_token, validate_wandb_key

        for value in entered.values():  # masked everywhere from now on, even if it is refused below
            remember_secret(value)
        for name, value in entered.items():
            if name == "wandb_api_key":
                status, message = validate_wandb_key(value, online_check=self.online_checks)
            else:
                status, message = validate_hf_token(value)
            label = "W&B key" if name == "wandb_api_key" else "HF token"
            if status == "invalid":
                self.call_from_thread(self._error, f"{label} not saved: {message}")
                continue
            try:
                self.secrets.set(name, value)
            except USER_ERRORS as e:
                self.call_from_thread(self._error, str(e))
                continue
            self.call_from_thread(self.notify, f"{label} {message}")
            log_event("token stored", name=name, status=status, backend=self.secrets.backend_name())
        self._check_wandb_key()
        self.call_from_thread(self._tokens_changed)

    def _tokens_changed(self) -> None:
        self.session.refresh()  # auth.* flags are part of the resolved config
        self._config_changed("tokens changed")
