"""What a new user hit on the Train tab (issue 13): `v` cycles every view, the Runs table keeps up with the
attached run, evals show in the Events panel, chart legends sit in the title instead of over the lines, a
one-point chart shows its value, the footer leaves the palette hint readable at 100 columns, slow work
stays off the UI thread; and the palette lists the screen's bindings (issue 16)."""

from __future__ import annotations

import inspect
import os
import threading
import time

from train_screen_helpers import T0, make_app, run_events, screen_text, shows, wait_for, write_run

from engine.telemetry import StepEvent
from nanochat_cli.screens.train import TrainScreen
from nanochat_cli.services.runs import RunsRoot
from nanochat_cli.services.runs.live import LiveRun
from nanochat_cli.widgets.train.chart import ChartPlot


async def open_train(pilot, name: str, final: bool = True) -> TrainScreen:
    await pilot.press("2")
    screen = pilot.app.screen
    assert isinstance(screen, TrainScreen)
    await wait_for(pilot, f"attach {name}", lambda: screen.live is not None and screen.live.name == name)
    if final:
        await wait_for(pilot, "the run's end", lambda: screen.live.final is not None)
    return screen


def active_view(screen: TrainScreen) -> str:
    return screen.query_one("#train-tabs").active


async def test_v_cycles_every_view_including_runs(tmp_path):
    write_run(tmp_path / "base", "old", run_events("old", steps=20), {"started": T0})
    write_run(tmp_path / "base", "demo", run_events("demo"), {"started": T0 + 100})
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_train(pilot, "demo")
        seen = [active_view(screen)]
        for _ in range(4):  # overview, details, text, runs, and round again
            await pilot.press("v")
            await wait_for(pilot, "the next view", lambda: active_view(screen) != seen[-1])
            seen.append(active_view(screen))
        assert seen == ["view-overview", "view-details", "view-text", "train-runs", "view-overview"]
        await pilot.press("enter", "down")  # keys for the Runs table do nothing on a dashboard
        assert screen.live.name == "demo" and active_view(screen) == "view-overview"
        await pilot.press("v", "v", "v")  # the Runs tab reached with v takes the arrows and Enter, unfocused
        table = screen.query_one("#runs-table")
        await wait_for(pilot, "both runs", lambda: table.row_count == 2)
        await pilot.press("down", "enter")
        await wait_for(pilot, "attach old", lambda: screen.live.name == "old")
        assert screen.focused is None  # no focus change: the footer is not rebuilt


def step_event(s: int, total: int) -> StepEvent:
    return StepEvent(time=time.time(), step=s, total=total, loss=3.0, smooth_loss=3.1, lr_mult=1.0, muon_momentum=0.9,
                     tokens_per_sec=5000.0, dt=0.1, t_data=0.0, t_fwd_bwd=0.1, t_optim=0.0, mem_bytes=1,
                     tokens_seen=512 * s, elapsed=s * 0.1)


async def test_runs_table_keeps_up_with_the_attached_run(tmp_path):
    now = time.time()
    events = [e for e in run_events("live", steps=200, end=None, t0=now - 60) if getattr(e, "step", 0) <= 44]
    run_dir = write_run(tmp_path / "base", "live", events, {"pid": os.getpid(), "started": now - 60, "nnodes": 1,
                                                            "command": "torchrun -m engine.train"})
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_train(pilot, "live", final=False)
        await pilot.press("r")
        table = screen.query_one("#runs-table")
        await wait_for(pilot, "the runs table", lambda: table.row_count == 1 and "44/200" in table.get_row_at(0))
        with open(run_dir / "telemetry.jsonl", "a") as f:  # the job trains on while the table is showing
            for s in range(45, 51):
                f.write(step_event(s, 200).model_dump_json() + "\n")
        await wait_for(pilot, "the status bar", lambda: app.status.run == "live running 50/200")
        await wait_for(pilot, "the table to follow", lambda: "50/200" in table.get_row_at(0), timeout=30)


async def test_evals_show_in_the_events_panel(tmp_path):
    write_run(tmp_path / "base", "demo", run_events("demo"))
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_train(pilot, "demo")
        await pilot.press("v", "v")  # Samples & events: the tall events panel
        await wait_for(pilot, "the text view", lambda: active_view(screen) == "view-text")
        await wait_for(pilot, "the evals", lambda: shows(app, "20 val bpb 2.1667", "40 val bpb 1.8333",
                                                         "60 val bpb 1.5000"))


async def test_chart_legend_sits_in_the_title_not_over_the_lines(tmp_path):
    write_run(tmp_path / "base", "demo", run_events("demo"))
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_train(pilot, "demo")
        loss = screen.query_one("#panel-loss")
        plot = loss.query_one(ChartPlot)
        await wait_for(pilot, "the loss chart", lambda: plot.built is not None and plot.builds)
        assert "smooth_loss" not in plot.built.plain and "loss" not in plot.built.plain  # no legend box on the plot
        title = str(loss.border_title)
        assert "loss" in title and "smooth_loss" in title  # each series named (and coloured) in the title


async def test_a_one_point_chart_shows_its_value(tmp_path):
    write_run(tmp_path / "base", "early", run_events("early", steps=25))  # one eval so far, at step 20
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_train(pilot, "early")
        val = screen.query_one("#panel-val_bpb")
        await wait_for(pilot, "the value", lambda: shows(app, "val_bpb 2.1667 at step 20"))
        assert not val.query_one(ChartPlot).display  # no lone faint dot


async def test_footer_leaves_the_palette_hint_readable_at_100_columns(tmp_path):
    write_run(tmp_path / "base", "demo", run_events("demo"))
    app = make_app(tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await open_train(pilot, "demo")
        await pilot.pause()
        footer = screen_text(app).rstrip("\n").splitlines()[-1]
        assert footer.rstrip().endswith("^p palette") and "12345 Tabs" in footer, footer


async def test_the_palette_lists_every_described_binding_and_runs_it(tmp_path):
    write_run(tmp_path / "base", "demo", run_events("demo"))
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_train(pilot, "demo")
        providers = [p if isinstance(p, type) else p() for p in TrainScreen.COMMANDS]
        listed = {text: (run, help_text) for provider in providers
                  for text, run, help_text in provider(screen)._commands()}
        described = [b for b in TrainScreen.BINDINGS if b.description]
        assert described and {f"Train: {b.description}" for b in described} <= set(listed)
        assert all(b.tooltip for b in described)  # every entry says what it does
        runs = next(b for b in described if b.action == "runs")
        assert listed[f"Train: {runs.description}"][1].endswith(f"({runs.key})")
        ran = listed[f"Train: {runs.description}"][0]()  # the same action as the key
        if inspect.isawaitable(ran):
            await ran
        await wait_for(pilot, "the runs view", lambda: active_view(screen) == "train-runs")


async def test_slow_work_on_the_key_path_runs_off_the_ui_thread(tmp_path, monkeypatch):
    """Opening a run (its record, config, feed sources, NVML), closing one (joining its feed's threads) and finding
    the newest run (reading every run dir) run on worker threads: none may hold up the keys."""
    write_run(tmp_path / "base", "old", run_events("old", steps=20), {"started": 1.0})
    write_run(tmp_path / "base", "new", run_events("new", steps=20), {"started": 2.0})
    threads: dict[str, list[bool]] = {"open": [], "close": [], "newest": []}
    open_, close, newest = LiveRun.__init__, LiveRun.close, RunsRoot.newest

    def recorded_open(self: LiveRun, *args, **kw) -> None:
        threads["open"].append(threading.current_thread() is threading.main_thread())
        open_(self, *args, **kw)

    def recorded_close(self: LiveRun) -> None:
        threads["close"].append(threading.current_thread() is threading.main_thread())
        close(self)

    def recorded_newest(self: RunsRoot) -> str | None:
        threads["newest"].append(threading.current_thread() is threading.main_thread())
        return newest(self)

    monkeypatch.setattr(LiveRun, "__init__", recorded_open)
    monkeypatch.setattr(LiveRun, "close", recorded_close)
    monkeypatch.setattr(RunsRoot, "newest", recorded_newest)
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_train(pilot, "new")
        await pilot.press("r")
        table = screen.query_one("#runs-table")
        await wait_for(pilot, "both runs", lambda: table.row_count == 2)
        await pilot.press("down", "enter")
        await wait_for(pilot, "attach old", lambda: screen.live.name == "old")
        await wait_for(pilot, "the old feed closed", lambda: threads["close"])
    assert threads["newest"] and not any(threads["newest"])
    assert len(threads["open"]) == 2 and not any(threads["open"])
    assert not any(threads["close"][:1])  # the switch closed the old feed on a worker (app exit may close inline)
