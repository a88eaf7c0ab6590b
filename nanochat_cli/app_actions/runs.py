"""Runs and pipelines started from the app: launch the Config tab's config (or a LaunchSpec from the
palette, the Checkpoints tab, `nanochat-cli train`), run a pipeline stage by stage, show its report."""

from __future__ import annotations

from typing import Any

from textual.screen import ModalScreen

from nanochat_cli.app_actions.shell import Shell
from nanochat_cli.errors import USER_ERRORS
from nanochat_cli.logging_setup import log_event


class RunActions(Shell):
    @property
    def orchestrator(self) -> Any:
        """The RunOrchestrator for <base>/runs (made on first use: start-up stays light)."""
        if self._orchestrator is None:
            from nanochat_cli.services.runs import RunOrchestrator

            self._orchestrator = RunOrchestrator(self.base_dir)
        return self._orchestrator

    def action_launch_run(self) -> None:
        """Launch the Config tab's current config (prefab + overrides), if it validates."""
        problems = self.session.problems()
        if problems:
            self._error(f"Fix {len(problems)} problem(s) before launching: {problems[0]}")
            return
        from nanochat_cli.services.runs import spec_from_resolved

        if self.session.current.get("run.stage") == "eval":  # two modules, one after the other: a pipeline
            from nanochat_cli.services.pipeline import Pipeline, StagePlan

            current = dict(self.session.current)
            pipe = Pipeline.open(self.base_dir, self.orchestrator, self.session.prefab,
                                 [StagePlan("eval", self.session.prefab, current)], new=True)
            self.pipeline = pipe
            self.run_pipeline(pipe)
            return
        try:
            spec = spec_from_resolved(self.session.current)
        except USER_ERRORS as e:
            self._error(str(e))
            return
        self.launch_run(spec, dict(self.session.current))

    def launch_run(self, spec: Any, resolved: dict[str, Any] | None = None) -> None:
        """Start `spec` (a LaunchSpec) off the UI thread, then show it on the Train tab; the final run name is
        toasted. The Config tab, the palette, the Checkpoints tab and `nanochat-cli train` all launch here."""
        wanted = spec.config.run

        def start() -> None:
            try:
                info = self.orchestrator.launch(spec, self.secrets)
            except (*USER_ERRORS, OSError) as e:
                self.call_from_thread(self._error, f"launch failed: {e}")
                return
            self.call_from_thread(started, info)

        def started(info: Any) -> None:
            self.launched[info.name] = (spec, resolved)
            log_event("run launched", run=info.name, command=info.command)
            taken = f" ({wanted} was taken)" if info.name != wanted else ""
            self.notify(f"Started run {info.name}{taken}")
            self.active_run = info.name
            self.action_show_screen("train")

        self.run_worker(start, thread=True, group="launch")

    def run_pipeline(self, pipe: Any) -> None:
        """Run what is left of `pipe` on a worker thread, showing each stage's run on the Train tab as it starts;
        the report opens when it ends. Quitting starts nothing more (the stage running goes on, as runs do)."""
        import time

        from nanochat_cli.services.pipeline import write_report

        def launch(spec: Any) -> None:
            info = pipe.orch.launch(spec, self.secrets)
            self.call_from_thread(self._show_stage, info.name, spec)
            while pipe.orch.poll(info.name) is None and not pipe.stopped:
                time.sleep(0.2)

        def work() -> None:
            try:
                record = pipe.run(launch)
                write_report(pipe.dir, record, pipe.orch.runs_dir, pipe.base)
            except (*USER_ERRORS, OSError) as e:
                self.call_from_thread(self._error, f"pipeline {pipe.name}: {e}")
                return
            self.call_from_thread(self._pipeline_done, pipe, record.status)

        self.run_worker(work, thread=True, group="pipeline")

    def _show_stage(self, name: str, spec: Any) -> None:
        self.launched[name] = (spec, None)
        self.notify(f"Pipeline stage {spec.stage}: {spec.module} started as run {name}")
        self.active_run = name
        self.action_show_screen("train")

    def _pipeline_done(self, pipe: Any, status: str) -> None:
        from nanochat_cli.screens.report import ReportScreen

        self.notify(f"Pipeline {pipe.name} {status}" + ("" if status == "finished" else
                                                         ": run the same command again to continue"),
                    severity="information" if status == "finished" else "warning")
        text = pipe.dir.report()
        if text is not None and not isinstance(self.screen, ModalScreen):
            self.push_screen(ReportScreen(pipe.name, text, self.show_path(pipe.dir.report_path)))

    def show_report(self, run: str | None = None) -> None:
        """The report of the pipeline that ran `run` (else the newest pipeline), or a line saying there is none."""
        from nanochat_cli.screens.report import ReportScreen
        from nanochat_cli.services.pipeline.state import find_report

        pdir = find_report(self.base_dir, run)
        text = pdir.report() if pdir is not None else None
        if pdir is None or text is None:
            self.notify("No pipeline report yet: run nanochat-cli pipeline --prefab cpu-tiny (its report shows here)",
                        severity="warning")
            return
        self.push_screen(ReportScreen(pdir.name, text, self.show_path(pdir.report_path)))

    def on_unmount(self) -> None:
        if self.pipeline is not None:
            self.pipeline.stop()
