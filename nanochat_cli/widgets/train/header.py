"""The line above the dashboards: the attached run, its status and why, telemetry trouble, W&B / OTLP health, and the
layout in use."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from nanochat_cli.services.ingest.store import StoreSnapshot
from nanochat_cli.services.text import printable

STATUS_STYLE = {"running": "success", "starting": "accent", "stopping": "accent", "ending": "accent",
                "hung": "warning", "failed": "error", "crashed": "error", "finished": "primary",
                "stopped": "primary", "unknown": "warning"}


class RunHeader(Static):
    def __init__(self) -> None:
        super().__init__("", id="run-header", markup=False)

    def show(self, run: str, status: str, detail: str, snap: StoreSnapshot, layout: str) -> None:
        theme = self.app.theme_variables
        colour = theme.get(STATUS_STYLE.get(status, ""), "")
        text = Text.assemble(("● ", colour), (printable(run, newlines=False), "bold"), "  ", (status, f"bold {colour}"),
                             "  ", (detail, "dim"))
        if snap.counters.malformed:  # run text (names, errors, URLs) is made printable: shown, never obeyed
            text.append(printable(f"  │ {snap.counters.malformed} malformed telemetry line(s) skipped: "
                                  f"{snap.counters.last_error}", newlines=False), style=theme.get("warning", ""))
        for sink in snap.sinks.values():  # W&B / OTLP as the engine reports them (disabled ones are not news)
            if sink.state != "disabled":
                style = "" if sink.state in ("ok", "configured") else theme.get("warning", "")
                text.append(printable(f"  │ {sink.name} {sink.state}" + (f" {sink.url}" if sink.url else ""),
                                      newlines=False), style=style)
        if layout:
            text.append(f"  │ layout {layout}", style="dim")
        self.update(text)
