"""The baseline for bench/startup.py: a bare Textual app with a header, a footer and five tabs, reporting its
first paint the way nanochat-cli does (same env hooks, same JSON). Run by bench/startup.py, not by hand."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from textual.app import App, ComposeResult
from textual.widgets import Footer, Header, Static, TabbedContent, TabPane


class BareApp(App[None]):
    BINDINGS = [(str(i), f"show_tab('t{i}')", f"Tab {i}") for i in range(1, 6)]

    def compose(self) -> ComposeResult:
        yield Header()
        with TabbedContent():
            for i in range(1, 6):
                with TabPane(f"Tab {i}", id=f"t{i}"):
                    yield Static(f"tab {i}")
        yield Footer()

    def action_show_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab

    def on_mount(self) -> None:
        self.call_after_refresh(self._painted)

    def _painted(self) -> None:
        t0 = float(os.environ["NANOCHAT_CLI_BENCH_T0"])
        Path(os.environ["NANOCHAT_CLI_BENCH_OUT"]).write_text(json.dumps(
            {"elapsed_s": time.time() - t0, "cpu_s": time.process_time(), "paint_cpu_s": time.process_time(),
             "phases": {}}
            | {m: m in sys.modules for m in ("torch", "wandb", "opentelemetry")}))
        self.exit()


if __name__ == "__main__":
    BareApp().run()
