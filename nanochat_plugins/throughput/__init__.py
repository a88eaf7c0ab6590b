"""Throughput plugin: watch tokens/s and MFU, and warn when they fall below floors set in the run config.

It adds a "throughput" config category (so the floors live in prefabs and `--set throughput.min_mfu=0.3`),
two panels that read metrics the engine already reports in its step events, and a "throughput" layout.
The panels' thresholds name the config keys, so the TUI compares against the run's own values.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from nanochat_cli.plugin_api import Layout, PanelSpec, Registry, Thresholds


class ThroughputConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    min_tokens_per_sec: float = Field(0.0, ge=0, description="warn when throughput (all ranks) drops below this; "
                                                             "0 = off")
    min_mfu: float = Field(0.0, ge=0, le=1, description="warn when model FLOPs utilization drops below this fraction; "
                                                        "0 = off (MFU is only reported on GPUs with a known peak)")


PANELS = [
    PanelSpec(id="throughput", title="Throughput", kind="chart", metrics=["tokens_per_sec"], refresh_hz=2,
              thresholds=Thresholds(min={"tokens_per_sec": "throughput.min_tokens_per_sec"}),
              help="tokens per second over all ranks, per step; warns below throughput.min_tokens_per_sec"),
    PanelSpec(id="efficiency", title="Efficiency", kind="stats", metrics=["mfu", "tokens_per_sec", "dt", "mem_bytes"],
              refresh_hz=1, thresholds=Thresholds(min={"mfu": "throughput.min_mfu"}),
              help="latest MFU, tokens/s, step time and peak memory; warns below throughput.min_mfu"),
]

LAYOUT = {
    "name": "throughput",
    "description": "where the time goes: throughput, efficiency, step-time breakdown, machine",
    "screens": [{"id": "throughput", "title": "Throughput", "columns": 2, "panels": [
        {"panel": "progress", "width": 2},
        {"panel": "throughput", "height": 2},
        {"panel": "efficiency"},
        {"panel": "step_time"},
        {"panel": "system", "width": 2},
    ]}],
}


def register(registry: Registry) -> None:
    registry.register_category("throughput", ThroughputConfig, "throughput and MFU alert floors")
    for spec in PANELS:
        registry.register_panel(spec)
    registry.register_layout("throughput", Layout.parse(LAYOUT, registry))
