"""Config edits from the Config screen and the command palette: set/reset a field, reset all, switch
prefab, save as. Every change is logged, redraws the Config screen (`config_rev`) and updates the status."""

from __future__ import annotations

import logging
from typing import Any

from nanochat_cli.app_actions.shell import Shell
from nanochat_cli.errors import USER_ERRORS
from nanochat_cli.logging_setup import log_event


class ConfigActions(Shell):
    def _config_changed(self, what: str, level: int = logging.INFO, **fields: Any) -> None:
        log_event(what, level=level, prefab=self.session.prefab, **fields)
        self._update_status(mode=self.session.launch_mode(), wandb=self._wandb_text())
        self.config_rev += 1

    def set_override(self, key: str, value: Any) -> None:
        if self.session.set_value(key, value):
            self._config_changed("field set", level=logging.DEBUG, key=key, value=value)  # every keystroke

    def reset_override(self, key: str) -> None:
        if self.session.reset(key):
            self._config_changed("field reset", key=key)
            self.notify(f"{key} reset to the prefab value")
        else:
            self.notify(f"{key} already has the prefab value")

    def action_reset_all(self) -> None:
        n = len(self.session.overrides)
        if not n:
            self.notify("No overrides to reset")
            return

        def done(yes: bool | None) -> None:
            if yes:
                self.session.reset_all()
                self._config_changed("overrides reset", count=n)
                self.notify(f"Dropped {n} override(s)")

        from nanochat_cli.screens.confirm import ConfirmScreen

        self.push_screen(ConfirmScreen(f"Drop all {n} override(s) of {self.session.prefab}?", "Drop"), done)

    def request_switch_prefab(self, name: str) -> None:
        if name == self.session.prefab:
            return
        n = len(self.session.overrides)

        def switch(yes: bool | None = True) -> None:
            if not yes:
                self.config_rev += 1  # redraw the picker back to the current prefab
                return
            try:
                self.session.switch_prefab(name)
            except USER_ERRORS as e:
                self._error(str(e))
                self.config_rev += 1
                return
            self._config_changed("prefab loaded", dropped=n)
            self.notify(f"Loaded prefab {name}")

        if n:
            from nanochat_cli.screens.confirm import ConfirmScreen

            self.push_screen(ConfirmScreen(f"Load {name} and drop {n} override(s) of {self.session.prefab}?",
                                           "Load"), switch)
        else:
            switch()

    def action_save_as(self) -> None:
        problems = self.session.problems()
        if problems:
            self._error(f"Fix {len(problems)} problem(s) before saving: {problems[0]}")
            return
        from nanochat_cli.screens.save_as import SaveAsScreen

        self.push_screen(SaveAsScreen(self.session.prefab, len(self.session.overrides),
                                      self.session.check_new_name), self._save_as)

    def _save_as(self, name: str | None, overwrite: bool = False) -> None:
        if not name:
            return
        from nanochat_cli.services.config.prefabs import PrefabExists

        try:
            path = self.session.save_as(name, overwrite=overwrite)
        except PrefabExists:
            from nanochat_cli.screens.confirm import ConfirmScreen

            self.push_screen(ConfirmScreen(f"Prefab {name} exists. Overwrite it?", "Overwrite"),
                             lambda yes: self._save_as(name, overwrite=True) if yes else None)
            return
        except USER_ERRORS as e:
            self._error(str(e))
            return
        self._config_changed("prefab saved", name=name, path=str(path), overwrite=overwrite)
        self.notify(f"Saved prefab {name} ({self.show_path(path)})")
