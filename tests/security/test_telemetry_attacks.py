"""Poisoned telemetry (issue 12, "Telemetry and what the app prints"): a bad line is one counted bad line
whatever it holds, and everything a run wrote is printed as data — never Rich markup, never raw control
characters — by headless follow, `runs attach`, `runs list` and the Train tab's panels."""

from __future__ import annotations

import io
import json
import time

import pytest
from rich.console import Console
from train_screen_helpers import make_app, run_events, screen_text, wait_for, write_run

from engine.control import ControlChannel
from engine.telemetry import TELEMETRY_FILE, ErrorEvent, SampleEvent, TelemetryReader, TelemetryWriter, WarningEvent
from nanochat_cli.cli import main
from nanochat_cli.headless import follow
from nanochat_cli.services.ingest import MetricStore
from nanochat_cli.services.ingest.pipeline import IngestPipeline
from nanochat_cli.services.ingest.sources import JsonlSource
from nanochat_cli.services.runs import RunOrchestrator

NESTED = "[" * 100_000 + "]" * 100_000
MARKUP = ["x[/]", "a = b[/x] + c", "gloo: [/__w/pytorch/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:537] "
          "Connection closed by peer [10.0.0.2]:23456"]
ESCAPES = "\x1b[2J\x1b]0;pwned\x07"


def finished_run(base, name: str, extra_lines: list[bytes] = (), extra_events=()) -> None:
    """A finished run (no live process) whose telemetry holds `extra_lines` among 80 valid events."""
    events = run_events(name, steps=60)
    write_run(base, name, events[:40])
    path = base / "runs" / name / TELEMETRY_FILE
    with open(path, "ab") as f:
        for line in extra_lines:
            f.write(line + b"\n")
    with TelemetryWriter(path, run=name) as w:
        for ev in [*extra_events, *events[40:]]:
            w.emit(ev)


def count_events(base, name) -> int:
    lines = (base / "runs" / name / TELEMETRY_FILE).read_bytes().splitlines()
    return sum(1 for ln in lines if ln.startswith(b'{"v":1,"time"'))  # the writer's lines


# ---- one bad line is one bad line ----------------------------------------------------------------------

BAD_LINES = {
    "nested": NESTED.encode(),
    "nested in a field": b'{"v":1,"event":"warning","time":1,"run":"r","message":' + NESTED.encode() + b"}",
    "not utf-8": b'{"v":1,"event":"warning","message":"\xff\xfe"}',
    "overlong": b'{"v":1,"event":"warning","time":1,"run":"r","message":"' + b"x" * (2 << 20) + b'"}',
}


@pytest.mark.parametrize("kind", list(BAD_LINES))
def test_the_reader_keeps_every_valid_event_around_a_bad_line(tmp_path, kind):
    # before: RecursionError out of read_new, after the offset had moved past the chunk: 80 events lost
    finished_run(tmp_path, "r", [BAD_LINES[kind]])
    valid = count_events(tmp_path, "r")
    reader = TelemetryReader(tmp_path / "runs" / "r" / TELEMETRY_FILE)
    assert len(reader.read_new()) == valid and reader.malformed == 1
    store = MetricStore()  # the TUI's reader, in 1 MB chunks
    IngestPipeline(JsonlSource(tmp_path / "runs" / "r", chunk_bytes=1 << 20), store).pump()
    snap = store.snapshot()
    assert snap.counters.events == valid and snap.counters.malformed == 1


def test_an_unterminated_overlong_line_is_skipped_to_its_newline(tmp_path):
    path = tmp_path / TELEMETRY_FILE
    path.write_bytes(b"x" * (3 << 20))  # a writer that never ends its line
    reader = TelemetryReader(path)
    assert reader.read_new(max_bytes=1 << 20) == [] and reader.malformed == 1
    with TelemetryWriter(path, run="r") as w:
        path.open("ab").write(b"yyyy\n")
        w.emit("warning", message="after")
    events = []
    while batch := reader.read_new(max_bytes=1 << 20):
        events += batch
    assert [e.message for e in events] == ["after"] and reader.malformed == 1


def test_every_cli_reader_survives_a_nested_line(tmp_path, capsys):
    # before: `runs list|attach|stop` and `train --headless` ended in "internal error (RecursionError …)",
    # for good: the run could not even be stopped from the CLI any more
    finished_run(tmp_path / "base", "deep", [BAD_LINES["nested"]])
    for argv in (["runs", "list"], ["runs", "attach", "deep"], ["runs", "stop", "deep"]):
        assert main(argv) == 0, argv
        out = capsys.readouterr()
        assert "internal error" not in out.err and "Recursion" not in out.out + out.err
    out = io.StringIO()
    assert follow(RunOrchestrator(tmp_path / "base"), "deep", Console(file=out, width=200)) == 0  # headless
    assert "run finished at step 60" in out.getvalue()


def test_a_nested_control_line_is_rejected_not_fatal(tmp_path):
    # the trainer's reader of control.jsonl: before, json.loads raised RecursionError inside the training loop
    (tmp_path / "control.jsonl").write_text(NESTED + '\n{"kind": "save_now"}\n')
    channel = ControlChannel(tmp_path)
    (req,) = channel.poll(1)
    assert req.kind == "save_now" and len(channel.rejected) == 1 and not channel.rejected[0].ok


# ---- run text is data ---------------------------------------------------------------------------------

def hostile_events(name: str):
    out = []
    for i, text in enumerate([*MARKUP, ESCAPES]):
        out += [WarningEvent(time=1e9 + i, run=name, message=text),
                SampleEvent(time=1e9 + i, run=name, step=i, prompt=text, text=text),
                ErrorEvent(time=1e9 + i, run=name, message=text, traceback="")]
    return out


def assert_printed_as_data(text: str) -> None:
    for m in MARKUP:
        assert m in text, f"{m!r} not printed literally"
    assert "\\x1b[2J\\x1b]0;pwned\\x07" in text  # visible, spelled out
    assert "\x1b]0;" not in text and "\x1b[2J" not in text and "\x07" not in text


@pytest.mark.parametrize("terminal", [False, True])
def test_headless_follow_prints_run_text_literally(tmp_path, terminal):
    # before: MarkupError ("closing tag '[/]' … has nothing to close") ended the follower; the escape
    # sequence went to the terminal raw (clear screen, new window title)
    finished_run(tmp_path, "hostile", extra_events=hostile_events("hostile"))
    out = io.StringIO()
    console = Console(file=out, width=400, force_terminal=terminal, color_system="standard" if terminal else None)
    assert follow(RunOrchestrator(tmp_path), "hostile", console) == 0
    assert_printed_as_data(out.getvalue())


def test_runs_attach_and_list_print_run_text_literally(tmp_path, capsys):
    base = tmp_path / "base"
    finished_run(base, "hostile", extra_events=hostile_events("hostile"))
    odd = base / "runs" / "[bold]x[red]"  # a run dir named like markup, by hand
    odd.mkdir()
    (odd / TELEMETRY_FILE).write_text("")
    assert main(["runs", "attach", "hostile"]) == 0
    assert_printed_as_data(capsys.readouterr().out)
    assert main(["runs", "list"]) == 0
    assert "[bold]x[red]" in capsys.readouterr().out


async def test_the_train_tab_shows_run_text_literally(tmp_path):
    # the Events and Samples panels, the header and the toasts: text shown, escape codes spelled out
    events = run_events("hostile", steps=20, end=None, t0=time.time() - 30)
    events += hostile_events("hostile")
    write_run(tmp_path / "base", "hostile", events, {"started": time.time() - 30, "nnodes": 1})
    with open(tmp_path / "base" / "runs" / "hostile" / TELEMETRY_FILE, "a") as f:
        f.write(json.dumps({"v": 1, "event": "warning", "message": ESCAPES + "[/]"}) + "\n")  # malformed: no time
        f.write(NESTED + "\n")
    app = make_app(tmp_path)
    async with app.run_test(size=(200, 50)) as pilot:
        await pilot.press("2")
        screen = app.screen
        await wait_for(pilot, "attach", lambda: getattr(screen, "live", None) is not None)
        await wait_for(pilot, "the events", lambda: "a = b[/x] + c" in screen_text(app))
        await wait_for(pilot, "the tabs", lambda: "Samples & events" in screen_text(app))
        await pilot.press("v", "v")
        text = screen_text(app)
        assert "\\x1b[2J\\x1b]0;pwned" in text  # spelled out in the Events and Samples panels
        assert "\x1b" not in text and "\x07" not in text  # screen_text has no styles: any ESC came from the run
        assert "malformed telemetry line" in text  # the bad lines are counted in the header, shown as data
