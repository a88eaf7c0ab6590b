"""Our command palette providers (Ctrl+P): open a screen, switch prefab, save/reset, tokens, debug log; and the
actions of the screen the palette was opened from (a screen lists `ScreenCommands` in its COMMANDS).

Every command calls the same app method or action as its key binding, so palette and keys never disagree.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING

from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider

from nanochat_cli.tabs import SCREENS

if TYPE_CHECKING:
    from nanochat_cli.app import NanochatApp


class NanochatCommands(Provider):
    def _commands(self) -> list[tuple[str, Callable[[], object], str]]:
        app: NanochatApp = self.app  # type: ignore[assignment]
        cmds: list[tuple[str, Callable[[], object], str]] = [
            ("Save prefab as…", app.action_save_as, "save the current prefab + overrides under a new name"),
            ("Reset overrides", app.action_reset_all, "drop every override of the loaded prefab"),
            ("Toggle debug log", app.action_toggle_debug, "switch the app log between INFO and DEBUG"),
            ("Set tokens (W&B, Hugging Face)", app.action_auth, "store API tokens in the secret store"),
            ("Launch training run", app.action_launch_run, "start the current config, watch it on the Train tab"),
        ]
        cmds += [(f"Open screen: {label}", partial(app.action_show_screen, name), f"switch to the {label} tab")
                 for name, label in SCREENS.items()]
        cmds += [(f"Open screen: {entry.title}", partial(app.action_show_screen, name), entry.help or entry.title)
                 for name, entry in getattr(app, "plugin_screens", {}).items()]
        for prefab in app.session.prefabs():
            where = "shipped" if prefab.shipped else "yours"
            cmds.append((f"Switch prefab: {prefab.name}", partial(app.request_switch_prefab, prefab.name),
                         f"{where} · {prefab.description}".strip(" ·")))
        return cmds

    async def discover(self) -> Hits:
        for text, command, help_text in self._commands():
            yield DiscoveryHit(text, command, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for text, command, help_text in self._commands():
            score = matcher.match(text)
            if score > 0:
                yield Hit(score, matcher.highlight(text), command, text=text, help=help_text)


class ScreenCommands(NanochatCommands):
    """The described bindings of the screen the palette was opened from (the footer's and those left out of it for
    room), each run as if its key was pressed."""

    def _commands(self) -> list[tuple[str, Callable[[], object], str]]:
        screen = self.screen
        name = getattr(screen, "SCREEN_NAME", "")
        plugin = getattr(self.app, "plugin_screens", {}).get(name)
        label = SCREENS.get(name) or (plugin.title if plugin else "")
        out: list[tuple[str, Callable[[], object], str]] = []
        for binding in screen.BINDINGS:
            if isinstance(binding, Binding) and binding.description:
                key = self.app.get_key_display(replace(binding, key=binding.key.split(",")[0]))
                out.append((f"{label}: {binding.description}", partial(screen.run_action, binding.action),
                            f"{binding.tooltip} ({key})".strip()))
        return out
