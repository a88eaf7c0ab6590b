"""The conversation view: the user's turns, each reply as it streams in (text, tool calls and tool output in
distinct boxes), and the reply's stats (tokens, time to first token, tokens/s, why it ended).
"""

from __future__ import annotations

from textual.containers import Vertical, VerticalScroll
from textual.widgets import Static

from nanochat_cli.services.chat_modes import ModeResult
from nanochat_cli.services.checkpoints.chat import ReplyStats

SEGMENT_TITLES = {"tool_call": "python", "tool_output": "output"}
FINISH = {"stop": "end of reply", "length": "max tokens reached", "cancelled": "stopped"}


def stats_line(stats: ReplyStats) -> str:
    ttft = f"{stats.ttft_s * 1000:.0f} ms" if stats.ttft_s is not None else "-"
    line = (f"{stats.tokens} token{'s' if stats.tokens != 1 else ''} · first token {ttft} · "
            f"{stats.tokens_per_s:.1f} tok/s · {FINISH.get(stats.finish, stats.finish)}")
    if stats.dropped_turns:
        line += f" · {stats.dropped_turns} oldest turn{'s' if stats.dropped_turns > 1 else ''} left out to fit"
    return line


class ReplyView(Vertical):
    """One reply: a box per segment, appended to as chunks arrive, then the stats line."""

    def __init__(self) -> None:
        super().__init__(classes="chat-reply")
        self.segments: list[tuple[str, str]] = []  # (kind, text) as shown

    def append(self, kind: str, text: str) -> None:
        if self.segments and self.segments[-1][0] == kind:
            kind, before = self.segments[-1]
            self.segments[-1] = (kind, before + text)
            list(self.query(".chat-seg"))[-1].update(self.segments[-1][1])
            return
        self.segments.append((kind, text))
        seg = Static(text, classes=f"chat-seg -{kind}", markup=False)
        seg.border_title = SEGMENT_TITLES.get(kind)
        self.mount(seg)

    @property
    def text(self) -> str:
        return "".join(t for _k, t in self.segments)

    def show_stats(self, stats: ReplyStats) -> None:
        if not self.segments:
            self.mount(Static("(no text)", classes="chat-seg -empty", markup=False))
        for old in self.query(".chat-stats"):
            old.remove()
        self.mount(Static(stats_line(stats), classes="chat-stats", markup=False))
        if stats.context:  # a plugin chat context's status, e.g. MegaContext's LOD map of the document
            self.mount(Static(stats.context, classes="chat-stats chat-context", markup=False))

    def show_error(self, message: str) -> None:
        self.mount(Static(message, classes="chat-stats -error", markup=False))


class ModeResultView(Vertical):
    """A registered mode's result: its text highlighted as its language, then its validation lines."""

    def __init__(self, result: ModeResult, title: str = "") -> None:
        super().__init__(classes="chat-reply mode-result")
        self.result = result
        self.title = title

    def compose(self):  # noqa: ANN201 - a ComposeResult
        from rich.syntax import Syntax

        r = self.result
        body = Static(Syntax(r.text or "(no text)", r.language or "text", theme="ansi_dark", word_wrap=True,
                             background_color="default"), classes="chat-seg mode-text")
        body.border_title = self.title or r.language or None
        yield body
        state = {True: "-valid", False: "-invalid", None: ""}[r.ok]
        for line in r.validation:
            yield Static(line, classes=f"mode-check {state}", markup=False)
        if r.stats:
            yield Static(r.stats, classes="chat-stats", markup=False)


class ChatView(VerticalScroll):
    def add_user(self, text: str, mode: str) -> None:
        self.mount(Static(f"{'you' if mode == 'chat' else 'prompt'} ▸ {text or '(none)'}", classes="chat-user",
                          markup=False))

    def add_reply(self) -> ReplyView:
        reply = ReplyView()
        self.mount(reply)
        return reply

    def add_result(self, result: ModeResult, title: str = "") -> ModeResultView:
        view = ModeResultView(result, title)
        self.mount(view)
        return view

    def add_note(self, text: str) -> None:
        self.mount(Static(text, classes="chat-note", markup=False))

    def clear(self) -> None:
        self.remove_children()
