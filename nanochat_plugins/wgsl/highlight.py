"""WGSL syntax colours from the plugin's own lexer: ANSI for the terminal, (text, style) spans for the TUI."""

from __future__ import annotations

from nanochat_plugins.wgsl import lexer

STYLES = {  # lexer kind -> a Rich style name (the TUI) and an ANSI SGR code (the terminal)
    lexer.KEYWORD: ("bold magenta", "1;35"),
    lexer.TYPE: ("cyan", "36"),
    lexer.BUILTIN: ("blue", "34"),
    lexer.ATTRIBUTE: ("yellow", "33"),
    lexer.NUMBER: ("green", "32"),
    lexer.COMMENT: ("dim", "2"),
    lexer.ENUMERANT: ("cyan", "36"),
    lexer.ERROR: ("bold red", "1;31"),
}


def spans(source: str) -> list[tuple[str, str]]:
    """(text, Rich style or '') pieces that concatenate back to `source`."""
    return [(t.text, STYLES.get(t.kind, ("", ""))[0]) for t in lexer.lex(source)]


def highlight(source: str, color: bool = True) -> str:
    """`source` with ANSI colours (unchanged when `color` is False)."""
    if not color:
        return source
    out = []
    for t in lexer.lex(source):
        code = STYLES.get(t.kind, ("", ""))[1]
        out.append(f"\x1b[{code}m{t.text}\x1b[0m" if code else t.text)
    return "".join(out)
