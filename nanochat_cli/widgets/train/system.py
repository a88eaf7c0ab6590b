"""System panel: this machine's GPUs (util, VRAM, temperature, power), or on a machine without one "CPU only" and
its CPU/RAM, plus MFU and peak memory from the run's own step events."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import Static

from nanochat_cli.widgets.train import fmt
from nanochat_cli.widgets.train.base import Panel


class SystemPanel(Panel):
    def compose(self) -> ComposeResult:
        yield Static("", classes="panel-body", markup=False)

    def paint(self) -> None:
        latest = self.store.latest
        text = Text()
        gpus = int(latest("sys.gpu_count") or 0)
        source = self.store.snapshot().sources.get("system")
        if not gpus and source is not None and source.detail:  # first: what kind of machine this is
            text.append(source.detail + "\n", style="dim")
        for i in range(gpus):
            text.append(f"GPU{i} ", style="bold")
            text.append("util ", style="dim").append(f"{fmt.num(latest(f'sys.gpu{i}.util'), 3)}%  ")
            text.append("VRAM ", style="dim").append(
                f"{fmt.nbytes(latest(f'sys.gpu{i}.mem_used'))} / {fmt.nbytes(latest(f'sys.gpu{i}.mem_total'))}  ")
            temp, power = latest(f"sys.gpu{i}.temp"), latest(f"sys.gpu{i}.power_w")
            if temp is not None:
                text.append(f"{temp:.0f}°C  ")
            if power is not None:
                text.append(f"{power:.0f} W")
            text.append("\n")
        cpu = latest("sys.cpu_percent")
        if cpu is not None:
            text.append("CPU ", style="bold").append(f"{cpu:.0f}%  ")
            text.append("RAM ", style="dim").append(
                f"{fmt.nbytes(latest('sys.ram_used'))} / {fmt.nbytes(latest('sys.ram_total'))}\n")
        else:
            text.append("no machine readings yet\n", style="dim")
        mfu, mem = latest("mfu"), latest("mem_bytes")
        text.append("run ", style="bold").append("MFU ", style="dim")
        text.append(f"{100 * mfu:.1f}%" if mfu is not None else "n/a (peak FLOPs unknown for this device)")
        text.append("  peak mem ", style="dim").append(fmt.nbytes(mem))
        self.query_one(".panel-body", Static).update(text)
