"""The app's own structured log: JSON lines in the user log dir, plus an in-memory tail for the Logs screen.

One logger ("nanochat_cli") for everything the TUI does. Each line is a JSON object
(ts, level, logger, msg and any extra fields), so it can be grepped or loaded with pandas.
The debug toggle flips the level between INFO and DEBUG at run time. Never log secret values; should one
slip into a message, a field or an exception, the known ones are masked (services/masking.py) before a
record reaches the file or the Logs screen. The log dir is 0700 and its files 0600: records quote
paths, prompts and errors that are nobody else's business.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nanochat_cli.services.fileio import private_dir
from nanochat_cli.services.masking import mask_data

LOGGER_NAME = "nanochat_cli"
LOG_FILE = "app.jsonl"


def log_event(msg: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log one structured event: a short message plus key=value fields that land as JSON keys."""
    logging.getLogger(LOGGER_NAME).log(level, msg, extra={"fields": fields} if fields else None)


def record_to_dict(record: logging.LogRecord, clock: Callable[[], float] | None = None) -> dict[str, Any]:
    """The JSON shape of one record, known secrets masked; `clock` replaces the record time (tests freeze it)."""
    out: dict[str, Any] = {
        "ts": round(clock() if clock else record.created, 3),
        "level": record.levelname,
        "logger": record.name,
        "msg": record.getMessage(),
    }
    out.update(getattr(record, "fields", None) or {})
    if record.exc_info:
        out["exc"] = logging.Formatter().formatException(record.exc_info)
    return mask_data(out)


class PrivateRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """A rotating log whose files are created 0600 (and tightened to 0600 if an older one was not)."""

    def _open(self) -> Any:  # logging's hook: the first file and each file after a rollover
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.fchmod(fd, 0o600)
        return os.fdopen(fd, "a", encoding=self.encoding, errors=self.errors)


class JsonFormatter(logging.Formatter):
    def __init__(self, clock: Callable[[], float] | None = None) -> None:
        super().__init__()
        self.clock = clock

    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(record_to_dict(record, self.clock), default=str)


class TailHandler(logging.Handler):
    """Keeps the last records as dicts and tells listeners (the Logs screen) about new ones.

    Listeners are called from whichever thread logged; they must be thread-safe (Textual's
    post_message is).
    """

    def __init__(self, maxlen: int = 2000, clock: Callable[[], float] | None = None) -> None:
        super().__init__(logging.DEBUG)
        self.records: deque[dict[str, Any]] = deque(maxlen=maxlen)
        self.listeners: list[Callable[[dict[str, Any]], None]] = []
        self.clock = clock

    def emit(self, record: logging.LogRecord) -> None:
        item = record_to_dict(record, self.clock)
        self.records.append(item)
        for listener in list(self.listeners):
            listener(item)


@dataclass
class AppLog:
    logger: logging.Logger
    path: Path
    tail: TailHandler
    handlers: list[logging.Handler] = field(default_factory=list)

    @property
    def debug(self) -> bool:
        return self.logger.level <= logging.DEBUG

    def set_debug(self, on: bool) -> None:
        self.logger.setLevel(logging.DEBUG if on else logging.INFO)
        log_event("debug log " + ("on" if on else "off"))

    def close(self) -> None:
        for h in self.handlers:
            self.logger.removeHandler(h)
            h.close()
        self.handlers.clear()


def setup_logging(log_dir: Path, debug: bool = False, clock: Callable[[], float] | None = None) -> AppLog:
    """Attach a rotating JSON-lines file and the in-memory tail to the app logger (replacing earlier ones)."""
    logger = logging.getLogger(LOGGER_NAME)
    for h in list(logger.handlers):  # a second app in the same process (tests) starts clean
        logger.removeHandler(h)
        h.close()
    private_dir(log_dir)
    path = log_dir / LOG_FILE
    for old in log_dir.glob(f"{LOG_FILE}*"):  # rotated files from before logs were private
        if old.is_file() and old.stat().st_mode & 0o077:
            old.chmod(0o600)
    file_handler = PrivateRotatingFileHandler(path, maxBytes=5_000_000, backupCount=3, encoding="utf-8")
    file_handler.setFormatter(JsonFormatter(clock))
    tail = TailHandler(clock=clock)
    for h in (file_handler, tail):
        logger.addHandler(h)
    logger.setLevel(logging.DEBUG if debug else logging.INFO)
    logger.propagate = False  # the terminal belongs to the TUI; stderr logging would corrupt it
    return AppLog(logger, path, tail, [file_handler, tail])


def format_line(item: dict[str, Any]) -> str:
    """One record as a short human line for the Logs screen: time, level, message, fields."""
    extras = " ".join(f"{k}={v}" for k, v in item.items() if k not in ("ts", "level", "logger", "msg", "exc"))
    stamp = time.strftime("%H:%M:%S", time.localtime(item["ts"]))
    return f"{stamp} {item['level']:<7} {item['msg']}" + (f"  {extras}" if extras else "")
