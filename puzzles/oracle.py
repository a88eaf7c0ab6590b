"""The oracle a puzzle is verified against: the installed engine, or a stock nanochat checkout.

`--oracle engine` (the default) imports this project's `engine` package. `--oracle nanochat=PATH` puts
PATH (a folder holding `nanochat/gpt.py`) first on sys.path and imports stock nanochat's modules from it;
checks that stock nanochat has no importable counterpart for are reported as skipped, never passed.
`peek` prints the oracle's own source lines with `inspect`, headed `file:first-last  name`.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from puzzles.errors import PuzzleError


class Skip(Exception):
    """A check this oracle cannot answer (raised inside a check; the harness reports it as skipped)."""


class Oracle:
    def __init__(self, kind: str = "engine", path: Path | None = None):
        self.kind, self.path = kind, path

    @property
    def is_engine(self) -> bool:
        return self.kind == "engine"

    def __str__(self) -> str:
        return "engine" if self.is_engine else f"nanochat at {self.path}"

    def nanochat(self, module: str) -> ModuleType:
        """Stock nanochat's `nanochat.<module>`; Skip when verifying against the engine."""
        if self.is_engine:
            raise Skip("needs --oracle nanochat=PATH")
        return importlib.import_module(f"nanochat.{module}")

    def require_engine(self, why: str) -> None:
        if not self.is_engine:
            raise Skip(f"stock nanochat has no importable {why}")

    def root(self) -> Path:
        """The folder source paths are shown relative to."""
        if self.is_engine:
            import engine

            return Path(engine.__file__).resolve().parents[1]
        return self.path

    def peek(self, targets: list[str]) -> str:
        """The source of each "module:Qualified.name" target, read from the oracle's installed files."""
        chunks = []
        for target in targets:
            try:
                file, start, lines = source_of(target)
            except ModuleNotFoundError as e:  # an older engine without that piece: say so, show the rest
                chunks.append(f"── {target}: not in this {self.kind} ({e})")
                continue
            try:
                shown = file.relative_to(self.root())
            except ValueError:
                shown = file
            name = target.partition(":")[2] or target
            header = f"── {shown}:{start}-{start + len(lines) - 1}  {name} "
            chunks.append(header + "─" * max(0, 100 - len(header)) + "\n" + "".join(lines).rstrip("\n"))
        return "\n\n".join(chunks) + "\n"


def resolve(target: str) -> Any:
    """"engine.gpt:GPT._rotary_tables" -> that function object."""
    module_name, _, qualname = target.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in qualname.split(".") if qualname else []:
        obj = getattr(obj, part)
    return obj


def source_of(target: str) -> tuple[Path, int, list[str]]:
    """(file, first line, lines) of a target: `inspect` for modules, classes and functions; for a module-level
    constant (a tuple of coefficients, say) its assignment statement, found in the module's syntax tree."""
    obj = resolve(target)
    if callable(obj):
        obj = inspect.unwrap(obj)  # the function under a decorator (a context manager, say), as written
    try:
        lines, start = inspect.getsourcelines(obj)
        return Path(inspect.getsourcefile(obj) or "?").resolve(), start, lines
    except TypeError:  # not code: look for `NAME = ...` in its module
        pass
    module_name, _, qualname = target.partition(":")
    module = importlib.import_module(module_name)
    file = Path(inspect.getsourcefile(module) or "?").resolve()
    text = file.read_text().splitlines(keepends=True)
    for node in ast.parse("".join(text)).body:
        names = [t.id for t in getattr(node, "targets", [getattr(node, "target", None)]) if isinstance(t, ast.Name)]
        if qualname in names:
            return file, node.lineno, text[node.lineno - 1:node.end_lineno]
    raise PuzzleError(f"peek target {target}: not a function, class or module-level assignment: fix the PEEK list")


def parse_oracle(spec: str) -> Oracle:
    """"engine" or "nanochat=PATH" (a stock nanochat checkout: the folder that holds nanochat/gpt.py)."""
    if spec == "engine":
        return Oracle()
    kind, sep, raw = spec.partition("=")
    if kind != "nanochat" or not sep or not raw:
        raise PuzzleError(f"--oracle {spec!r}: unknown: use 'engine' or 'nanochat=PATH' (a stock nanochat checkout)")
    path = Path(raw).expanduser().resolve()
    if not (path / "nanochat" / "gpt.py").is_file():
        raise PuzzleError(f"--oracle nanochat={raw}: {path} holds no nanochat/gpt.py: pass the folder of a stock "
                          "nanochat checkout (the one with nanochat/ and scripts/)")
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))
    try:
        importlib.import_module("nanochat.gpt")
    except Exception as e:  # a broken or incompatible checkout: say so in one line
        raise PuzzleError(f"--oracle nanochat={raw}: importing nanochat.gpt failed ({type(e).__name__}: {e}): "
                          "install its dependencies or pass another checkout") from None
    return Oracle("nanochat", path)
