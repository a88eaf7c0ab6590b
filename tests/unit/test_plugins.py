"""Plugin loader: good plugins load, broken ones are disabled with a one-line error, the app goes on."""

import logging
import re
import sys
import textwrap
from pathlib import Path

import pytest

from engine.telemetry import TELEMETRY_FILE, TelemetryWriter
from nanochat_cli.services.ingest import MetricStore, RunFeed, register_builtin_sources
from nanochat_cli.services.panels import LayoutStore, check_thresholds, register_builtins
from nanochat_cli.services.plugins import load_plugins
from nanochat_cli.services.registry import Registry

DOCS = Path(__file__).resolve().parents[2] / "docs" / "plugins.md"

GOOD = '''
from pydantic import BaseModel, ConfigDict
from nanochat_cli.services.panels import PanelSpec
from . import helper  # relative imports inside a plugin work

class Cfg(BaseModel):
    model_config = ConfigDict(extra="forbid")
    level: int = 1

def register(registry):
    helper.CALLS.append(1)
    registry.register_category("goodcat", Cfg)
    registry.register_panel(PanelSpec(id="good_panel", title="Good", kind="stats", metrics=["loss"]))
'''

BROKEN_IMPORT = "import does_not_exist_anywhere\n"

RAISES_IN_REGISTER = '''
from pydantic import BaseModel, ConfigDict
from nanochat_cli.services.panels import PanelSpec

class Cfg(BaseModel):
    model_config = ConfigDict(extra="forbid")
    x: int = 0

def register(registry):
    registry.register_category("halfway", Cfg)
    registry.register_panel(PanelSpec(id="halfway_panel", title="H", kind="chart", metrics=["loss"]))
    raise RuntimeError("boom in register\\nsecond line")
'''

BAD_REGISTRATION = '''
from nanochat_cli.services.panels import PanelSpec

def register(registry):
    registry.register_panel(PanelSpec(id="loss", title="Mine", kind="chart"))  # clashes with a built-in
'''

NO_REGISTER = "VALUE = 1\n"


def write_plugin(root: Path, name: str, code: str, files: dict | None = None) -> None:
    pkg = root / name
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(textwrap.dedent(code))
    for fname, text in (files or {}).items():
        (pkg / fname).write_text(text)


@pytest.fixture
def registry():
    reg = Registry()
    register_builtins(reg)
    register_builtin_sources(reg)
    return reg


@pytest.fixture
def plugin_dir(tmp_path):
    root = tmp_path / "plugins_here"
    write_plugin(root, "good", GOOD, {"helper.py": "CALLS = []\n"})
    write_plugin(root, "broken_import", BROKEN_IMPORT)
    write_plugin(root, "raises", RAISES_IN_REGISTER)
    write_plugin(root, "clash", BAD_REGISTRATION)
    write_plugin(root, "empty", NO_REGISTER)
    write_plugin(root, "exits", "import sys\nsys.exit(3)\n")
    (root / "not_a_package").mkdir()
    yield root
    for name in [n for n in sys.modules if n.startswith("nanochat_user_plugins.")]:
        del sys.modules[name]


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.INFO)
        self.records = []

    def emit(self, record):
        self.records.append(record)


def test_broken_plugins_are_disabled_and_good_ones_load(registry, plugin_dir):
    logger, seen = logging.getLogger("nanochat_cli.services.plugins"), _Records()
    logger.addHandler(seen)  # directly: the app's log setup may stop propagation to pytest's handler
    try:
        report = load_plugins(registry, [plugin_dir], repo=False, entry_points=False)
    finally:
        logger.removeHandler(seen)
    assert report.loaded == ["good"]
    failed = dict(report.failed)
    assert set(failed) == {"broken_import", "raises", "clash", "empty", "exits"}
    assert failed["exits"] == "SystemExit: 3"
    assert failed["broken_import"] == "ModuleNotFoundError: No module named 'does_not_exist_anywhere'"
    assert failed["raises"] == "RuntimeError: boom in register"
    assert failed["clash"] == "panel 'loss': already registered: pick another id for the plugin's panel"
    assert failed["empty"] == "plugin empty: no register(registry) function: define one in the plugin's module"
    assert all("\n" not in e for e in failed.values())
    # the good plugin's additions are live; the half-registered one left nothing behind
    assert registry.get("goodcat") is not None and registry.panel("good_panel") is not None
    assert registry.get("halfway") is None and registry.panel("halfway_panel") is None
    assert registry.panel("loss").title == "Loss"
    assert registry.plugins["good"] is None and registry.plugins["raises"] == "RuntimeError: boom in register"
    # logged, with the traceback for the log file
    warn = [r for r in seen.records if r.levelno == logging.WARNING and "raises" in r.getMessage()]
    assert warn and warn[0].exc_info is not None
    assert "nanochat_user_plugins.broken_import" not in sys.modules  # no half-imported module kept


def test_loading_twice_is_idempotent(registry, plugin_dir):
    first = load_plugins(registry, [plugin_dir], repo=False, entry_points=False)
    version = registry.version
    second = load_plugins(registry, [plugin_dir], repo=False, entry_points=False)
    assert second == first and registry.version == version
    assert sys.modules["nanochat_user_plugins.good.helper"].CALLS == [1]  # register ran once


def test_two_plugins_with_one_name(registry, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    write_plugin(a, "dup", "def register(registry):\n    pass\n")
    write_plugin(b, "dup", "def register(registry):\n    pass\n")
    report = load_plugins(registry, [a, b], repo=False, entry_points=False)
    assert report.loaded == ["dup"]
    assert report.failed[0][0] == "dup" and "another plugin named 'dup' is already loaded" in report.failed[0][1]
    del sys.modules["nanochat_user_plugins.dup"]


def test_entry_point_plugins(registry, tmp_path, monkeypatch):
    site = tmp_path / "site"
    write_plugin(site, "ep_good", "def setup(registry):\n    registry.register_layout('ep-layout', "
                                  "registry.layout('compact'))\n")
    dist = site / "ep_demo-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: ep-demo\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[nanochat_cli.plugins]\nep_good = ep_good:setup\n"
                                           "ep_missing = ep_not_installed\n")
    monkeypatch.syspath_prepend(str(site))
    report = load_plugins(registry, repo=False)
    assert report.loaded == ["ep_good"]
    assert report.failed == [("ep_missing", "ModuleNotFoundError: No module named 'ep_not_installed'")]
    assert registry.layout("ep-layout") is not None
    assert registry.owned("ep_good") == [("layout", "ep-layout")]
    sys.modules.pop("ep_good", None)


def test_repo_throughput_plugin(registry, tmp_path):
    report = load_plugins(registry, entry_points=False)
    assert "throughput" in report.loaded and report.failed == []
    assert [k for k, _ in registry.owned("throughput")] == ["category", "panel", "panel", "layout"]
    layout = LayoutStore(user_dir=tmp_path, registry=registry).get("throughput")
    assert [p.panel for p in layout.screen("throughput").panels] == [
        "progress", "throughput", "efficiency", "step_time", "system"]
    # its config category steers its panels' alerts
    store = MetricStore()
    run = tmp_path / "run"
    with TelemetryWriter(run / TELEMETRY_FILE, run="r") as w:
        w.emit("step", step=1, total=10, loss=3.0, smooth_loss=3.0, lr_mult=1.0, muon_momentum=0.95,
               tokens_per_sec=15_000.0, mfu=0.2, dt=0.5, t_data=0.01, t_fwd_bwd=0.4, t_optim=0.09,
               mem_bytes=1 << 30, tokens_seen=7500, elapsed=0.5, eta=4.5)
    RunFeed(run, sources=["jsonl"], registry=registry, store=store).pump()
    tp = layout.resolved("throughput", "throughput", registry)
    eff = layout.resolved("throughput", "efficiency", registry)
    assert check_thresholds(tp, store, registry=registry) == []  # floors default to 0 = off
    cfg = {"throughput.min_tokens_per_sec": 20_000.0, "throughput.min_mfu": 0.3}
    assert [a.message for a in check_thresholds(tp, store, config=cfg, registry=registry)] == [
        "tokens_per_sec is 1.5e+04, below 2e+04"]
    assert [a.message for a in check_thresholds(eff, store, config=cfg, registry=registry)] == ["mfu is 0.2, below 0.3"]


def test_the_worked_example_in_the_docs_runs(registry, tmp_path):
    text = DOCS.read_text()
    m = re.search(r"<!-- example: csvmetrics/__init__.py.*?-->\n```python\n(.*?)```", text, re.S)
    assert m, "docs/plugins.md lost its csvmetrics example"
    write_plugin(tmp_path / "p", "csvmetrics", m.group(1))
    report = load_plugins(registry, [tmp_path / "p"], repo=False, entry_points=False)
    assert report.loaded == ["csvmetrics"]
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.csv").write_text("grad_norm,1,0.5\ngrad_norm,2,0.7\ngrad_norm,3,0.6\nnot a line\ngrad_norm,4,")
    feed = RunFeed(run, sources=["csvmetrics"], registry=registry)
    feed.pump()
    assert feed.store.window("csv.grad_norm")[1].tolist() == [0.5, 0.7, 0.6]
    assert feed.store.snapshot().sources["csvmetrics"].malformed == 1
    with open(run / "metrics.csv", "a") as f:
        f.write("99\n")  # completes the partial line
    feed.pump()
    assert feed.store.latest("csv.grad_norm") == 99.0
    assert check_thresholds(registry.panel("grad_norm"), feed.store, registry=registry)[0].message.startswith(
        "csv.grad_norm spiked to 99")
    del sys.modules["nanochat_user_plugins.csvmetrics"]
