"""Structured server logs (``serve --log-format json``): one JSON object per line.

Fields: ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``node`` (this node's id with ``--redis``),
``session`` (the session a line is about, where there is one), ``message``, and ``error`` (the
exception's type and message, traceback under ``traceback``). The server's lines about a session
start with ``session <id>`` (the convention every module follows); that id becomes the ``session``
field. Tokens never appear: links' ``token=`` values and ``Bearer`` values are redacted in every
line (``logs.redact``), whatever logger wrote it.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import traceback

from stream.server.logs import redact

# The id is the whole run of id characters: a "\b" after it would cut an id that ends in "-" (ids are
# URL-safe base64, so one in 64 does) back to the last letter, and the line would name another session.
_SESSION = re.compile(r"^session ([A-Za-z0-9_-]{1,64})(?![A-Za-z0-9_-])")


class JsonFormatter(logging.Formatter):
    def __init__(self, node: str | None = None) -> None:
        super().__init__()
        self.node = node

    def format(self, record: logging.LogRecord) -> str:
        message = redact(record.getMessage())
        entry: dict[str, object] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        if self.node:
            entry["node"] = self.node
        session = getattr(record, "session", None)
        if session is None:
            found = _SESSION.match(message)
            session = found.group(1) if found else None
        if session is not None:
            entry["session"] = session
        entry["message"] = message
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            entry["error"] = redact(f"{type(exc).__name__}: {exc}")
            entry["traceback"] = redact("".join(traceback.format_exception(*record.exc_info)))
        return json.dumps(entry, ensure_ascii=False)


def install_json_logging(node: str | None = None, level: int = logging.INFO) -> None:
    """Every logger, uvicorn's included, writes JSON lines to stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(node))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True


def uvicorn_log_config(node: str | None = None) -> dict[str, object]:
    """A ``uvicorn.run(log_config=...)`` that formats uvicorn's own lines as JSON too."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter, "node": node}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}},
        "root": {"handlers": ["stderr"], "level": "INFO"},
        "loggers": {
            "uvicorn": {"handlers": [], "level": "INFO", "propagate": True},
            "uvicorn.error": {"handlers": [], "level": "INFO", "propagate": True},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": True},
        },
    }
