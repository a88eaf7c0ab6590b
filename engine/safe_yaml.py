"""The one way YAML written by users is read: bounded size, nesting and alias expansion; one-line errors.

`yaml.safe_load` refuses Python objects but not resource attacks: a 500-byte "billion laughs" file whose
aliases expand to 9^9 nodes (a reference graph the loader builds in microseconds, that whatever walks
it next expands for minutes and gigabytes), `[[[[...` nested past Python's recursion limit, a 50 MB
file, bytes that are not UTF-8. This loader refuses each before it costs anything:

- the file is read only up to MAX_BYTES (+1 to detect more), never whole;
- it must decode as UTF-8;
- a node nested deeper than MAX_DEPTH is refused while scanning (flow `[[[`) or composing (block nesting),
  long before Python's recursion limit;
- every alias adds the expanded size of its target to a running count; past MAX_ALIAS_NODES the file is
  refused, so anchors and merge keys (`<<: *defaults`) still work but exponential fan-out does not;
- an alias inside the node it names (a self-referencing structure) is refused.

Pure PyYAML (no libyaml): the hooks need the Python composer, and config files are small.
Torch-free: engine.train's --config, the CLI and the TUI all use it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from engine.errors import EngineError

# 256 KiB: prefabs, layouts and prompt sets are a few KB; a file this big is not a hand-written config, and the
# pure-Python parser needs seconds per MiB on a busy machine
MAX_BYTES = 256 * 1024
MAX_DEPTH = 64  # nesting levels; configs use 2-4
MAX_ALIAS_NODES = 10_000  # nodes that aliases may add when expanded; a billion-laughs file needs 10^9
_MESSAGE_CHARS = 200  # cap on quoted parser text in an error line


class YamlError(EngineError):
    """A YAML file or text that was refused or could not be read; the message is one line."""


class _Refused(yaml.YAMLError):
    def __init__(self, message: str, mark: yaml.Mark | None) -> None:
        super().__init__(message)
        self.message, self.mark = message, mark


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader that counts nesting depth and alias expansion while it composes the node graph."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._alias_nodes = 0
        self._size: dict[int, int] = {}  # id(node) -> nodes in its full expansion (only finished nodes)

    def fetch_flow_collection_start(self, TokenClass: type) -> None:
        # refuse `[[[[...` as the scanner meets it: it would otherwise scan the whole run of brackets first
        if self.flow_level >= MAX_DEPTH:
            raise _Refused(f"nested more than {MAX_DEPTH} levels deep: flatten it", self.get_mark())
        super().fetch_flow_collection_start(TokenClass)

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            target = self.anchors.get(event.anchor)
            if target is not None:  # an undefined alias is left to PyYAML's own error
                size = self._size.get(id(target))
                if size is None:
                    raise _Refused(
                        f"alias *{_clip(event.anchor)} is used inside the node it names (an endless "
                        "structure): write the values out instead",
                        event.start_mark,
                    )
                self._alias_nodes += size
                if self._alias_nodes > MAX_ALIAS_NODES:
                    raise _Refused(
                        f"aliases expand to more than {MAX_ALIAS_NODES:,} nodes (an alias bomb?): write "
                        "the values out or use fewer aliases",
                        event.start_mark,
                    )
            return super().compose_node(parent, index)
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise _Refused(f"nested more than {MAX_DEPTH} levels deep: flatten it", self.peek_event().start_mark)
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        else:
            children = []
        self._size[id(node)] = 1 + sum(self._size.get(id(c), 1) for c in children)
        return node


def _clip(text: str) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= _MESSAGE_CHARS else text[:_MESSAGE_CHARS] + "…"


def _where(mark: yaml.Mark | None) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""


def load_yaml_text(text: str, source: str) -> Any:
    """Parse YAML text (what yaml.safe_load returns) within the bounds above; `source` names it in errors."""
    try:
        return yaml.load(text, Loader=_BoundedLoader)  # noqa: S506 - _BoundedLoader is a SafeLoader
    except _Refused as e:
        raise YamlError(f"{source}: {_where(e.mark)}{e.message}") from None
    except yaml.MarkedYAMLError as e:
        what = _clip(e.problem or e.context or "syntax error")
        raise YamlError(
            f"{source}: not valid YAML ({_where(e.problem_mark or e.context_mark)}{what}): fix the syntax"
        ) from None
    except yaml.YAMLError as e:  # ReaderError (control characters) and kin carry no mark
        raise YamlError(f"{source}: not valid YAML ({_clip(str(e).splitlines()[0])}): fix the file") from None
    except (ValueError, OverflowError) as e:  # a tagged value the constructor cannot build (!!int "x", 5000 digits)
        raise YamlError(f"{source}: a value cannot be read ({_clip(str(e))}): fix or quote it") from None


def read_text_capped(path: str | Path, max_bytes: int = MAX_BYTES, what: str = "config file") -> str:
    """The UTF-8 text of `path`, refusing (YamlError, one line) a missing, unreadable, oversized or non-UTF-8 file.

    Reads at most max_bytes + 1 bytes, so a huge file or an endless device costs nothing.
    """
    p = Path(path)
    try:
        with open(p, "rb") as f:
            data = f.read(max_bytes + 1)
    except FileNotFoundError:
        raise YamlError(f"{p}: file not found: check the path") from None
    except IsADirectoryError:
        raise YamlError(f"{p}: is a directory: give the path of a YAML file") from None
    except OSError as e:
        raise YamlError(f"{p}: cannot read it ({e.strerror or e}): check the path and its permissions") from None
    if len(data) > max_bytes:
        raise YamlError(
            f"{p}: too large for a {what} (over {max_bytes // 1024:,} KiB): point to the right file or trim it"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise YamlError(
            f"{p}: not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start}): save it as "
            "UTF-8, or remove it if it is not a config file"
        ) from None


def load_yaml_file(path: str | Path, max_bytes: int = MAX_BYTES, what: str = "config file") -> Any:
    """Read and parse a user's YAML file within the bounds above; every problem is a one-line YamlError."""
    return load_yaml_text(read_text_capped(path, max_bytes, what), str(path))
