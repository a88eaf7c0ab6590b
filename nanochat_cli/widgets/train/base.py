"""The frame every dashboard panel shares: title, selection, its own refresh rate, and threshold alerts.

A panel repaints only when the store keys it reads changed since it last painted, and at most
`refresh_hz` times a second: data that arrives sooner is coalesced into one paint when the interval
is up, so a 2,000 events/s stream costs a chart a few paints a second. Hidden panels (another tab,
another screen) are skipped; the screen forces a paint when they show again.

Panels are selected (click, Tab) rather than focused: the layout editor acts on the selected panel, and
switching dashboard tabs moves no focus, so the footer is not rebuilt on every switch.
"""

from __future__ import annotations

import math
import time
from typing import Any

from rich.text import Text
from textual.containers import Vertical
from textual.events import Click
from textual.message import Message
from textual.timer import Timer
from textual.widgets import Static

from nanochat_cli.services.panels import Alert, PanelSpec, check_thresholds
from nanochat_cli.services.runs.live import LiveRun


class Panel(Vertical):
    """Subclasses implement paint() from `self.store`; the base decides when."""

    class Picked(Message):
        """The user clicked this panel (the screen selects it)."""

        def __init__(self, panel: Panel) -> None:
            super().__init__()
            self.panel = panel

    def __init__(self, spec: PanelSpec, live: LiveRun, config: dict[str, Any] | None = None) -> None:
        super().__init__(id=f"panel-{spec.id}", classes=f"panel panel-{spec.kind}")
        self.spec, self.live = spec, live
        self.config = config  # the run's dotted config, for thresholds that name config keys
        self.painted_version = -1  # store version when this panel last painted
        self.last_paint = -math.inf  # monotonic time of that paint
        self.paints = 0
        self.alerts: list[Alert] = []
        self._timer: Timer | None = None
        self.border_title = spec.title
        self.tooltip = spec.help or None

    @property
    def store(self) -> Any:
        return self.live.store

    @property
    def visible_now(self) -> bool:
        return self.is_mounted and self.screen.is_current and self.is_on_screen

    def dirty(self) -> bool:
        return self.store.changed(self.spec.keys(), self.painted_version)

    def request_paint(self, force: bool = False) -> None:
        """Paint now if the data changed and the refresh interval is up, else once it is."""
        if not self.visible_now or not (force or self.dirty()):
            return
        wait = self.last_paint + 1.0 / self.spec.refresh_hz - time.monotonic()
        if force or wait <= 0:
            self.paint_now()
        elif self._timer is None:
            self._timer = self.set_timer(wait, self._timer_due)

    def _timer_due(self) -> None:
        self._timer = None
        self.request_paint()

    def paint_now(self) -> None:
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        self.painted_version = self.store.version  # read first: what lands while painting paints next time
        self.last_paint = time.monotonic()
        self.paints += 1
        self.paint()
        self.check_alerts()

    def on_click(self, event: Click) -> None:
        self.post_message(self.Picked(self))

    def on_resize(self) -> None:
        self.request_paint(force=True)  # charts decimate to their width

    def paint(self) -> None:
        raise NotImplementedError

    def check_alerts(self, now: float | None = None) -> None:
        """Raise or clear this panel's threshold alerts (the screen calls it each second for stalls)."""
        alerts = check_thresholds(self.spec, self.store, config=self.config, now=now)
        if alerts == self.alerts:
            return
        self.alerts = alerts
        levels = {a.level for a in alerts}
        self.set_class("error" in levels, "-alert-error")
        self.set_class(levels == {"warn"}, "-alert-warn")
        self.border_subtitle = ("⚠ " + alerts[0].message + (f" (+{len(alerts) - 1})" if len(alerts) > 1 else "")
                                if alerts else None)


class MessagePanel(Static):
    """What stands in for a panel that cannot be shown (its plugin failed to load): says why."""

    def __init__(self, panel: str, title: str, message: str) -> None:
        super().__init__(Text(message), id=f"panel-{panel}", classes="panel panel-missing", markup=False)
        self.border_title = title
