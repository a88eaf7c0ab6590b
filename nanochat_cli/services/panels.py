"""Panel specs, layouts (YAML files) and threshold alerts for the live training screens.

A `PanelSpec` says what a panel shows (its kind, the metrics it reads from the MetricStore), how often
it repaints, and when to raise alerts. A `Layout` is named screens, each an ordered grid of panel
placements that may override a panel's refresh rate and thresholds. Layouts are edited while a run
trains (add/remove/move/resize a panel, change its refresh rate) through methods that return a new,
validated layout, and saved as YAML. Built-in panels and the shipped layouts (nanochat_cli/layouts/)
are registered in the plugin registry at import, next to what plugins add; user layouts live in
<user config dir>/layouts/ and shadow a registered layout of the same name. No Textual here.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from engine.safe_yaml import YamlError, load_yaml_file
from engine.shared import atomic_write
from nanochat_cli.errors import AppError
from nanochat_cli.services import paths
from nanochat_cli.services.ingest.store import DEFAULT_CAPACITY, MetricStore
from nanochat_cli.services.ingest.system import SystemProbe
from nanochat_cli.services.lazy_module import LazyModule
from nanochat_cli.services.registry import MISSING, REGISTRY, Registry
from nanochat_cli.services.runs.status import HUNG_KEY

np = LazyModule("numpy")  # imported on first use: ~50 ms the app's first paint does not need

__all__ = ["KINDS", "Alert", "Layout", "LayoutStore", "PanelSpec", "Placement", "LayoutInfo", "ScreenLayout",
           "SystemProbe", "Thresholds", "check_thresholds", "load_layout", "register_builtins", "save_layout"]

# how the UI draws each kind; a plugin panel picks one of these
Kind = Literal["progress", "chart", "stats", "bars", "samples", "log", "system", "rollouts", "results",
               "plugin"]
KINDS: tuple[str, ...] = get_args(Kind)
MAX_HZ = 30.0
_ID_RE = re.compile(r"^[a-z][a-z0-9_]*$")
_LAYOUT_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_KEY_RE = re.compile(r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")  # a config key, "category.field"
SHIPPED_LAYOUTS_DIR = Path(__file__).resolve().parents[1] / "layouts"


def _one_line(where: str, err: ValidationError, data: Any = None, model: type[BaseModel] | None = None) -> AppError:
    """First pydantic error as one line; with the layout's `data`, screens and panels are named by id."""
    first = err.errors()[0]
    parts, node = [], data
    for key in first["loc"]:
        item = node[key] if isinstance(node, (list, dict)) and _has(node, key) else None
        if isinstance(key, int) and isinstance(item, dict) and ("id" in item or "panel" in item):
            parts[-1] = f"screen {item['id']}" if "id" in item else f"panel {item['panel']}"
        else:
            parts.append(str(key))
        node = item
    msg = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        known = f": use one of {', '.join(model.model_fields)}" if model else ": check the spelling"
        msg = f"unknown key{known}"
    more = f" (and {err.error_count() - 1} more)" if err.error_count() > 1 else ""
    return AppError(": ".join([*filter(None, [where]), *parts, msg]) + more)


def _check_id(v: str) -> str:
    if not _ID_RE.match(v):
        raise ValueError("invalid id: use lowercase letters, digits and _, starting with a letter")
    return v


def _has(node: list | dict, key: Any) -> bool:
    return key in node if isinstance(node, dict) else isinstance(key, int) and 0 <= key < len(node)


# -----------------------------------------------------------------------------
# panels


class Thresholds(BaseModel):
    """When a panel raises an alert. Bounds in min/max are numbers or config keys ("category.field")."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    nan: bool = Field(False, description="alert when a metric's latest value is NaN or infinite")
    spike_factor: float | None = Field(None, gt=1, description="alert when latest > factor × median of the window")
    spike_window: int = Field(50, ge=3, le=DEFAULT_CAPACITY, description="points in the spike check's window")
    stall_s: float | str | None = Field(None, description="alert when a running run sends nothing this long "
                                                         "(seconds, or a config key such as telemetry.hung_after_s)")
    max: dict[str, float | str | None] = Field(default_factory=dict, description="metric -> ceiling")
    min: dict[str, float | str | None] = Field(default_factory=dict, description="metric -> floor")

    @field_validator("stall_s")
    @classmethod
    def _stall(cls, value: float | str | None) -> float | str | None:
        if isinstance(value, str) and not _KEY_RE.match(value):
            raise ValueError(f"{value!r} is neither a number of seconds nor a config key like 'category.field'")
        if isinstance(value, int | float) and value <= 0:
            raise ValueError("must be greater than 0")
        return value

    @field_validator("max", "min")
    @classmethod
    def _bounds(cls, bounds: dict[str, float | str | None]) -> dict[str, float | str | None]:
        for metric, b in bounds.items():
            if isinstance(b, str) and not _KEY_RE.match(b):
                raise ValueError(f"{metric}: {b!r} is neither a number nor a config key like 'category.field'")
        return bounds

    def config_refs(self) -> list[str]:
        refs = [b for bounds in (self.max, self.min) for b in bounds.values() if isinstance(b, str)]
        return refs + ([self.stall_s] if isinstance(self.stall_s, str) else [])


class PanelSpec(BaseModel):
    """What a panel shows and how: its kind, the metrics it reads, refresh rate, thresholds, help."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    title: str
    kind: Kind
    metrics: list[str] = Field(default_factory=list)
    refresh_hz: float = Field(2.0, gt=0, le=MAX_HZ)
    thresholds: Thresholds = Field(default_factory=Thresholds)
    help: str = ""
    # kind "plugin": the panel draws `render(view)` (rich or str) from the events of plugin `plugin`
    plugin: str = ""
    render: Callable[[Any], Any] | None = None

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        return _check_id(v)

    def keys(self) -> list[str]:
        """Store keys whose change means this panel must repaint (see MetricStore.changed)."""
        topics = {"progress": ["run"], "samples": ["samples"], "log": ["log"], "system": ["sys.*"],
                  "rollouts": ["rollouts"], "results": ["results"], "plugin": [f"plugin.{self.plugin}"]}
        return topics.get(self.kind, []) + list(self.metrics)

    def check_refs(self, registry: Registry) -> None:
        """Every config key named in the thresholds must be a field of a registered category; a plugin panel
        names its plugin and a render function."""
        if self.kind == "plugin" and (not self.plugin or not callable(self.render)):
            raise AppError(f"panel {self.id}: kind 'plugin' needs plugin= (whose events it draws) and "
                           "render= (a function view -> text)")
        for key in self.thresholds.config_refs():
            if registry.config_default(key) is MISSING:
                raise AppError(f"panel {self.id}: thresholds name {key!r}, which is not a config key: register "
                                  "its category first, or fix the name")


@dataclass(frozen=True)
class PluginView:
    """What a "plugin" panel's render function gets: its plugin's events, the store, and the room to draw in."""

    store: Any  # the run's MetricStore
    plugin: str
    width: int
    height: int

    def events(self, kind: str | None = None, last: int | None = None) -> list[Any]:
        """The plugin's newest `plugin` events (each has .kind, .step, .data), oldest first."""
        return self.store.plugin_events(self.plugin, kind, last)


BUILTIN_PANELS = [
    PanelSpec(id="progress", title="Progress", kind="progress", metrics=["tokens_per_sec"], refresh_hz=5,
              thresholds=Thresholds(stall_s=HUNG_KEY),
              help="step/total, tokens seen, elapsed and ETA; warns when the run sends nothing for "
                   f"{HUNG_KEY} (the run's hung threshold)"),
    PanelSpec(id="loss", title="Loss", kind="chart", metrics=["loss", "smooth_loss"], refresh_hz=5,
              thresholds=Thresholds(nan=True, spike_factor=3.0, spike_window=50),
              help="training loss per step, raw and smoothed (debiased EMA); flags NaN and spikes"),
    PanelSpec(id="val_bpb", title="Validation bpb", kind="chart", metrics=["val_bpb"], refresh_hz=2,
              thresholds=Thresholds(nan=True), help="validation bits per byte at each eval"),
    PanelSpec(id="lr", title="LR / momentum", kind="chart", metrics=["lr_mult", "muon_momentum"], refresh_hz=2,
              help="learning-rate schedule multiplier and Muon momentum per step"),
    PanelSpec(id="samples", title="Samples", kind="samples", refresh_hz=1,
              help="the latest text the model generated from the sample prompts"),
    PanelSpec(id="system", title="System", kind="system", metrics=["mfu", "mem_bytes"], refresh_hz=1,
              help="this machine's GPU util, VRAM, temperature (NVML) or CPU/RAM; MFU and peak memory from the run"),
    PanelSpec(id="step_time", title="Step time", kind="bars", metrics=["t_data", "t_fwd_bwd", "t_optim"],
              refresh_hz=2, help="where each step's time goes: waiting for data, forward+backward, optimizer"),
    PanelSpec(id="events", title="Events", kind="log", refresh_hz=5,
              help="evals, checkpoints, control acks, warnings and errors, newest last"),
    # post-training and eval stages (engine.sft, engine.rl, engine.base_eval, engine.chat_eval)
    PanelSpec(id="sft_loss", title="SFT loss", kind="chart", metrics=["loss", "val_loss"], refresh_hz=5,
              thresholds=Thresholds(nan=True), help="SFT train loss per step (assistant tokens only) and the "
                                                    "held-out conversations' val loss at each eval"),
    PanelSpec(id="rl_reward", title="Reward", kind="chart", metrics=["reward_mean"], refresh_hz=2,
              thresholds=Thresholds(nan=True), help="RL: mean task reward of each step's sampled answers"),
    PanelSpec(id="rl_pass", title="pass@k", kind="chart", metrics=["pass_at_1", "pass_at_k"], refresh_hz=2,
              help="RL: share of prompts with a right answer in 1 sample and in all k samples of a step"),
    PanelSpec(id="rl_lengths", title="Sample lengths", kind="chart", metrics=["mean_len", "max_len"],
              refresh_hz=2, help="RL: mean and longest sampled answer per step, in tokens"),
    PanelSpec(id="rl_stats", title="Rollouts", kind="stats",
              metrics=["reward_mean", "reward_std", "pass_at_1", "pass_at_k", "mean_len", "tool_call_rate"],
              refresh_hz=2, help="RL: the latest step's reward, pass@k, sample length and tool-call rate"),
    PanelSpec(id="rl_answers", title="Sampled answers", kind="rollouts", refresh_hz=1,
              help="RL: a few of the latest sampled answers, each with the reward its task gave it"),
    PanelSpec(id="eval_results", title="Eval results", kind="results", refresh_hz=2,
              help="eval stages: each task's score (CORE: centred against the random baseline; chat: accuracy)"),
]


# -----------------------------------------------------------------------------
# layouts


class Placement(BaseModel):
    """One panel on a screen's grid: spans `width` columns and `height` rows, in reading order."""

    model_config = ConfigDict(extra="forbid")

    panel: str
    width: int = Field(1, ge=1, le=12)
    height: int = Field(1, ge=1, le=12)
    refresh_hz: float | None = Field(None, gt=0, le=MAX_HZ)  # None: the panel's own rate
    thresholds: dict[str, Any] = Field(default_factory=dict)  # merged over the panel's thresholds

    @field_validator("thresholds")
    @classmethod
    def _thresholds(cls, t: dict[str, Any]) -> dict[str, Any]:
        try:
            Thresholds.model_validate(t)  # partial overrides must still be valid threshold fields
        except ValidationError as e:
            raise ValueError(str(_one_line("", e, t, Thresholds))) from None
        return t


class ScreenLayout(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    title: str
    columns: int = Field(2, ge=1, le=12)
    panels: list[Placement] = Field(default_factory=list)

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        return _check_id(v)

    @model_validator(mode="after")
    def _unique(self) -> ScreenLayout:
        ids = [p.panel for p in self.panels]
        dup = next((p for p in ids if ids.count(p) > 1), None)
        if dup:
            raise ValueError(f"panel {dup!r} is placed twice on screen {self.id!r}: remove one")
        wide = next((p for p in self.panels if p.width > self.columns), None)
        if wide:
            raise ValueError(f"panel {wide.panel!r} is {wide.width} wide but screen {self.id!r} has {self.columns} "
                             "columns: narrow it or add columns")
        return self

    def placement(self, panel: str) -> Placement:
        for p in self.panels:
            if p.panel == panel:
                return p
        on = ", ".join(p.panel for p in self.panels) or "none"
        raise AppError(f"screen {self.id}: panel {panel!r} is not on it: panels on it: {on}")


class Layout(BaseModel):
    """A layout: named screens of panels. Edit with the methods below; each returns a new validated Layout."""

    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    screens: list[ScreenLayout] = Field(min_length=1)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _LAYOUT_NAME_RE.match(v):
            raise ValueError("invalid name: use lowercase letters, digits, - and _")
        return v

    @model_validator(mode="after")
    def _unique_screens(self) -> Layout:
        ids = [s.id for s in self.screens]
        dup = next((s for s in ids if ids.count(s) > 1), None)
        if dup:
            raise ValueError(f"screen id {dup!r} is used twice: rename one")
        return self

    @classmethod
    def parse(cls, data: dict[str, Any], registry: Registry = REGISTRY) -> Layout:
        """Validate a layout from plain data (e.g. a plugin's dict) with one-line errors."""
        try:
            layout = cls.model_validate(data)
        except ValidationError as e:
            name = data.get("name", "?") if isinstance(data, dict) else "?"
            raise _one_line(f"layout {name}", e, data) from None
        layout.check_panels(registry)
        return layout

    # --- lookups

    def screen(self, screen: str) -> ScreenLayout:
        for s in self.screens:
            if s.id == screen:
                return s
        raise AppError(f"layout {self.name}: no screen {screen!r}: use one of {', '.join(self.screen_ids())}")

    def screen_ids(self) -> list[str]:
        return [s.id for s in self.screens]

    def check_panels(self, registry: Registry = REGISTRY) -> None:
        """Every placed panel must be registered, and config keys in threshold overrides must exist."""
        for s in self.screens:
            for p in s.panels:
                if registry.panel(p.panel) is None:
                    known = ", ".join(spec.id for spec in registry.panels())
                    raise AppError(f"layout {self.name}: screen {s.id}: unknown panel {p.panel!r}: use one of "
                                      f"{known}")
                for key in Thresholds.model_validate(p.thresholds).config_refs():
                    if registry.config_default(key) is MISSING:
                        raise AppError(f"layout {self.name}: screen {s.id}: panel {p.panel}: thresholds name "
                                          f"{key!r}, which is not a config key: fix the name")

    def resolved(self, screen: str, panel: str, registry: Registry = REGISTRY) -> PanelSpec:
        """The panel's spec with this placement's refresh rate and threshold overrides applied."""
        p = self.screen(screen).placement(panel)
        spec = registry.panel(panel)
        if spec is None:
            raise AppError(f"layout {self.name}: panel {panel!r} is not registered (was its plugin disabled?)")
        merged = spec.thresholds.model_dump() | p.thresholds
        return spec.model_copy(update={"refresh_hz": p.refresh_hz or spec.refresh_hz,
                                       "thresholds": Thresholds.model_validate(merged)})

    # --- edits

    def _edit(self, fn: Any, registry: Registry) -> Layout:
        data = self.model_dump()
        fn(data)
        try:
            new = Layout.model_validate(data)
        except ValidationError as e:
            raise _one_line(f"layout {self.name}", e, data) from None
        new.check_panels(registry)
        return new

    def _index(self, screen: str) -> int:
        return self.screen_ids().index(self.screen(screen).id)

    def _pos(self, screen: str, panel: str) -> tuple[int, int]:
        si = self._index(screen)
        s = self.screens[si]
        return si, s.panels.index(s.placement(panel))

    def add_panel(self, screen: str, panel: str, *, index: int | None = None, width: int = 1, height: int = 1,
                  registry: Registry = REGISTRY) -> Layout:
        """Place `panel` on `screen` at `index` (default: last)."""
        si = self._index(screen)
        place = {"panel": panel, "width": width, "height": height, "refresh_hz": None, "thresholds": {}}

        def fn(d: dict) -> None:
            panels = d["screens"][si]["panels"]
            panels.insert(len(panels) if index is None else index, place)
        return self._edit(fn, registry)

    def remove_panel(self, screen: str, panel: str, registry: Registry = REGISTRY) -> Layout:
        si, pi = self._pos(screen, panel)
        return self._edit(lambda d: d["screens"][si]["panels"].pop(pi), registry)

    def move_panel(self, screen: str, panel: str, index: int, *, to_screen: str | None = None,
                   registry: Registry = REGISTRY) -> Layout:
        """Move `panel` to position `index` (negative counts from the end) of `to_screen` (default: same)."""
        si, pi = self._pos(screen, panel)
        ti = self._index(to_screen) if to_screen else si
        size = len(self.screens[ti].panels) - (1 if ti == si else 0)
        pos = index if index >= 0 else size + 1 + index
        if not 0 <= pos <= size:
            raise AppError(f"layout {self.name}: move {panel}: position {index} is out of range: use 0..{size}")

        def fn(d: dict) -> None:
            d["screens"][ti]["panels"].insert(pos, d["screens"][si]["panels"].pop(pi))
        return self._edit(fn, registry)

    def resize_panel(self, screen: str, panel: str, width: int, height: int, registry: Registry = REGISTRY) -> Layout:
        si, pi = self._pos(screen, panel)
        return self._edit(lambda d: d["screens"][si]["panels"][pi].update(width=width, height=height), registry)

    def set_refresh(self, screen: str, panel: str, hz: float | None, registry: Registry = REGISTRY) -> Layout:
        """Override the panel's refresh rate on this screen (None: back to the panel's own)."""
        si, pi = self._pos(screen, panel)
        return self._edit(lambda d: d["screens"][si]["panels"][pi].update(refresh_hz=hz), registry)

    def set_thresholds(self, screen: str, panel: str, overrides: dict[str, Any],
                       registry: Registry = REGISTRY) -> Layout:
        """Replace this placement's threshold overrides (e.g. {"spike_factor": 5}; {} for the panel's own)."""
        si, pi = self._pos(screen, panel)
        return self._edit(lambda d: d["screens"][si]["panels"][pi].update(thresholds=dict(overrides)), registry)

    def add_screen(self, screen: str, title: str, *, columns: int = 2, index: int | None = None,
                   registry: Registry = REGISTRY) -> Layout:
        new = {"id": screen, "title": title, "columns": columns, "panels": []}
        return self._edit(lambda d: d["screens"].insert(len(d["screens"]) if index is None else index, new), registry)

    def remove_screen(self, screen: str, registry: Registry = REGISTRY) -> Layout:
        si = self._index(screen)
        return self._edit(lambda d: d["screens"].pop(si), registry)

    def renamed(self, name: str) -> Layout:
        try:
            return Layout.model_validate(self.model_dump() | {"name": name})
        except ValidationError as e:
            raise _one_line(f"layout {name!r}", e) from None


# -----------------------------------------------------------------------------
# YAML layout files


def load_layout(path: str | Path, registry: Registry = REGISTRY) -> Layout:
    """Read a layout file; its name is the file name without .yaml. One-line AppError on any problem."""
    path = Path(path)
    try:
        data = load_yaml_file(path, what="layout file")
    except YamlError as e:  # bounded read: size, UTF-8, nesting, aliases; one line naming the file
        raise AppError(str(e)) from None
    if not isinstance(data, dict):
        raise AppError(f"{path}: a layout must be a mapping with a 'screens' list")
    if data.setdefault("name", path.stem) != path.stem:
        raise AppError(f"{path}: name {data['name']!r} differs from the file name: make them the same")
    try:
        layout = Layout.model_validate(data)
    except ValidationError as e:
        raise _one_line(str(path), e, data) from None
    layout.check_panels(registry)
    return layout


def save_layout(layout: Layout, path: str | Path) -> Path:
    """Write a layout atomically (the file is named after it, so the name is not repeated inside)."""
    data = layout.model_dump(exclude={"name"})
    for s in data["screens"]:  # only what differs from the defaults, so layout files stay short and readable
        s["panels"] = [{k: v for k, v in p.items() if v != Placement.model_fields[k].default
                        and not (k == "thresholds" and not v)} for p in s["panels"]]
    atomic_write(Path(path), yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    return Path(path)


@dataclass(frozen=True)
class LayoutInfo:
    name: str
    origin: str  # "user" | "registered" (shipped or from a plugin)
    path: Path | None  # the user file, for user layouts
    shadows: bool = False  # a user layout hiding a registered one of the same name


class LayoutStore:
    """Registered layouts (shipped + plugins, read-only) and the user's own (read-write, they win by name)."""

    def __init__(self, user_dir: Path | None = None, registry: Registry = REGISTRY):
        self.user_dir = Path(user_dir) if user_dir else paths.user_config_dir() / "layouts"
        self.registry = registry

    def _user_path(self, name: str) -> Path:
        if not _LAYOUT_NAME_RE.match(name):
            raise AppError(f"layout {name!r}: invalid name: use lowercase letters, digits, - and _")
        return self.user_dir / f"{name}.yaml"

    def list(self) -> list[LayoutInfo]:
        registered = self.registry.layouts()
        users = sorted(self.user_dir.glob("*.yaml")) if self.user_dir.is_dir() else []
        out = [LayoutInfo(p.stem, "user", p, p.stem in registered) for p in users]
        user_names = {p.stem for p in users}
        out += [LayoutInfo(n, "registered", None) for n in registered if n not in user_names]
        return sorted(out, key=lambda i: i.name)

    def names(self) -> list[str]:
        return [i.name for i in self.list()]

    def get(self, name: str) -> Layout:
        path = self._user_path(name)
        if path.exists():
            return load_layout(path, self.registry)
        layout = self.registry.layout(name)
        if layout is None:
            raise AppError(f"layout {name!r}: not found: use one of {', '.join(self.names())}")
        return layout

    def save(self, layout: Layout, name: str | None = None) -> Path:
        """Save as a user layout (atomically); saving under a registered name shadows it until deleted."""
        layout = layout.renamed(name) if name else layout
        layout.check_panels(self.registry)
        return save_layout(layout, self._user_path(layout.name))

    def delete(self, name: str) -> None:
        """Delete a user layout (a shadowed registered layout shows again); registered ones are read-only."""
        path = self._user_path(name)
        if not path.exists():
            what = "is shipped or from a plugin, so read-only" if self.registry.layout(name) else "not found"
            raise AppError(f"layout {name!r}: {what}: only user layouts can be deleted")
        path.unlink()


# -----------------------------------------------------------------------------
# alerts


@dataclass(frozen=True)
class Alert:
    panel: str
    metric: str  # the metric, or "run" for a stall
    level: str  # "warn" | "error"
    message: str  # one line


def _bound(value: float | str | None, config: dict[str, Any] | None, registry: Registry) -> float | None:
    """A threshold bound as a number; config keys take the run's value or the field's default; 0 means off."""
    if isinstance(value, str):
        value = config[value] if config and value in config else registry.config_default(value)
        if value is MISSING or not value:
            return None
    return None if value is None else float(value)


def check_thresholds(panel: PanelSpec, store: MetricStore, *, config: dict[str, Any] | None = None,
                     registry: Registry = REGISTRY, now: float | None = None) -> list[Alert]:
    """The alerts `panel`'s thresholds raise on the store's data now. Pass `layout.resolved(...)` for overrides.

    `config` is the run's resolved flat config ("category.field" keys) for bounds that name config keys.
    """
    t, out = panel.thresholds, []
    for m in panel.metrics:
        v = store.latest(m)
        if v is None:
            continue
        if t.nan and not math.isfinite(v):
            out.append(Alert(panel.id, m, "error", f"{m} is {v} at step {store.run_state().step}"))
            continue
        if t.spike_factor is not None:
            _, ys = store.window(m, last=t.spike_window + 1)
            prev = ys[:-1][np.isfinite(ys[:-1])]
            if len(prev) >= 3:
                base = float(np.median(prev))
                if base > 0 and v > t.spike_factor * base:
                    out.append(Alert(panel.id, m, "warn", f"{m} spiked to {v:.4g}, over {t.spike_factor:g}× the "
                                                          f"median {base:.4g} of the last {len(prev)}"))
        hi, lo = _bound(t.max.get(m), config, registry), _bound(t.min.get(m), config, registry)
        if hi is not None and v > hi:
            out.append(Alert(panel.id, m, "warn", f"{m} is {v:.4g}, above {hi:.4g}"))
        if lo is not None and v < lo:
            out.append(Alert(panel.id, m, "warn", f"{m} is {v:.4g}, below {lo:.4g}"))
    stall = _bound(t.stall_s, config, registry)
    if stall is not None:
        run = store.run_state()
        quiet = (now if now is not None else time.time()) - (run.last_event_time or 0)
        if run.status == "running" and run.last_event_time is not None and quiet > stall:
            out.append(Alert(panel.id, "run", "warn", f"no telemetry for {quiet:.0f}s (over {stall:g}s): stalled?"))
    return out


# -----------------------------------------------------------------------------
# registration


def register_builtins(registry: Registry, layouts_dir: Path = SHIPPED_LAYOUTS_DIR) -> None:
    """Register the built-in panels and the shipped layouts (done for REGISTRY at import)."""
    for spec in BUILTIN_PANELS:
        registry.register_panel(spec, builtin=True)
    for path in sorted(layouts_dir.glob("*.yaml")):
        registry.register_layout(path.stem, load_layout(path, registry))


if REGISTRY.panel("progress") is None:
    register_builtins(REGISTRY)
