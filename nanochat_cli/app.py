"""The Textual app shell: five tabbed screens, status bar, command palette, toasts, UI-state restore and
crash dumps.

Each tab is a Textual *mode* (its own screen stack), so a tab keeps its widgets and focus while the user
is elsewhere. The app owns the config edit session (prefab + overrides) so that the command palette and
the Config screen change it the same way; screens watch `config_rev` to redraw. Start-up stays light: no
torch/wandb/opentelemetry imports, non-Config screens are imported when first opened, the shell and the
Config tab's frame paint before plugins, prefabs and the secret store load (`services`, right after the
first paint; the Config tab fills in then), and machine/secret probes run in a worker thread after that.
"""

from __future__ import annotations

import gc
import logging
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from textual import events
from textual.app import App
from textual.binding import Binding
from textual.reactive import var
from textual.screen import ModalScreen, Screen
from textual.theme import Theme

from engine import __version__
from nanochat_cli.app_actions import ConfigActions, RunActions, TokenActions
from nanochat_cli.errors import USER_ERRORS
from nanochat_cli.logging_setup import AppLog, log_event, setup_logging
from nanochat_cli.services import paths
from nanochat_cli.services.app_services import AppServices, load_app_services
from nanochat_cli.services.masking import MaskingStream, mask, mask_data
from nanochat_cli.services.state import load_state
from nanochat_cli.services.text import printable
from nanochat_cli.startup_trace import bench_requested, stamp, write_bench_report
from nanochat_cli.tabs import SCREENS
from nanochat_cli.widgets.shell.status_bar import StatusInfo

if TYPE_CHECKING:
    from textual.widget import AwaitMount

    from nanochat_cli.services.config.session import ConfigSession
    from nanochat_cli.services.plugins import PluginReport
    from nanochat_cli.services.secrets import SecretStore

GC_GEN0_THRESHOLD = 7000  # allocations between young collections (CPython's default is 700)

THEME = Theme(
    name="nanochat",
    primary="#4fb3a9",
    secondary="#7aa2f7",
    accent="#e0af68",
    warning="#e0af68",
    error="#f7768e",
    success="#9ece6a",
    foreground="#d8dee9",
    background="#15171c",
    surface="#1d2027",
    panel="#262a33",
    dark=True,
)


def _commands_provider() -> type:
    from nanochat_cli.commands import NanochatCommands  # textual.command is only needed once Ctrl+P is pressed

    return NanochatCommands


def _screen_factory(name: str) -> Callable[[], Screen]:
    """Import a screen module only when its tab is first opened (keeps start-up light)."""

    def make() -> Screen:
        from importlib import import_module

        module = import_module(f"nanochat_cli.screens.{name}")
        return getattr(module, f"{SCREENS[name]}Screen")()

    return make


class NanochatApp(ConfigActions, RunActions, TokenActions, App[None]):
    CSS_PATH = Path(__file__).with_name("app.tcss")  # absolute, so subclasses elsewhere find it too
    TITLE = "nanochat-cli"
    MODES = {name: _screen_factory(name) for name in SCREENS}
    COMMANDS = App.COMMANDS | {_commands_provider}
    BINDINGS = [
        *(Binding(str(i), f"show_screen('{name}')", label, group=Binding.Group("Tabs", compact=True))
          for i, (name, label) in enumerate(SCREENS.items(), start=1)),
        # F2.. reach the other tabs from inside a text box too; F1 is help, as in most terminal apps
        *(Binding(f"f{i}", f"show_screen('{name}')", label, show=False)
          for i, (name, label) in enumerate(SCREENS.items(), start=1) if i > 1),
        Binding("f1", "toggle_help", "Keys", show=False, priority=True),
        Binding("question_mark", "toggle_help", "Keys", show=False),  # a text box types it instead
        # priority: Escape closes the help panel before a screen's own Escape (Chat's stop) sees it
        Binding("escape", "hide_help", "Close keys", show=False, priority=True),
        Binding("ctrl+t", "auth", "Tokens"),
        Binding("t", "launch_run", "Train", tooltip="Launch this config and watch it on the Train tab"),
        Binding("ctrl+q", "quit", "Quit", priority=True),
    ]

    status: var[StatusInfo] = var(StatusInfo())
    config_rev: var[int] = var(0)  # bumped on every config change; the Config screen redraws on it
    # the run the Train tab shows; a launch or the runs list sets it (every time: a resumed run re-attaches)
    active_run: var[str | None] = var(None, always_update=True)
    services_ready: var[bool] = var(False)  # plugins, secrets and the edit session are loaded (`services`)

    def __init__(self, *, machine: Any = None, secrets: SecretStore | None = None,
                 base_dir_label: str | None = None, config_dir_label: str | None = None,
                 clock: Callable[[], float] | None = None, online_checks: bool = True,
                 start_run: Any = None, start_config: dict[str, Any] | None = None,
                 start_pipeline: Any = None, defer_services: bool = False) -> None:
        """Arguments exist for deterministic snapshots/tests: a given MachineInfo instead of probing this
        machine, a given secret store, fixed labels for the base/config dirs in displayed paths, a frozen
        log clock, and no network checks of tokens. `start_run` (a LaunchSpec, resolved from `start_config`) is
        launched at start on the Train tab (`nanochat-cli train` on a terminal); `start_pipeline` (a
        services.pipeline.Pipeline) is run stage by stage, each stage shown there (`nanochat-cli pipeline`).
        `defer_services`: load plugins, prefabs and secrets right after the first paint instead of now
        (what `run_app` does when the first tab is Config, the one tab that can paint without them). Raises
        AppError for a broken state file (and for a broken prefab or plugin settings file unless deferred:
        then the app exits with code 2 and `startup_error` says why)."""
        self.config_dir = paths.user_config_dir()
        self.base_dir = paths.base_dir()
        self.state_path = paths.state_path()
        state = load_state(self.state_path)
        self.DEFAULT_MODE = state.screen if state.screen in SCREENS else "config"  # first tab = last used
        if start_run is not None or start_pipeline is not None:
            self.DEFAULT_MODE = "train"
        self.start_run, self.start_config = start_run, start_config
        self.pipeline: Any = start_pipeline  # the pipeline this app runs, if any
        self._state, self._given_secrets = state, secrets
        self._services: AppServices | None = None
        self._mounted = False
        self.startup_error: str | None = None
        self.plugin_screens: dict[str, Any] = {}  # plugin screens, after the tabs on keys 6..9 (once loaded)
        self._orchestrator: Any = None
        self.launched: dict[str, Any] = {}  # run name -> (LaunchSpec, resolved config) for runs started here
        super().__init__()
        # what Textual prints on exit (the crash traceback, panics) goes through the secret mask
        self.error_console = Console(markup=False, highlight=False, file=MaskingStream(lambda: sys.stderr))
        self._labels = {self.base_dir: base_dir_label, self.config_dir: config_dir_label}
        self.machine = machine  # MachineInfo once known (given, or probed after the first paint)
        self.wandb_key_set: bool | None = None  # known after the first paint (the keyring can be slow)
        self.online_checks = online_checks
        self.register_theme(THEME)
        self.theme = "nanochat"  # before the first screen is styled: a later switch restyles every widget
        self.app_log: AppLog = setup_logging(paths.logs_dir(), debug=state.debug, clock=clock)
        self.crash_path: Path | None = None
        self._crash_error: BaseException | None = None  # what _fatal_error prints (masked)
        if not (defer_services and self.DEFAULT_MODE == "config"):
            self._load_services()
        stamp("app built (state, log, theme)")

    def _add_plugin_screens(self) -> None:
        """Each plugin screen becomes a mode like the tabs (built when first opened), with the next number key."""
        from functools import partial

        from nanochat_cli.screens.plugin import make_plugin_screen
        from nanochat_cli.services.registry import REGISTRY

        for entry in REGISTRY.screens():
            if entry.name in self.plugin_screens:
                continue
            key = len(SCREENS) + len(self.plugin_screens) + 1
            self.plugin_screens[entry.name] = entry
            self.add_mode(entry.name, partial(make_plugin_screen, entry, self._error))
            if key <= 9:
                self.bind(str(key), f"show_screen('{entry.name}')", description=entry.title, show=False)

    # ---- services (loaded after the first paint, or on first use before it) -----------------------
    @property
    def services(self) -> AppServices:
        if self._services is None:
            self._load_services()
        assert self._services is not None
        return self._services

    @property
    def session(self) -> ConfigSession:
        return self.services.session

    @property
    def secrets(self) -> SecretStore:
        return self.services.secrets

    @property
    def plugin_report(self) -> PluginReport:
        return self.services.plugin_report

    def _load_services(self) -> None:
        self._services = load_app_services(self._state, self.state_path, self._given_secrets)
        self._add_plugin_screens()  # plugins are loaded now
        stamp("services loaded (plugins, prefabs, secrets)")
        self.services_ready = True  # (the Config tab composes its content now, or fills in if it showed)
        if self._mounted:  # else on_mount says what loading found
            self._services_loaded()

    def _services_loaded(self) -> None:
        """Say what loading found (restore notices, broken plugins), then let the screens fill in."""
        log_event("app started", version=__version__, screen=self.current_mode, prefab=self.session.prefab,
                  overrides=len(self.session.overrides))
        for note in self.session.notices:
            self.notify(note, severity="warning", timeout=8)
            log_event(note, level=logging.WARNING)
        for name, error in self.plugin_report.failed:
            self._error(f"plugin {name} disabled: {error}")
        self._update_status(mode=self.session.launch_mode())
        if self.start_run is not None:
            self.launch_run(self.start_run, self.start_config)
        if self.pipeline is not None:
            self.run_pipeline(self.pipeline)

    # ---- start-up ------------------------------------------------------------------------------
    def on_mount(self) -> None:
        stamp("first screen composed + mounted")
        self._mounted = True
        self._update_status(screen=self.current_mode, debug=self.app_log.debug,
                            machine=machine_summary(self.machine) if self.machine else "…")
        if self._services is not None:
            self._services_loaded()
        self.call_after_refresh(self._after_first_paint)

    def _after_first_paint(self) -> None:
        stamp("first paint")
        if self._services is None:
            try:
                self._load_services()
            except USER_ERRORS as e:  # a broken prefab or plugin settings file: one line, as before the UI
                self.startup_error = str(e)
                self.exit(return_code=2)
                return
        if bench_requested():  # bench/startup.py: exit once the filled first tab is on screen too
            self.call_after_refresh(self._bench_report)
            return
        # the start-up heap (modules, the first screen) lives as long as the app: keep it out of full garbage
        # collections, and collect less often (Textual and the ingest thread allocate fast), so collection
        # pauses stay short and rare while telemetry streams in (bench/ui_bench.py: 40 full collections of
        # ~50 ms in 30 s with the defaults, one with these)
        gc.freeze()
        gc.set_threshold(GC_GEN0_THRESHOLD, *gc.get_threshold()[1:])
        self.run_worker(self._probe, thread=True, exclusive=True, group="probe")

    def _bench_report(self) -> None:
        stamp("first tab filled + painted")
        write_bench_report()
        self.exit()

    def _probe(self) -> None:
        """Slow-ish lookups (NVML, keyring) off the UI thread; the status bar fills in when they finish."""
        if self.machine is None:
            from nanochat_cli.services.config.guardrails import detect_machine

            try:
                self.machine = detect_machine()
            except Exception as e:  # NVML/psutil trouble must not take the UI down; say so instead
                self.call_from_thread(self._error, f"machine probe failed ({type(e).__name__}: {e}): guardrails "
                                                   "are off until restart")
        self._check_wandb_key()
        self.call_from_thread(self._probed)

    def _check_wandb_key(self) -> None:
        """On a worker thread: whether a W&B key is stored (the status bar says so); a store error is a toast."""
        try:
            self.wandb_key_set = self.secrets.is_set("wandb_api_key")
        except USER_ERRORS as e:
            self.call_from_thread(self._error, str(e))

    def _probed(self) -> None:
        self._update_status(machine=machine_summary(self.machine) if self.machine else "unknown",
                            wandb=self._wandb_text())
        self.config_rev += 1  # guardrails can now be checked against the machine

    def _wandb_text(self) -> str:
        if self.wandb_key_set is None:
            return "…"
        return f"{'key set' if self.wandb_key_set else 'key not set'} · {self.session.wandb_mode()}"

    def _update_status(self, **changes: Any) -> None:
        self.status = replace(self.status, **changes)

    async def on_event(self, event: events.Event) -> None:
        # on a busy machine a dialog shows late: keys typed before it was drawn are not answers to it
        top = self.screen_stack[-1] if isinstance(event, events.Key) and self.screen_stack else None
        typed_before_shown = getattr(top, "typed_before_shown", None)
        if typed_before_shown is not None:
            before = typed_before_shown(event)
            if before is None and not event.is_forwarded:  # drawn or not? ask again after the next frame
                self.call_after_refresh(self.post_message, event)
                return
            if before is not False:  # (a key coming back from the screen below was typed before the dialog)
                log_event("key typed before the dialog showed: dropped", level=logging.DEBUG, key=event.key)
                return
        await super().on_event(event)

    # ---- navigation ------------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("auth", "launch_run", "save_as", "reset_all") and not self.services_ready:
            return False  # a key pressed in the moment between the first paint and the services loading
        if action in ("show_screen", "auth", "launch_run") and isinstance(self.screen, ModalScreen):
            return False  # finish the dialog first
        if action == "launch_run":
            return self.current_mode == "config"  # the Train key belongs to the Config tab
        if action == "hide_help":
            return self.help_shown  # otherwise Escape goes on to the screen (closing a dialog, stopping a reply)
        return True

    def action_show_screen(self, name: str) -> None:
        if (name not in SCREENS and name not in self.plugin_screens) or isinstance(self.screen, ModalScreen):
            return
        self.switch_mode(name)
        self.session.set_screen(name)
        self._update_status(screen=name)
        log_event("screen", level=logging.DEBUG, screen=name)

    # ---- help (the keys panel; the palette's "Keys" command opens the same one) ------------------
    @property
    def help_shown(self) -> bool:
        return bool(self.screen.query("HelpPanel"))

    def action_toggle_help(self) -> None:
        if self.help_shown:
            self.action_hide_help_panel()
        else:
            self.action_show_help_panel()

    def action_hide_help(self) -> None:
        self.action_hide_help_panel()

    def switch_mode(self, mode: str) -> AwaitMount:
        # a tab keeps its widgets while hidden: the help panel must not be among them on the way back
        for screen in self.screen_stack:
            screen.query("HelpPanel").remove()
        return super().switch_mode(mode)

    def action_toggle_debug(self) -> None:
        on = not self.app_log.debug
        self.app_log.set_debug(on)
        self.session.set_debug(on)
        self._update_status(debug=on)
        self.notify(f"Debug log {'on' if on else 'off'}")

    # ---- config changes (Config screen and command palette) ----------------------------------------
    def _error(self, message: str) -> None:
        log_event(message, level=logging.ERROR)
        # errors quote what a run, a file or a plugin wrote: data, never markup or raw control codes
        self.notify(printable(message), severity="error", timeout=8, markup=False)

    def show_path(self, path: Path) -> str:
        """A path for display: under a labelled dir it starts with that label, else home becomes ~."""
        for root, label in self._labels.items():
            if label is not None and (path == root or root in path.parents):
                return str(Path(label) / path.relative_to(root))
        home = Path.home()
        return "~/" + str(path.relative_to(home)) if home in path.parents else str(path)

    def _handle_exception(self, error: Exception) -> None:
        # Textual's hook for uncaught exceptions: leave a crash dump before it shuts the app down
        self._crash_error = error
        try:
            from nanochat_cli.services.crash import write_crash_dump

            self._learn_secrets()
            self.crash_path = write_crash_dump(error, self._state, self.app_log.path)
            log_event("crashed", level=logging.CRITICAL, error=repr(error), dump=str(self.crash_path))
        except Exception as dump_error:  # the crash report must never hide the crash itself
            print(f"nanochat-cli: could not write a crash dump: {mask(str(dump_error))}", file=sys.stderr)
        super()._handle_exception(error)

    def _fatal_error(self) -> None:
        # Textual prints a traceback with local variables after exit. Locals and the exception's message may
        # hold a token: print the plain traceback, built from a copy with the known secrets masked.
        import rich
        from rich.segment import Segments
        from rich.traceback import Traceback

        self.bell()
        error = self._crash_error or sys.exc_info()[1]
        trace = Traceback.extract(type(error), error, error.__traceback__, show_locals=False) if error else None
        tb = Traceback(mask_data(trace) if trace else None, show_locals=False, width=None, suppress=[rich])
        self._exit_renderables.append(Segments(self.console.render(tb, self.console.options)))
        self._close_messages_no_wait()

    def _learn_secrets(self) -> None:
        """Read the stored secrets so the masker knows them (it knows those read earlier, and the env's)."""
        if self._services is None:  # nothing read yet: the masker knows the env's values already
            return
        try:
            for name in ("wandb_api_key", "hf_token"):
                self.secrets.get(name)
        except Exception:  # a broken keyring must not stop the crash dump; known and env values are still masked
            pass


def machine_summary(machine: Any) -> str:
    """'2× NVIDIA H100 80GB HBM3' when NVML sees GPUs, else 'CPU ×N'."""
    if machine.gpus:
        names = {g.name for g in machine.gpus}
        return f"{len(machine.gpus)}× {names.pop()}" if len(names) == 1 else f"{len(machine.gpus)} GPUs (mixed)"
    return f"CPU ×{machine.cpu_count}"


def run_app(start_run: Any = None, start_config: dict[str, Any] | None = None, start_pipeline: Any = None) -> int:
    """Run the TUI (launching `start_run`, a LaunchSpec, on the Train tab); returns the process exit code.
    After a crash, says where the dump is."""
    try:
        app = NanochatApp(start_run=start_run, start_config=start_config, start_pipeline=start_pipeline,
                          defer_services=True)
    except USER_ERRORS as e:
        print(f"nanochat-cli: {e}", file=sys.stderr)
        return 2
    app.run()
    app.app_log.close()
    if app.startup_error is not None:
        print(f"nanochat-cli: {app.startup_error}", file=sys.stderr)
        return 2
    if app.crash_path is not None:
        print(f"nanochat-cli crashed; details (traceback, UI state, no secrets) in {app.crash_path}",
              file=sys.stderr)
    return app.return_code or 0
