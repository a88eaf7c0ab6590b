"""Panel specs, layouts (edit, save, load) and threshold alerts."""

import math
from types import SimpleNamespace

import pytest
import yaml

from nanochat_cli.errors import AppError
from nanochat_cli.services.ingest import MetricPoint, MetricStore
from nanochat_cli.services.panels import (
    BUILTIN_PANELS,
    KINDS,
    SHIPPED_LAYOUTS_DIR,
    Layout,
    LayoutStore,
    PanelSpec,
    Thresholds,
    check_thresholds,
    load_layout,
    register_builtins,
)
from nanochat_cli.services.registry import REGISTRY, Registry


def test_builtin_panels_and_shipped_layouts_are_registered():
    ids = [p.id for p in REGISTRY.panels()]
    assert ids[:8] == ["progress", "loss", "val_bpb", "lr", "samples", "system", "step_time", "events"]
    assert all(p.kind in KINDS for p in BUILTIN_PANELS)
    shipped = sorted(p.stem for p in SHIPPED_LAYOUTS_DIR.glob("*.yaml"))
    assert shipped == ["compact", "default", "eval", "rl", "sft"] and set(shipped) <= set(REGISTRY.layouts())
    default = REGISTRY.layout("default")
    assert default.screen_ids() == ["overview", "details", "text"]
    placed = {p.panel for s in default.screens for p in s.panels}
    stages = {p.panel for name in ("sft", "rl", "eval") for s in REGISTRY.layout(name).screens for p in s.panels}
    # the default layout shows every pretraining panel; the stage layouts the post-training ones
    assert placed | stages == {p.id for p in BUILTIN_PANELS}
    assert {"sft_loss", "rl_reward", "rl_pass", "rl_lengths", "rl_answers", "eval_results"} <= stages - placed


def test_panel_keys_name_what_a_panel_depends_on():
    by_id = {p.id: p for p in BUILTIN_PANELS}
    assert by_id["loss"].keys() == ["loss", "smooth_loss"]
    assert by_id["progress"].keys() == ["run", "tokens_per_sec"]
    assert by_id["events"].keys() == ["log"] and by_id["system"].keys() == ["sys.*", "mfu", "mem_bytes"]


def test_layout_edits_then_save_and_load_round_trip(tmp_path):
    store = LayoutStore(user_dir=tmp_path / "layouts")
    layout = store.get("default")
    edited = (layout.add_panel("details", "samples", index=0, width=2)
              .remove_panel("overview", "events")
              .move_panel("overview", "val_bpb", 0)
              .move_panel("details", "lr", -1, to_screen="text")
              .set_refresh("overview", "loss", 10)
              .set_thresholds("overview", "loss", {"spike_factor": 5, "max": {"loss": 20}})
              .resize_panel("overview", "progress", 1, 1)
              .add_screen("extra", "Extra", columns=1)
              .add_panel("extra", "lr"))
    assert layout.screen("overview").panels[-1].panel == "events"  # edits return new layouts
    assert [p.panel for p in edited.screen("overview").panels] == ["val_bpb", "progress", "loss", "step_time"]
    assert [p.panel for p in edited.screen("text").panels] == ["samples", "events", "lr"]
    assert edited.screen("details").panels[0].panel == "samples"
    path = store.save(edited, "mine")
    assert path == tmp_path / "layouts" / "mine.yaml"
    assert [p.name for p in tmp_path.joinpath("layouts").iterdir()] == ["mine.yaml"]  # no temp files left
    back = store.get("mine")
    assert back == edited.renamed("mine")
    raw = yaml.safe_load(path.read_text())
    assert "name" not in raw and raw["screens"][0]["panels"][0] == {"panel": "val_bpb"}  # defaults left out
    loss = back.resolved("overview", "loss")
    assert loss.refresh_hz == 10 and loss.thresholds.spike_factor == 5 and loss.thresholds.nan
    assert loss.thresholds.max == {"loss": 20}
    assert back.resolved("overview", "step_time").refresh_hz == 2  # no override: the panel's own


def test_user_layout_shadows_a_shipped_one_until_deleted(tmp_path):
    store = LayoutStore(user_dir=tmp_path)
    shipped = store.get("default")
    store.save(shipped.set_refresh("overview", "loss", 1))
    info = {i.name: i for i in store.list()}
    assert info["default"].origin == "user" and info["default"].shadows
    assert info["compact"].origin == "registered"
    assert store.get("default").resolved("overview", "loss").refresh_hz == 1
    store.delete("default")
    assert store.get("default") == shipped
    with pytest.raises(AppError, match="layout 'default': is shipped or from a plugin, so read-only"):
        store.delete("default")
    with pytest.raises(AppError, match="layout 'nope': not found: use one of compact, default"):
        store.get("nope")


@pytest.mark.parametrize("edit, message", [
    (lambda L: L.add_panel("overview", "nope"), "screen overview: unknown panel 'nope': use one of progress, loss"),
    (lambda L: L.add_panel("overview", "loss"), "panel 'loss' is placed twice on screen 'overview': remove one"),
    (lambda L: L.add_panel("moon", "loss"), "layout default: no screen 'moon': use one of overview, details, text"),
    (lambda L: L.set_refresh("overview", "loss", 100), "panel loss: refresh_hz: Input should be less than or equal"),
    (lambda L: L.set_refresh("overview", "loss", 0), "panel loss: refresh_hz: Input should be greater than 0"),
    (lambda L: L.set_refresh("overview", "lr", 1), "screen overview: panel 'lr' is not on it: panels on it: progress"),
    (lambda L: L.move_panel("overview", "loss", 9), "move loss: position 9 is out of range: use 0..4"),
    (lambda L: L.resize_panel("overview", "loss", 3, 1), "panel 'loss' is 3 wide but screen 'overview' has 2"),
    (lambda L: L.set_thresholds("overview", "loss", {"spike": 2}), "thresholds: spike: unknown key: use one of nan"),
    (lambda L: L.set_thresholds("overview", "loss", {"max": {"loss": "x"}}), "'x' is neither a number nor a config"),
    (lambda L: L.set_thresholds("overview", "loss", {"min": {"loss": "no.such"}}), "'no.such', which is not a config"),
    (lambda L: L.add_screen("overview", "Again"), "screen id 'overview' is used twice: rename one"),
    (lambda L: L.renamed("Bad Name"), "layout 'Bad Name': name: invalid name: use lowercase letters"),
])
def test_layout_edits_are_validated_with_one_line_errors(edit, message):
    layout = REGISTRY.layout("default")
    with pytest.raises(AppError) as e:
        edit(layout)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_the_last_screen_cannot_be_removed():
    compact = REGISTRY.layout("compact")
    with pytest.raises(AppError, match="layout compact: screens: List should have at least 1 item"):
        compact.remove_screen("main")


def test_bad_layout_files_give_one_line_errors(tmp_path):
    bad_yaml = tmp_path / "a.yaml"
    bad_yaml.write_text("screens: [\n")
    with pytest.raises(AppError, match=r"a.yaml: not valid YAML \(line \d+, column \d+: "):
        load_layout(bad_yaml)
    renamed = tmp_path / "b.yaml"
    renamed.write_text("name: c\nscreens: [{id: s, title: S}]\n")
    with pytest.raises(AppError, match="name 'c' differs from the file name"):
        load_layout(renamed)
    unknown = tmp_path / "d.yaml"
    unknown.write_text("screens: [{id: s, title: S, panels: [{panel: loss, colour: red}]}]\n")
    with pytest.raises(AppError, match="d.yaml: screen s: panel loss: colour: unknown key"):
        load_layout(unknown)
    store = LayoutStore(user_dir=tmp_path)
    with pytest.raises(AppError, match="invalid name"):
        store.save(REGISTRY.layout("compact"), "../escape")


def _store_with_loss(values, status_time=None):
    store = MetricStore()
    store.apply([MetricPoint("loss", i, v) for i, v in enumerate(values)])
    return store


def test_nan_loss_raises_an_error_alert():
    loss = REGISTRY.panel("loss")
    assert check_thresholds(loss, _store_with_loss([3.0, 2.9, 2.8])) == []
    alerts = check_thresholds(loss, _store_with_loss([3.0, 2.9, math.nan]))
    assert [(a.panel, a.metric, a.level) for a in alerts] == [("loss", "loss", "error")]
    assert "loss is nan" in alerts[0].message
    inf = check_thresholds(loss, _store_with_loss([3.0, math.inf]))
    assert inf[0].level == "error"


def test_loss_spike_over_the_window_median():
    loss = REGISTRY.panel("loss")  # spike_factor 3 over the last 50 points
    steady = [3.0 + 0.1 * math.sin(i) for i in range(200)]
    assert check_thresholds(loss, _store_with_loss(steady + [5.0])) == []
    alerts = check_thresholds(loss, _store_with_loss(steady + [12.0]))
    assert len(alerts) == 1 and alerts[0].level == "warn" and "spiked to 12" in alerts[0].message
    assert "last 50" in alerts[0].message
    calmer = loss.model_copy(update={"thresholds": Thresholds(spike_factor=5.0)})
    assert check_thresholds(calmer, _store_with_loss(steady + [12.0])) == []


def test_stall_alert_only_while_running():
    progress = REGISTRY.panel("progress")  # stall_s: the run's telemetry.hung_after_s (one hung threshold)
    assert progress.thresholds.stall_s == "telemetry.hung_after_s"
    store = MetricStore()
    store.apply([SimpleNamespace(event="run_start", run="r", time=1000.0, resumed_from_step=None, num_iterations=10,
                                 world_size=1, device="cpu", dtype="float32", num_params=1, config={})])
    config = {"telemetry.hung_after_s": 120.0}
    assert check_thresholds(progress, store, config=config, now=1100.0) == []
    alerts = check_thresholds(progress, store, config=config, now=1200.5)
    assert [(a.metric, a.level) for a in alerts] == [("run", "warn")] and "no telemetry for 200s" in alerts[0].message
    assert check_thresholds(progress, store, now=1200.5) == []  # the field's default, 300 s
    assert len(check_thresholds(progress, store, now=1300.5)) == 1
    store.apply([SimpleNamespace(event="run_end", status="finished", reason="done", step=10, elapsed=5.0,
                                 time=1001.0)])
    assert check_thresholds(progress, store, config=config, now=5000.0) == []


def test_bounds_from_config_keys():
    from pydantic import BaseModel, ConfigDict, Field

    class Floors(BaseModel):
        model_config = ConfigDict(extra="forbid")
        min_tps: float = Field(0.0)

    reg = Registry()
    register_builtins(reg)
    with pytest.raises(AppError, match="thresholds name 'floors.min_tps', which is not a config key"):
        reg.register_panel(PanelSpec(id="tps", title="t", kind="stats", metrics=["tokens_per_sec"],
                                     thresholds=Thresholds(min={"tokens_per_sec": "floors.min_tps"})))
    reg.register_category("floors", Floors)
    panel = PanelSpec(id="tps", title="t", kind="stats", metrics=["tokens_per_sec"],
                      thresholds=Thresholds(min={"tokens_per_sec": "floors.min_tps"}, max={"tokens_per_sec": 5e5}))
    reg.register_panel(panel)
    store = MetricStore()
    store.apply([MetricPoint("tokens_per_sec", 1, 1000.0)])
    assert check_thresholds(panel, store, registry=reg) == []  # default 0 = off
    alerts = check_thresholds(panel, store, config={"floors.min_tps": 2000.0}, registry=reg)
    assert [a.message for a in alerts] == ["tokens_per_sec is 1000, below 2000"]
    store.apply([MetricPoint("tokens_per_sec", 2, 6e5)])
    assert [a.message for a in check_thresholds(panel, store, registry=reg)] == ["tokens_per_sec is 6e+05, above 5e+05"]


def test_registry_rules_for_panels_and_layouts():
    reg = Registry()
    register_builtins(reg)
    with pytest.raises(AppError, match="panel 'loss': already registered"):
        reg.register_panel(REGISTRY.panel("loss"))
    with pytest.raises(AppError, match="built-in panels cannot be removed"):
        reg.unregister_panel("loss")
    with pytest.raises(AppError, match="layout 'default': already registered"):
        reg.register_layout("default", reg.layout("compact"))
    with pytest.raises(AppError, match="layout 'No Way': invalid name"):
        reg.register_layout("No Way", reg.layout("compact"))
    with pytest.raises(AppError, match="unknown panel 'ghost'"):
        Layout.parse({"name": "g", "screens": [{"id": "s", "title": "S", "panels": [{"panel": "ghost"}]}]}, reg)
    with pytest.raises(ValueError, match="invalid id: use lowercase letters"):
        PanelSpec(id="Bad-Id", title="x", kind="chart")
