"""What the Train screen's run keys do: save now, patch, stop, show the torchrun command, show why a run failed, and
toast the engine's answers to our requests.

A controller the screen owns. It reads the run the screen is attached to through `RunHost` (the attached LiveRun,
its last Liveness, a way to re-check the status) and shows its dialogs on the app; it keeps no run state itself.
"""

from __future__ import annotations

from typing import Any, Protocol

from nanochat_cli.errors import USER_ERRORS, AppError
from nanochat_cli.logging_setup import log_event
from nanochat_cli.screens.confirm import ConfirmScreen
from nanochat_cli.screens.run_modals import CommandScreen, CrashScreen, PatchScreen, node_commands
from nanochat_cli.services.runs import RunInfo, per_node_commands, preview_commands, spec_from_resolved
from nanochat_cli.services.runs.live import Liveness, LiveRun
from nanochat_cli.services.text import printable


class RunHost(Protocol):
    """What RunActions needs of the screen."""

    live: LiveRun | None
    liveness: Liveness | None

    @property
    def napp(self) -> Any: ...  # the NanochatApp (not imported here: the app sits above the screens)

    def refresh_status(self) -> None: ...

    def run_worker(self, work: Any, *args: Any, **kw: Any) -> Any: ...


class RunActions:
    def __init__(self, host: RunHost) -> None:
        self.host = host

    @property
    def app(self) -> Any:
        return self.host.napp

    def _running(self, what: str) -> LiveRun | None:
        """The attached run if it is alive, else a toast saying why `what` can't be done."""
        live = self.host.live
        if live is None:
            self.app.notify(f"No run to {what}: launch one with t on the Config tab", severity="warning")
            return None
        if not live.alive():
            status = self.host.liveness.status if self.host.liveness else "not running"
            self.app.notify(f"Run {live.name} is {status}: nothing to {what}", severity="warning", markup=False)
            return None
        return live

    def _request(self, live: LiveRun, kind: str, changes: dict[str, Any] | None = None) -> str | None:
        try:
            return live.request(kind, changes)
        except USER_ERRORS as e:
            self.app._error(str(e))
            return None

    def save_now(self) -> None:
        live = self._running("save")
        if live is not None and self._request(live, "save_now"):
            self.app.notify(f"Save requested: {live.name} checkpoints at the next step", markup=False)

    def patch(self) -> None:
        live = self._running("patch")
        if live is None:
            return

        def send(changes: dict[str, Any] | None) -> None:
            if changes and self._request(live, "patch", changes):
                shown = ", ".join(f"{k}={v}" for k, v in changes.items())
                self.app.notify(printable(f"Patch sent: {shown}; waiting for the engine's answer"), markup=False)
                log_event("patch sent", run=live.name, **changes)

        self.app.push_screen(PatchScreen(live.name, live.hot_values(), live.engine_config()), send)

    def stop(self) -> None:
        live = self._running("stop")
        if live is None:
            return
        step = live.store.run_state().step

        def answer(yes: bool | None) -> None:
            if yes:
                live.stopping = True
                self.host.refresh_status()
                self.host.run_worker(lambda: self._stop(live), thread=True, group="stop")

        self.app.push_screen(ConfirmScreen(f"Stop run {live.name} at step {step}? It saves a checkpoint, then exits "
                                           "(signals follow if it does not within a minute).", "Stop"), answer)

    def _stop(self, live: LiveRun) -> None:
        """Worker thread: ask the run to stop and wait until every process of it has gone."""
        try:
            result = self.app.orchestrator.stop(live.name)
        except USER_ERRORS as e:
            self.app.call_from_thread(self.app._error, str(e))
            return
        finally:
            live.stopping = False
        log_event("run stop", run=live.name, exit_code=result.exit_code, survivors=list(result.survivors))
        if not result.stopped:
            self.app.call_from_thread(self.app._error, f"Run {live.name} NOT stopped: pid(s) "
                                      f"{', '.join(map(str, result.survivors))} outlived SIGKILL")
            return
        code = result.exit_code
        self.app.call_from_thread(self.app.notify, f"Run {live.name} stopped" +
                                  (f" (exit code {code})" if code is not None else ""), markup=False)

    def command(self) -> None:
        live = self.host.live
        if live is not None and live.spec is not None:
            commands = per_node_commands(live.spec, live.run.config_path)
        elif live is not None and live.record.get("command"):
            commands = node_commands(live.record["command"], int(live.record.get("nnodes", 1)))
        else:
            self._config_command()
            return
        note = "run this on each node, node 0 first" if len(commands) > 1 else f"run {live.name}, as launched"
        self.app.push_screen(CommandScreen(f"torchrun command: {live.name}", commands, note))

    def _config_command(self) -> None:
        """No launched run to show: the command the Config tab's config would run."""
        s = self.app.session
        try:
            if s.issues:
                raise AppError(f"config: {s.issues[0].message}")
            spec = spec_from_resolved(s.current)
        except USER_ERRORS as e:
            self.app._error(str(e))
            return
        self.app.push_screen(CommandScreen(f"torchrun command: prefab {s.prefab}", preview_commands(spec),
                                           "the config as engine flags: runs as is, from any directory"))

    def error_details(self) -> None:
        live = self.host.live
        if live is not None and live.final is not None and live.final.status in ("failed", "crashed"):
            self.show_crash(live.final)
        else:
            self.app.notify("The attached run has not failed", severity="warning")

    def show_crash(self, info: RunInfo) -> None:
        try:
            stderr = self.app.orchestrator.stderr_tail(info.name, lines=30)
        except USER_ERRORS:
            stderr = ""
        error = printable(info.error, newlines=False) if info.error else None  # run text: shown, never obeyed
        self.app.push_screen(CrashScreen(info.name, info.status, info.exit_code, error, printable(stderr),
                                         printable(info.command)))

    def report_acks(self) -> None:
        """Toast the engine's answers to requests sent from here (others' answers show in the Events panel)."""
        live = self.host.live
        if live is None:
            return
        for ack, ours in live.take_acks():
            if ours:
                verdict = "accepted" if ack.ok else "rejected"
                self.app.notify(printable(f"{ack.kind} {verdict}: {ack.message}", newlines=False), markup=False,
                                severity="information" if ack.ok else "error", timeout=6)
                log_event("control ack", run=live.name, kind=ack.kind, ok=ack.ok, message=ack.message)
