"""Structured logs: one JSON object per line on stderr (``time``, ``level``, ``logger``, ``event``: a stable dotted
name, or ``log`` for libraries' records, ``message``, and the event's fields), every known secret redacted."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterable
from typing import IO, Any

REDACTED = "***"


class JsonLinesFormatter(logging.Formatter):
    """A record as one JSON line, where each of `redact` (also JSON-escaped) becomes ``***``."""

    def __init__(self, redact: Iterable[str] = ()) -> None:
        super().__init__()
        self.redact = sorted({form for value in redact if value for form in (value, json.dumps(value)[1:-1])},
                             key=len, reverse=True)

    def format(self, record: logging.LogRecord) -> str:
        fields = dict(getattr(record, "fields", None) or {})
        entry = {"time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
                 "level": record.levelname.lower(), "logger": record.name, "event": fields.pop("event", "log"),
                 "message": record.getMessage(), **fields}
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        line = json.dumps(entry, default=str, ensure_ascii=False)
        for value in self.redact:
            line = line.replace(value, REDACTED)
        return line


def configure_logging(*, redact: Iterable[str] = (), stream: IO[str] | None = None) -> None:
    """Send every logger's records (libraries' too, uvicorn's access log among them) to `stream` (default stderr)
    as JSON lines, redacting `redact`."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonLinesFormatter(redact))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    logging.getLogger("speat_metric").setLevel(logging.NOTSET)  # the `speat` entry point quiets it; the service logs
    for library in ("huggingface_hub", "transformers", "datasets", "evaluate", "accelerate"):
        library_logger = logging.getLogger(library)  # their own plain-text handlers would break the JSON lines
        library_logger.handlers[:], library_logger.propagate = [], True
        library_logger.setLevel(logging.WARNING)
    for noisy in ("httpx", "httpx2", "httpcore", "urllib3", "filelock"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    logging.captureWarnings(True)


def log_event(logger: logging.Logger, event: str, message: str, *, level: int = logging.INFO, **fields: Any) -> None:
    """Log the structured event `event` (a dotted name) with its `fields` (JSON values)."""
    logger.log(level, message, extra={"fields": {"event": event, **fields}})
