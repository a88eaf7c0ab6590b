"""Start-up stamps: this process's start time from /proc, and phases in order."""

import sys
import time

import pytest

from engine.startup import StartupClock, process_start_time


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_process_start_time_is_this_process():
    import engine

    started = process_start_time()
    assert started is not None
    # the interpreter started before the engine package was imported, and not long before this test session
    assert started <= engine.IMPORTED_AT + 0.05 and time.time() - started < 3600


def test_marks_keep_their_order():
    clock = StartupClock(imported_at=time.time())
    for phase in ("imports", "data", "model"):
        clock.mark(phase)
    names = list(clock.stamps)
    assert names[-3:] == ["imports", "data", "model"] and "engine_import" in names
    values = list(clock.stamps.values())
    assert values == sorted(values)
