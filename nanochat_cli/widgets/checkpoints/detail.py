"""The selected checkpoint in full: where it is, why it does or does not fit the active config (each reason with
its remedy), and its latest evaluation (val bpb and the eval prompts' completions), or the evaluation running.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import ProgressBar, Static

from nanochat_cli.formatting import file_size
from nanochat_cli.services.checkpoints.compat import Compat
from nanochat_cli.services.checkpoints.entries import CheckpointEntry
from nanochat_cli.services.checkpoints.reports import EvalReport
from nanochat_cli.services.checkpoints.stage_evals import stage_evals, table_rows
from nanochat_cli.widgets.checkpoints.table import STATUS_COLOUR, status_of

ORIGIN = {"ours": "written by nanochat-cli", "stock": "stock nanochat"}


def describe(entry: CheckpointEntry, compat: Compat, show_path: Callable[[Path], str],
             colours: dict[str, str]) -> Text:
    """Header, location, compatibility reasons with remedies, and the eval report, as styled text."""
    status = status_of(entry, compat)
    text = Text()
    text.append(f"{entry.label} · step {entry.step} · {entry.phase} · {ORIGIN[entry.origin]} · ", style="bold")
    text.append(status, style=f"bold {colours.get(STATUS_COLOUR[status], '')}")
    text.append(f"\n{show_path(entry.path)} · {file_size(entry.size_bytes)}", style="dim")
    if entry.complete:
        text.append(" · resumable (full state)" if entry.resumable else " · weights only (no resume)", style="dim")
    if compat.level == "compatible":
        text.append("\n✓ fits the active config: resume it (t) or start a run from its weights (w)",
                    style=colours.get("success", ""))
    for r in compat.reasons:
        colour = colours.get("error" if r.level == "error" else "warning", "")
        text.append(f"\n{'✗' if r.level == 'error' else '!'} {r.message}", style=colour)
        text.append(f"\n  → {r.remedy}" + (" (a applies it)" if r.overrides else ""), style="dim")
    text.append("\n")
    if entry.val_bpb is not None:
        over = f" over {entry.val_tokens:,} tokens" if entry.val_tokens else ""
        text.append(f"\nTraining's last evaluation: val bpb {entry.val_bpb:.4f}{over} of its val split", style="dim")
    if entry.complete:
        text.append_text(describe_stage_evals(entry, colours))
        text.append_text(describe_eval(entry.eval, show_path, colours))
        report = entry.eval
        if (report is not None and report.val_bpb is not None and entry.val_bpb is not None
                and report.eval_tokens != entry.val_tokens):
            text.append("\n(the two val bpb figures cover different token counts, so they differ; e evaluates over "
                        "telemetry.eval_tokens of the active config)", style="dim")
    return text


EVAL_HEAD = ("task", "metric", "value", "baseline", "centred", "n")


def describe_stage_evals(entry: CheckpointEntry, colours: dict[str, str]) -> Text:
    """The eval stages' tables for this step (CORE per task, chat eval per task), from the files beside it."""
    text = Text()
    for result in stage_evals(entry.path, entry.step):
        text.append(f"\n{result.title}", style="bold")
        if result.problem:
            text.append(f": {result.problem}", style=colours.get("error", ""))
            continue
        score = f" {result.score:.4f}" if result.score is not None else ""
        what = " (mean centred accuracy)" if result.suite == "core" else " (mean accuracy)"
        text.append(score, style=f"bold {colours.get('accent', '')}")
        text.append(f"{what} · {result.path.name}", style="dim")
        rows = [EVAL_HEAD, *table_rows(result)]
        widths = [max(len(r[i]) for r in rows) for i in range(len(EVAL_HEAD))]
        for k, row in enumerate(rows):
            cells = [c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))]
            text.append("\n  " + "  ".join(cells), style="dim" if k == 0 else "")
        text.append("\n")
    return text


def describe_eval(report: EvalReport | None, show_path: Callable[[Path], str], colours: dict[str, str]) -> Text:
    text = Text()
    if report is None:
        text.append("\nNot evaluated yet: e measures val bpb and completes the eval prompts (p edits them).",
                    style="dim")
        return text
    text.append("\nEvaluation ", style="bold")
    if report.val_bpb is not None:
        where = show_path(Path(report.data_dir)) if report.data_dir else "?"
        text.append(f"val bpb {report.val_bpb:.4f}", style=f"bold {colours.get('accent', '')}")
        text.append(f" over {report.eval_tokens:,} tokens of {where}")
    else:
        text.append("no val bpb (no held-out data)")
    text.append(f" · {report.seconds:.1f} s on {report.device}", style="dim")
    for s in report.samples:
        text.append(f"\n{s.name} ({s.mode}, {s.tokens} tokens) ", style=colours.get("secondary", ""))
        text.append(s.prompt.replace("\n", "⏎"))
        text.append(" ⟶ ", style="dim")
        text.append(s.completion.replace("\n", "⏎") or "(nothing)", style=colours.get("accent", ""))
    return text


class CheckpointDetail(VerticalScroll):
    def compose(self) -> ComposeResult:
        with Horizontal(id="eval-progress"):
            yield ProgressBar(total=None, show_eta=False, show_percentage=False)
            yield Static("", id="eval-label", markup=False)
        yield Static("", id="detail-text", markup=False)

    def on_mount(self) -> None:
        self.query_one("#eval-progress").display = False

    def show(self, text: Text | str) -> None:
        self.query_one("#detail-text", Static).update(text)

    def evaluating(self, label: str | None) -> None:
        """Show the running evaluation's progress line (None hides it)."""
        self.query_one("#eval-progress").display = label is not None
        self.query_one("#eval-label", Static).update(label or "")
