"""What the WGSL plugin adds to the app: the "wgsl" config category, the validity/correctness telemetry source
and panels, and a layout for WGSL runs. Plain Python on the public plugin API (no Textual here).

Telemetry: a WGSL run's rank 0 emits `plugin` events `{plugin: "wgsl", kind: "samples", step, data}` on its
sample steps (docs/wgsl.md lists the fields). The source turns them into the series `wgsl.validity` and
`wgsl.correctness` (percent of the sampled prompts whose shader validates / matches its numpy reference).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from nanochat_cli.plugin_api import Layout, MetricPoint, PanelSpec, SourceHealth, ThreadedSource, Thresholds

PLUGIN = "wgsl"
TELEMETRY_FILE = "telemetry.jsonl"
MAX_READ = 1 << 20


class WgslCategory(BaseModel):
    """The "wgsl" config category: alert floors for the Train panel and generation defaults for Chat."""

    model_config = ConfigDict(extra="forbid")
    min_validity: float = Field(0.0, ge=0, le=100, description="warn when the sampled shaders' validity (%) drops "
                                                               "below this; 0 = off")
    min_correctness: float = Field(0.0, ge=0, le=100, description="warn when their correctness (%) drops below "
                                                                  "this; 0 = off")
    beam: int = Field(1, ge=1, le=16, description="beams when the Chat mode writes a shader (1 = greedy)")
    retries: int = Field(3, ge=1, le=32, description="candidates tried until one validates (Chat mode)")
    max_new_tokens: int = Field(0, ge=0, le=65536, description="most tokens per shader (0 = what the context "
                                                               "leaves)")
    run_timeout_s: float = Field(10.0, gt=0, le=600, description="seconds a shader may run before it is killed")


def points_of(event: dict[str, Any]) -> list[MetricPoint]:
    """The series points in one telemetry event (nothing unless it is a wgsl `samples` event)."""
    if event.get("event") != "plugin" or event.get("plugin") != PLUGIN or event.get("kind") != "samples":
        return []
    data, step = event.get("data") or {}, event.get("step")
    if not isinstance(data, dict) or not isinstance(step, int | float):
        return []
    out = []
    for key in ("validity", "correctness"):
        value = data.get(key)
        if isinstance(value, int | float):
            out.append(MetricPoint(f"wgsl.{key}", float(step), 100.0 * float(value)))
    return out


class WgslSamplesSource(ThreadedSource):
    """Reads a run's telemetry.jsonl for the plugin's events (complete lines only, 1 MiB per call)."""

    name = "wgsl"
    poll_s = 1.0

    def __init__(self, run_dir: str | Path):
        super().__init__()
        self.path = Path(run_dir) / TELEMETRY_FILE
        self.offset = 0
        self.malformed = 0

    def read_available(self) -> list[MetricPoint]:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read(MAX_READ)
        except FileNotFoundError:
            return []
        end = data.rfind(b"\n") + 1
        self.offset += end
        points: list[MetricPoint] = []
        for line in data[:end].splitlines():
            if b'"plugin"' not in line:  # cheap skip of the step events
                continue
            try:
                event = json.loads(line)
            except ValueError:
                self.malformed += 1
                continue
            if isinstance(event, dict):
                points.extend(points_of(event))
        return points

    def health(self) -> SourceHealth:
        return SourceHealth(self.name, self._state, self.malformed, self._error, detail=str(self.path))


PANELS = [
    PanelSpec(id="wgsl_rates", title="WGSL samples: valid / correct %", kind="chart",
              metrics=["wgsl.validity", "wgsl.correctness"], refresh_hz=1,
              thresholds=Thresholds(min={"wgsl.validity": "wgsl.min_validity",
                                         "wgsl.correctness": "wgsl.min_correctness"}),
              help="percent of the held-out prompts sampled on each sample step whose shader naga accepts, and "
                   "whose run matches the numpy reference"),
    PanelSpec(id="wgsl_stats", title="WGSL latest", kind="stats", metrics=["wgsl.validity", "wgsl.correctness",
                                                                           "loss", "val_bpb"], refresh_hz=1),
]

LAYOUT = {
    "name": "wgsl",
    "description": "WGSL training: loss, shader validity and correctness, samples",
    "screens": [{"id": "wgsl", "title": "WGSL", "columns": 2, "panels": [
        {"panel": "progress", "width": 2},
        {"panel": "loss"},
        {"panel": "wgsl_rates"},
        {"panel": "wgsl_stats"},
        {"panel": "val_bpb"},
        {"panel": "samples", "width": 2},
    ]}],
}


def register(registry: Any) -> None:
    registry.register_category(PLUGIN, WgslCategory, "NL -> WGSL: alert floors and generation defaults")
    registry.register_telemetry_source(PLUGIN, WgslSamplesSource, "validity and correctness of sampled shaders")
    for spec in PANELS:
        registry.register_panel(spec)
    registry.register_layout(PLUGIN, Layout.parse(LAYOUT, registry))
