"""The schema's regular expressions read the way JSON Schema means them: ECMA-262, not Python.

JSON Schema patterns are ECMA-262 regexes, and check-jsonschema (which GitHub-workflow linting uses)
evaluates them that way. Python's `re` and `regex` read `\\d` and `\\w` as Unicode classes: `\\d` matches
'۰' (ARABIC-INDIC DIGIT ZERO), so a plain `jsonschema` validator accepts `version: "۰"` where
check-jsonschema refuses it. `ecma_pattern` rewrites the shorthand classes to ECMA's ASCII sets so the
tokenizer's strict mode, the sample validator and the tests all agree with check-jsonschema.
(`\\s` and `.` are left alone: their differences from ECMA involve only line separators.)
"""

from __future__ import annotations

from functools import cache

# ECMA-262 shorthand classes (with or without the u flag): ASCII only
_CLASSES = {"d": "0-9", "w": "A-Za-z0-9_"}


def ecma_pattern(pattern: str) -> str:
    """`pattern` with `\\d \\D \\w \\W` replaced by their ECMA-262 (ASCII) sets, in and out of brackets."""
    out: list[str] = []
    i, in_class = 0, False
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            nxt = pattern[i + 1]
            low = nxt.lower()
            if low in _CLASSES:
                chars = _CLASSES[low]
                if in_class:  # a negated shorthand inside brackets cannot be spelled as a range: keep it
                    out.append(chars if nxt.islower() else pattern[i:i + 2])
                else:
                    out.append(f"[{chars}]" if nxt.islower() else f"[^{chars}]")
            else:
                out.append(pattern[i:i + 2])
            i += 2
            continue
        if c == "[" and not in_class:
            in_class = True
            out.append(c)
            if pattern[i + 1:i + 2] == "^":
                out.append("^")
                i += 1
            if pattern[i + 1:i + 2] == "]":  # a leading ] is a literal
                out.append("]")
                i += 1
        elif c == "]" and in_class:
            in_class = False
            out.append(c)
        else:
            out.append(c)
        i += 1
    return "".join(out)


@cache
def compiled(pattern: str):  # noqa: ANN201 - a regex.Pattern
    """The `regex` module's compiled form of the ECMA reading of `pattern` (partial matching needs `regex`)."""
    import regex

    return regex.compile(ecma_pattern(pattern))
