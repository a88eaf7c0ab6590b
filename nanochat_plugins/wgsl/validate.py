"""Validate WGSL with naga (inside wgpu-native): errors as naga reports them, with line and column.

`validate_source(src)` compiles the module on the process's device; naga's report (a codespan diagnostic:
the message, `┌─ wgsl:LINE:COL`, the labelled source line, `= notes`) becomes a `Diagnostic`. Lines count
`\\n`s and columns count characters, 1-based, as naga's do. naga stops at the first error, so an invalid
shader has exactly one diagnostic. `read_shader(path)` is the checked way to read a shader file.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from nanochat_plugins.wgsl import gpu
from nanochat_plugins.wgsl.errors import WgslError

MAX_SHADER_BYTES = 1 << 20  # 1 MiB: far above any compute shader here; keeps naga and the lexer quick

_LOCATION = re.compile(r"┌─\s*(?:wgsl)?:(\d+):(\d+)")
_HEAD = re.compile(r"^Shader (?:'[^']*' )?(?:parsing|validation) error: (.*)$")
_LABEL = re.compile(r"^\s*(?:\d+\s*)?│\s*[\^\-]+\s*(.*)$")
_NOTE = re.compile(r"^\s*= (.*)$")
_GENERIC_HEAD = re.compile(r"(is invalid|is not valid)$")  # "Entry point main at Compute is invalid" needs the why


@dataclass(frozen=True)
class Diagnostic:
    line: int  # 1-based; 0 when naga gave no location
    column: int  # 1-based, in characters
    message: str  # one line
    label: str = ""  # what naga's caret line says about the spot ("unknown identifier")

    def format(self, path: str = "<shader>") -> str:
        """`path:line:col: error: message`, the way linters print."""
        where = f"{path}:{self.line}:{self.column}" if self.line else path
        return f"{where}: error: {self.message}"


@dataclass
class Validation:
    ok: bool
    diagnostics: list[Diagnostic] = field(default_factory=list)
    seconds: float = 0.0


def parse_naga_report(report: str) -> Diagnostic:
    """naga's multi-line report -> one Diagnostic (message + the notes that explain a generic head)."""
    lines = report.splitlines()
    head = ""
    for ln in lines:
        if m := _HEAD.match(ln.strip()):
            head = m.group(1).strip()
            break
    line = col = 0
    label = ""
    notes: list[str] = []
    for ln in lines:
        if not line and (m := _LOCATION.search(ln)):
            line, col = int(m.group(1)), int(m.group(2))
        elif line and not label and (m := _LABEL.match(ln)) and m.group(1).strip():
            label = m.group(1).strip()
        elif (m := _NOTE.match(ln)) and m.group(1).strip() not in notes:
            notes.append(m.group(1).strip())
    if label.startswith("naga::"):  # an IR handle, not a human label
        label = ""
    if not head:  # not naga's usual shape: keep its first meaningful line
        meaningful = [ln.strip() for ln in lines if ln.strip() and ln.strip() not in ("Validation Error", "Caused by:")
                      and not ln.strip().startswith("In wgpu")]
        head = meaningful[0] if meaningful else "invalid shader"
    message = head
    if notes and (_GENERIC_HEAD.search(head) or head.startswith("invalid")):
        message = f"{head}: {': '.join(notes)}"
    elif notes:
        message = f"{head} ({'; '.join(notes)})"
    if label and label.lower() not in message.lower():
        message = f"{message} [{label}]"
    return Diagnostic(line, col, " ".join(message.split()), label)


def validate_source(source: str) -> Validation:
    """Compile `source` with naga on the device. Raises NoAdapter (one line, with the fix) when there is none."""
    dev = gpu.device()
    t0 = time.perf_counter()
    try:
        dev.create_shader_module(code=source)
    except Exception as e:  # GPUValidationError (or a wgpu error type from another version): naga's report
        return Validation(False, [parse_naga_report(str(e))], time.perf_counter() - t0)
    return Validation(True, [], time.perf_counter() - t0)


def read_shader(path: str | Path) -> str:
    """A shader file's text, or a one-line WgslError: missing, a folder, too big, not UTF-8, or empty."""
    p = Path(path)
    try:
        size = p.stat().st_size
    except FileNotFoundError:
        raise WgslError(f"{p}: no such file: check the path") from None
    except OSError as e:
        raise WgslError(f"{p}: cannot read ({e.strerror}): check the path and its permissions") from None
    if p.is_dir():
        raise WgslError(f"{p}: is a folder: pass .wgsl files (e.g. {p}/*.wgsl)")
    if size > MAX_SHADER_BYTES:
        raise WgslError(f"{p}: {size / 1e6:.1f} MB is over the {MAX_SHADER_BYTES >> 20} MiB limit for a shader: "
                        f"pass the WGSL source itself, not a generated or binary file")
    try:
        data = p.read_bytes()
    except OSError as e:
        raise WgslError(f"{p}: cannot read ({e.strerror}): check the path and its permissions") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise WgslError(f"{p}: not UTF-8 text (byte 0x{data[e.start]:02x} at line {line}): WGSL source must be "
                        f"UTF-8; re-save it as UTF-8") from None
    if not text.strip():
        raise WgslError(f"{p}: empty: a shader needs at least one declaration (e.g. an @compute fn)")
    return text.removeprefix("\ufeff")
