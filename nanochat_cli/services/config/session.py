"""The config edit session behind the Config screen and the command palette: the loaded prefab, the user's
overrides, and what follows from them (resolved config, validation issues, diff, compat matrix, guardrails).

Textual-free so it can be tested directly. Every change is written to the UI state file at once (one small
atomic write), so a restart or a crash brings back the same screen, prefab and overrides.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nanochat_cli.errors import USER_ERRORS, AppError
from nanochat_cli.services.config.diff import DiffRow, diff
from nanochat_cli.services.config.prefabs import NAME_RE, Prefab, PrefabStore, compat_matrix
from nanochat_cli.services.config.schema import ConfigIssue, field_specs, validate_overrides
from nanochat_cli.services.state import UIState, save_state


class ConfigSession:
    def __init__(self, state: UIState, state_path: Path | None = None, store: PrefabStore | None = None) -> None:
        self.state, self.state_path = state, state_path
        self.store = store or PrefabStore()
        self.specs = {s.key: s for s in field_specs()}
        self._prefabs: list[Prefab] | None = None
        self.notices: list[str] = []  # what restoring the last session had to change; shown as toasts
        self.pending: dict[str, str] = {}  # field -> why the text typed into it is not a value (not stored)
        self.epoch = 0  # bumped when every field is replaced at once (prefab switch, reset all, save as)
        self._restore()

    # ---- restore -------------------------------------------------------------------------------
    def _restore(self) -> None:
        names = [p.name for p in self.prefabs()]
        self.notices += [f"prefab skipped: {b.error}" for b in self.store.broken()]
        if self.state.prefab not in names:
            fallback = UIState().prefab if UIState().prefab in names else names[0]
            self.notices.append(f"prefab {self.state.prefab!r} from the last session no longer exists; "
                                f"loaded {fallback} (your overrides were kept)")
            self.state.prefab = fallback
        unknown = sorted(k for k in self.state.overrides if k not in self.specs)
        for k in unknown:
            self.state.overrides.pop(k)
        if unknown:
            self.notices.append(f"dropped unknown fields from the last session: {', '.join(unknown)}")
        try:
            self.refresh()
        except USER_ERRORS as e:  # the prefab file changed since last time and no longer validates
            if self.state.prefab == UIState().prefab:
                raise
            self.notices.append(f"{e}; loaded {UIState().prefab} instead")
            self.state.prefab = UIState().prefab
            self.refresh()
        if self.notices:
            self.save()

    # ---- derived state -------------------------------------------------------------------------
    @property
    def prefab(self) -> str:
        return self.state.prefab

    @property
    def overrides(self) -> dict[str, Any]:
        return self.state.overrides

    def prefabs(self) -> list[Prefab]:
        """The prefab list (cached: listing resolves and prices every prefab; save_as refreshes it)."""
        if self._prefabs is None:
            self._prefabs = self.store.list()
        return self._prefabs

    def prefab_info(self) -> Prefab:
        return next(p for p in self.prefabs() if p.name == self.prefab)

    def refresh(self) -> None:
        self.base: dict[str, Any] = self.store.resolve(self.prefab)
        self.current: dict[str, Any] = {**self.base, **self.overrides}
        self.issues: list[ConfigIssue] = validate_overrides(self.base, self.overrides)
        self.diff: list[DiffRow] = diff(self.base, self.current)

    def problems(self) -> list[str]:
        """Everything that blocks saving: typed text that is not a value, then config issues."""
        return list(self.pending.values()) + [i.message for i in self.issues]

    def issues_for(self, key: str) -> list[ConfigIssue]:
        return [i for i in self.issues if i.field == key]

    def compat(self, has_gpu: bool | None = None) -> Any:
        """Compat matrix of the current config; raises AppError while the config has problems."""
        if self.issues:
            raise AppError(f"config: {len(self.issues)} problem(s), first: {self.issues[0].message}: "
                              "fix them to see the estimate")
        return compat_matrix(self.current, has_gpu=has_gpu)

    def guardrails(self, machine: Any = None) -> list[Any]:
        from nanochat_cli.services.config.guardrails import check_machine

        return [] if self.issues else check_machine(self.current, machine)

    def launch_mode(self) -> str:
        """How a run of this config would launch: 'cpu ×1', 'cuda ×8', 'cuda 8×2 nodes'."""
        device = self.current.get("hardware.device", "auto")
        nproc = self.current.get("hardware.nproc_per_node", 1)
        nnodes = self.current.get("hardware.nnodes", 1)
        return f"{device} {nproc}×{nnodes} nodes" if nnodes > 1 else f"{device} ×{nproc}"

    def wandb_mode(self) -> str:
        return str(self.current.get("telemetry.wandb", "disabled"))

    # ---- edits (each returns whether anything changed, and saves) --------------------------------
    def set_value(self, key: str, value: Any) -> bool:
        if key not in self.specs:
            raise AppError(f"{key}: unknown config field: pick one of the fields on the Config screen")
        before = self.overrides.get(key, self.base.get(key))
        if value == self.base.get(key):
            self.overrides.pop(key, None)
        else:
            self.overrides[key] = value
        if before == value:
            return False
        self.refresh()
        self.save()
        return True

    def reset(self, key: str) -> bool:
        if self.overrides.pop(key, _MISSING) is _MISSING:
            return False
        self.refresh()
        self.save()
        return True

    def reset_all(self) -> None:
        self.overrides.clear()
        self.epoch += 1
        self.refresh()
        self.save()

    def switch_prefab(self, name: str) -> None:
        self._prefabs = None  # re-read: the file may have changed on disk
        self.store.get(name)  # raises a one-line error listing the names if unknown
        self.epoch += 1
        self.state.prefab = name
        self.overrides.clear()
        self.refresh()
        self.save()

    def check_new_name(self, name: str) -> str | None:
        """Why `name` can't be a new prefab name, or None when it can (exists → overwrite is asked)."""
        if not NAME_RE.match(name):
            return f"{name!r}: use up to 64 letters, digits, $ . _ - (start with a letter, digit or $)"
        shipped = {p.name for p in self.prefabs() if p.shipped}
        if name in shipped:
            return f"{name!r} is a shipped prefab and can't be overwritten: pick another name"
        return None

    def save_as(self, name: str, overwrite: bool = False) -> Path:
        """Write prefab + overrides as user prefab `name` and load it (no overrides left)."""
        self.epoch += 1
        path = self.store.save_as(name, self.prefab, dict(self.overrides), overwrite=overwrite)
        self._prefabs = None
        self.state.prefab = name
        self.overrides.clear()
        self.refresh()
        self.save()
        return path

    # ---- UI bits stored alongside ---------------------------------------------------------------
    def set_screen(self, name: str) -> None:
        if self.state.screen != name:
            self.state.screen = name
            self.save()

    def set_debug(self, on: bool) -> None:
        self.state.debug = on
        self.save()

    def set_chat(self, checkpoint: str, mode: str) -> None:
        """The Chat tab's model and mode, loaded again after a restart."""
        if (self.state.chat_checkpoint, self.state.chat_mode) != (checkpoint, mode):
            self.state.chat_checkpoint, self.state.chat_mode = checkpoint, mode
            self.save()

    def save(self) -> None:
        save_state(self.state, self.state_path)


_MISSING = object()
