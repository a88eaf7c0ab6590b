"""The System panel on a machine without a GPU says "CPU only" and shows CPU and RAM."""

from __future__ import annotations

import sys

from train_screen_helpers import make_app, run_events, shows, wait_for, write_run

from nanochat_cli.services.ingest import system
from nanochat_cli.services.ingest.system import CPU_ONLY


async def test_system_panel_on_a_cpu_machine_says_cpu_only_and_shows_cpu_and_ram(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # no nvidia-ml-py, no NVIDIA driver: a CPU machine
    monkeypatch.setattr(system, "nvidia_gpu_present", lambda: False)
    write_run(tmp_path / "base", "demo", run_events("demo"))
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("2")
        screen = app.screen
        await wait_for(pilot, "the replay", lambda: screen.live is not None and screen.live.final is not None)
        await pilot.press("v")  # the Details view holds the System panel
        await wait_for(pilot, "the System panel", lambda: shows(app, CPU_ONLY, "CPU ", "RAM "))
        assert not shows(app, "nvidia-ml-py")
