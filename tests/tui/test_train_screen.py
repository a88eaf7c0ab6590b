"""Pilot tests of the Train screen on hand-written telemetry: replay of a finished run, malformed and partial
lines, hung detection, threshold highlights, the control round trip (request written, ack toasted), the
patch form's validation, layout editing while attached, the command modal, plugin failures at start-up."""

from __future__ import annotations

import json
import math
import os
import time

import pytest
from textual.content import Content
from train_screen_helpers import T0, make_app, run_events, screen_text, shows, toasts, wait_for, write_run

from engine.telemetry import ControlAckEvent, SinkStatusEvent, StepEvent
from nanochat_cli.screens.confirm import ConfirmScreen
from nanochat_cli.screens.run_modals import (
    AskScreen,
    CommandScreen,
    PatchScreen,
    PickScreen,
    hot_specs,
    node_commands,
    remedy,
)
from nanochat_cli.screens.train import TrainScreen
from nanochat_cli.services.panels import load_layout
from nanochat_cli.widgets.train.base import Panel
from nanochat_cli.widgets.train.chart import step_ticks
from nanochat_cli.widgets.train.dashboard import Cell, plan, row_sizes


async def open_train(pilot, name: str | None = None, final: bool = True) -> TrainScreen:
    await pilot.press("2")
    screen = pilot.app.screen
    assert isinstance(screen, TrainScreen)
    if name is not None:
        await wait_for(pilot, f"attach {name}", lambda: screen.live is not None and screen.live.name == name)
    if final:
        await wait_for(pilot, "the run's end", lambda: screen.live.final is not None)
    await pilot.pause()
    return screen


def panel(screen: TrainScreen, panel_id: str) -> Panel:
    return screen.query_one(f"#panel-{panel_id}", Panel)


# ---- replay ------------------------------------------------------------------------------------------

async def test_finished_run_is_replayed_into_the_panels(tmp_path):
    write_run(tmp_path / "base", "demo", run_events("demo"))
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_train(pilot, "demo")
        assert screen.live.final.status == "finished" and screen.liveness.status == "finished"
        shown = ["demo  finished", "Loss · loss", "step 60 / 60", "100.0%", "Validation bpb · val_bpb 1.5",
                 "checkpoint (final) step 60", "run finished at step 60"]
        await wait_for(pilot, "the panels", lambda: shows(app, *shown))
        assert app.status.run == "demo finished 60/60"
        await pilot.press("r")  # the runs list
        await wait_for(pilot, "the runs table", lambda: screen.query_one("#runs-table").row_count == 1)
        assert [str(c) for c in screen.query_one("#runs-table").get_row_at(0)][:3] == ["▶ demo", "finished", "60/60"]


async def test_rebuilds_that_overlap_leave_one_set_of_tabs(tmp_path):
    """Two attaches arrive as separate tasks (call_from_thread): their rebuilds once interleaved at the awaits and
    the first published tabs the second had removed, crashing the app with NoMatches on '#train-tabs'."""
    import asyncio

    from nanochat_cli.widgets.train.views import RunViews

    write_run(tmp_path / "base", "demo", run_events("demo"))
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_train(pilot, "demo")
        await asyncio.gather(*(screen._rebuild() for _ in range(3)))
        await pilot.pause(0.2)
        views = screen.query(RunViews)
        assert len(views) == 1 and screen.views is views.first()
        assert screen.views.layout_view is not None and screen.views.runs_table.is_attached


async def test_header_shows_sink_health_from_the_engine(tmp_path):
    events = run_events("synced", steps=10)
    events.insert(1, SinkStatusEvent(time=T0, sink="wandb", ok=True, detail="online",
                                     url="https://wandb.ai/me/nanochat/runs/abc123"))
    events.insert(2, SinkStatusEvent(time=T0, sink="otel", ok=False, detail="exporter unreachable"))
    write_run(tmp_path / "base", "synced", events)
    app = make_app(tmp_path)
    async with app.run_test(size=(160, 40)) as pilot:
        await open_train(pilot, "synced")
        await wait_for(pilot, "the sinks", lambda: shows(app, "wandb ok https://wandb.ai/me/nanochat/runs/abc123",
                                                         "otel down"))


async def test_no_runs_says_how_to_start_one(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_train(pilot, final=False)
        assert screen.live is None
        await wait_for(pilot, "the empty state", lambda: shows(app, "No run yet", "Press t on the Config tab"))
        await pilot.press("s")
        assert any("No run to save" in t for t in toasts(app))


async def test_runs_list_attaches_the_picked_run(tmp_path):
    write_run(tmp_path / "base", "old", run_events("old", steps=20), {"started": T0})
    write_run(tmp_path / "base", "new", run_events("new", steps=30), {"started": T0 + 100})
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_train(pilot, "new")  # the newest run is attached first
        await pilot.press("r")
        table = screen.query_one("#runs-table")
        await wait_for(pilot, "both runs", lambda: table.row_count == 2)
        await pilot.press("down", "enter")
        await wait_for(pilot, "attach old", lambda: screen.live.name == "old")
        await wait_for(pilot, "its history", lambda: screen.live.store.run_state().step == 20)


# ---- bad input ---------------------------------------------------------------------------------------

async def test_malformed_and_partial_lines_do_not_break_the_screen(tmp_path):
    run_dir = write_run(tmp_path / "base", "rough", run_events("rough", steps=10, end=None))
    good = StepEvent(time=T0 + 11, run="rough", step=11, total=10, loss=3.5, smooth_loss=3.6, lr_mult=1.0,
                     muon_momentum=0.9, tokens_per_sec=5000.0, dt=0.1, t_data=0.0, t_fwd_bwd=0.1, t_optim=0.0,
                     mem_bytes=1, tokens_seen=5632, elapsed=1.1).model_dump_json()
    with open(run_dir / "telemetry.jsonl", "a") as f:
        f.write('{"v": 1, "event": "step", "step": "eleven"}\n')  # wrong type
        f.write("not json at all\n")
        f.write('{"v": 1, "event": "teleport", "time": 1.0}\n')  # unknown event
        f.write(good[:40])  # a line still being written
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_train(pilot, "rough", final=False)
        await wait_for(pilot, "the malformed count", lambda: "3 malformed telemetry line(s)" in screen_text(app))
        assert screen.live.store.run_state().step == 10
        with open(run_dir / "telemetry.jsonl", "a") as f:  # the writer finishes its line
            f.write(good[40:] + "\n")
        await wait_for(pilot, "the completed line", lambda: screen.live.store.run_state().step == 11, timeout=10)
        await wait_for(pilot, "the panel", lambda: "step 11 / 10" in screen_text(app))


async def test_nan_loss_highlights_the_loss_panel(tmp_path):
    events = run_events("nan", steps=30, end=None)
    events.append(StepEvent(time=T0 + 31, step=31, total=60, loss=math.nan, smooth_loss=math.nan, lr_mult=1.0,
                            muon_momentum=0.9, tokens_per_sec=5000.0, dt=0.1, t_data=0.0, t_fwd_bwd=0.1,
                            t_optim=0.0, mem_bytes=1, tokens_seen=1, elapsed=3.1))
    write_run(tmp_path / "base", "nan", events)
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_train(pilot, "nan", final=False)
        loss = panel(screen, "loss")
        await wait_for(pilot, "the NaN alert", lambda: loss.has_class("-alert-error"))
        assert "loss is nan at step 31" in str(loss.border_subtitle)
        assert "loss nan" in Content.from_markup(loss.border_title).plain.lower()


async def test_spike_warns_and_a_hung_job_is_called_hung(tmp_path, monkeypatch):
    now = time.time()
    events = run_events("spiky", steps=40, end=None, t0=now - 600)
    events.append(StepEvent(time=now - 500, step=41, total=60, loss=40.0, smooth_loss=8.0, lr_mult=1.0,
                            muon_momentum=0.9, tokens_per_sec=5000.0, dt=0.1, t_data=0.0, t_fwd_bwd=0.1,
                            t_optim=0.0, mem_bytes=1, tokens_seen=1, elapsed=4.1))
    # the job's process: alive (this test process stands in for it), but silent for 500 s
    write_run(tmp_path / "base", "spiky", events, {"pid": os.getpid(), "started": now - 600, "nnodes": 1,
                                                   "command": "torchrun --standalone -m engine.train"})
    monkeypatch.setattr(TrainScreen, "hung_after_s", 300.0)
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_train(pilot, "spiky", final=False)
        await wait_for(pilot, "hung", lambda: screen.liveness is not None and screen.liveness.status == "hung")
        await wait_for(pilot, "the hung header", lambda: shows(app, "no telemetry for 8m", "hung?"))
        loss = panel(screen, "loss")
        await wait_for(pilot, "the spike alert", lambda: loss.has_class("-alert-warn"))
        assert "loss spiked to 40" in str(loss.border_subtitle)
        progress = panel(screen, "progress")  # its stall threshold (120 s) fires too
        await wait_for(pilot, "the stall alert", lambda: "stalled?" in str(progress.border_subtitle))
        # a live job may be stopped: the question comes first, and "no" sends nothing
        await pilot.press("x")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        assert not (tmp_path / "base" / "runs" / "spiky" / "control.jsonl").exists()


# ---- control round trip ------------------------------------------------------------------------------

def live_run(tmp_path, name: str = "live") -> tuple:
    """A run whose 'process' is this test process, with fresh telemetry (not hung)."""
    now = time.time()
    run_dir = write_run(tmp_path / "base", name, run_events(name, steps=30, end=None, t0=now - 40),
                        {"pid": os.getpid(), "started": now - 40, "nnodes": 1, "command": "torchrun -m engine.train"})
    return run_dir, now


def requests(run_dir) -> list[dict]:
    path = run_dir / "control.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def append_ack(run_dir, request: dict, ok: bool, message: str, applied: dict | None = None) -> None:
    ack = ControlAckEvent(run=run_dir.name, request_id=request["id"], kind=request["kind"], ok=ok, message=message,
                          step=31, applied=applied or {})
    with open(run_dir / "telemetry.jsonl", "a") as f:
        f.write(ack.model_dump_json() + "\n")


async def test_save_now_and_patch_round_trip_with_ack_toasts(tmp_path):
    run_dir, _ = live_run(tmp_path)
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_train(pilot, "live", final=False)
        await wait_for(pilot, "running", lambda: screen.liveness is not None and screen.liveness.status == "running")
        await pilot.press("s")
        (save,) = await wait_for(pilot, "the save request", lambda: requests(run_dir))
        assert save["kind"] == "save_now" and save["id"] in screen.live.pending
        append_ack(run_dir, save, True, "checkpoint at the next step boundary")
        await wait_for(pilot, "the ack toast",
                       lambda: "save_now accepted: checkpoint at the next step boundary" in toasts(app))
        assert screen.live.pending == {}

        await pilot.press("p")
        form = await wait_for(pilot, "the patch form", lambda: isinstance(app.screen, PatchScreen) and app.screen)
        assert set(form.specs) == set(hot_specs()) and "lr_scale" in form.specs
        assert form.query_one("#hot-lr_scale").value == "0.5"  # the start config with the replayed patch applied
        lr = form.query_one("#hot-lr_scale")
        lr.focus()
        for bad, why in (("abc", "not a number"), ("20", "out of range")):
            lr.value = bad
            await pilot.press("enter")  # submit from the field (a click could land on a moving button)
            await wait_for(pilot, why, lambda why=why: why in str(form.query_one("#patch-error").content))
            assert app.screen is form
        lr.value = "0.25"
        form.query_one("#hot-log_every").value = "5"
        await pilot.press("enter")
        await wait_for(pilot, "the patch request", lambda: len(requests(run_dir)) == 2)
        assert not isinstance(app.screen, PatchScreen)
        patch = requests(run_dir)[-1]
        assert patch["kind"] == "patch" and patch["changes"] == {"lr_scale": 0.25, "log_every": 5}
        append_ack(run_dir, patch, False, "rejected: log_every busy")
        await wait_for(pilot, "the rejection toast", lambda: "patch rejected: rejected: log_every busy" in toasts(app))
        await wait_for(pilot, "the events panel", lambda: "patch rejected" in screen_text(app))


async def test_command_modal_shows_the_exact_command_per_node(tmp_path):
    cmd = ("torchrun --nnodes=2 --node_rank=0 --nproc_per_node=8 --rdzv_backend=c10d --rdzv_endpoint=h0:29500 "
           "--rdzv_id=big -m engine.train -- --config /data/runs/big/config.yaml")
    write_run(tmp_path / "base", "big", run_events("big", steps=10), {"command": cmd, "nnodes": 2, "started": T0})
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await open_train(pilot, "big")
        await pilot.press("c")
        await pilot.pause()
        modal = app.screen
        assert isinstance(modal, CommandScreen) and len(modal.commands) == 2
        assert "--node_rank=1" in modal.commands[1] and modal.commands[0] == cmd
        assert modal.text().startswith("# node 0\n" + cmd)
        await pilot.press("escape")
    assert node_commands("torchrun --standalone x", 1) == ["torchrun --standalone x"]


# ---- layout editing ----------------------------------------------------------------------------------

async def test_layout_edits_while_attached_and_save_as_preset(tmp_path):
    write_run(tmp_path / "base", "demo", run_events("demo"))
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_train(pilot, "demo")
        live = screen.live
        assert screen.editor.layout.name == "default"

        def ids() -> list[str]:
            return [p.panel for p in screen.editor.layout.screen("overview").panels]

        before = ids()
        await pilot.press("a")
        picker = app.screen
        assert isinstance(picker, PickScreen)
        option_ids = [cid for cid, _ in picker.choices]
        assert "system" in option_ids and "loss" not in option_ids  # only panels not on this tab
        await pilot.press(*["down"] * option_ids.index("system"), "enter")
        await wait_for(pilot, "the new panel", lambda: screen.query("#panel-system"))
        assert ids() == before[:1] + ["system"] + before[1:]  # after the focused (first) panel
        assert screen.editor.selected_panel() == "system" and panel(screen, "system").has_class("-selected")

        await pilot.press("right_square_bracket")  # move the focused panel one place on
        await wait_for(pilot, "the move", lambda: ids().index("system") == 2)
        await pilot.press("f")
        ask = app.screen
        assert isinstance(ask, AskScreen)
        ask.query_one("#ask-input").value = "99"
        await pilot.pause()
        await pilot.press("enter")
        assert app.screen is ask and "at most 30" in str(ask.query_one("#ask-error").content)
        ask.query_one("#ask-input").value = "0.5"
        await pilot.press("enter")
        overview = lambda: screen.editor.layout.screen("overview")  # noqa: E731
        await wait_for(pilot, "the rate", lambda: overview().placement("system").refresh_hz == 0.5)
        assert panel(screen, "system").spec.refresh_hz == 0.5

        await pilot.click("#panel-val_bpb")  # select it
        await pilot.press("d")
        await wait_for(pilot, "the removal", lambda: "val_bpb" not in ids())
        first = screen.editor.selected_panel()
        await pilot.press("tab")  # Tab selects the next panel; layout edits act on the selected one
        chosen = screen.editor.selected_panel()
        assert chosen != first and panel(screen, chosen).has_class("-selected")
        assert not panel(screen, first).has_class("-selected")
        await wait_for(pilot, "the edited mark", lambda: "(edited)" in screen_text(app))

        await pilot.press("w")
        ask = app.screen
        ask.query_one("#ask-input").value = "Bad Name"
        await pilot.pause()
        assert "invalid name" in str(ask.query_one("#ask-error").content)
        ask.query_one("#ask-input").value = "mine"
        await pilot.press("enter")
        await pilot.pause()
        saved = tmp_path / "config" / "layouts" / "mine.yaml"
        assert saved.exists() and any("Saved layout mine" in t for t in toasts(app))
        layout = load_layout(saved)
        assert [p.panel for p in layout.screen("overview").panels] == ids()
        assert layout.screen("overview").placement("system").refresh_hz == 0.5
        assert screen.live is live  # the run was never detached or restarted

        await pilot.press("o")
        picker = app.screen
        names = [cid for cid, _ in picker.choices]
        assert {"default", "compact", "mine"} <= set(names)
        await pilot.press(*["down"] * names.index("compact"), "enter")
        await wait_for(pilot, "the compact layout", lambda: screen.editor.layout.name == "compact")
        assert screen.query("#dash-main") and screen.live is live


def test_grid_plan_wraps_wide_panels_and_sizes_rows():
    # width-2 panel after one width-1 panel in a 2-column grid: Textual's grid would overflow the row;
    # a spacer fills the gap so it starts on the next row
    cells = plan(2, [("a", 1, 1), ("wide", 2, 1), ("tall", 1, 2), ("b", 1, 1), ("c", 1, 1)])
    assert cells == [Cell("a", 0, 0, 1, 1), Cell(None, 1, 0, 1, 1), Cell("wide", 0, 1, 2, 1),
                     Cell("tall", 0, 2, 1, 2), Cell("b", 1, 2, 1, 1), Cell("c", 1, 3, 1, 1)]
    kinds = {"a": "progress", "wide": "chart", "tall": "chart", "b": "chart", "c": "log"}
    assert row_sizes(cells, kinds) == ["6", "1fr", "1fr", "1fr"]
    assert step_ticks(1, 60, 5) == [20, 40, 60]  # whole, round steps (plotext would say 15.75)
    assert step_ticks(0, 1000, 6) == [0, 200, 400, 600, 800, 1000]
    assert step_ticks(3, 3, 4) == [3]


def test_remedies_name_the_next_step():
    assert "device_batch_size" in remedy(None, -9, "")
    assert "run.resume" in remedy("base_checkpoints/x: run 'x' already has checkpoints", 1, "")
    assert "data.data_dir" in remedy("data_dir /nope: no such folder", 1, "")
    assert "stderr" in remedy(None, 1, "Segmentation fault")


# ---- plugins -----------------------------------------------------------------------------------------

async def test_a_broken_plugin_is_toasted_and_logged(tmp_path):
    plugin = tmp_path / "config" / "plugins" / "brokenpanels"
    plugin.mkdir(parents=True)
    (plugin / "__init__.py").write_text("def register(registry):\n    raise RuntimeError('no panels today')\n")
    app = make_app(tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        assert "plugin brokenpanels disabled: RuntimeError: no panels today" in toasts(app)
        assert app.current_mode == "config"  # the app goes on
    log = (tmp_path / "config" / "logs" / "app.jsonl").read_text()
    assert "plugin brokenpanels disabled" in log


@pytest.mark.parametrize("size", [(80, 24), (160, 50)])
async def test_small_and_large_terminals_pick_a_fitting_layout(tmp_path, size):
    write_run(tmp_path / "base", "demo", run_events("demo"))
    app = make_app(tmp_path)
    async with app.run_test(size=size) as pilot:
        screen = await open_train(pilot, "demo")
        assert screen.editor.layout.name == ("compact" if size[1] < 32 else "default")
        await wait_for(pilot, "the panels", lambda: shows(app, "Loss · loss", "step 60 / 60"))

