"""Keeps credentials out of the server log.

Links carry tokens as ``?token=``, and uvicorn logs every WebSocket handshake with its path and
query string through ``uvicorn.error`` (the access log, off here, is not the only place). A filter on
uvicorn's loggers rewrites each record with every ``token=`` value replaced, and turns refused
handshakes into debug lines: anyone can provoke them, so at INFO they would only let a stranger
fill the log.
"""

from __future__ import annotations

import logging
import re

_TOKEN = re.compile(r"(token=)[^&\s\"']+", re.IGNORECASE)
_BEARER = re.compile(r"(bearer\s+)\S+", re.IGNORECASE)
# Lines about a refused handshake: uvicorn's '<addr> - "WebSocket <path>" 403', the websockets
# library's "connection rejected (403 Forbidden)", and uvicorn's sansio implementation's ERROR
# "ASGI callable returned without completing handshake." that follows every denial response sent
# with the "websocket.http.response" extension (our dashboard route accepts or refuses, nothing else).
_REFUSED = re.compile(
    r'"WebSocket [^"]*" \d{3}|^connection rejected \(|^ASGI callable returned without completing handshake'
)
UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")


def redact(text: str) -> str:
    return _BEARER.sub(r"\1<redacted>", _TOKEN.sub(r"\1<redacted>", text))


class RedactCredentials(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, ()
        if _REFUSED.search(clean) and record.levelno > logging.DEBUG:
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
        return True


def install() -> None:
    """Attach the filter to uvicorn's loggers (idempotent; survives uvicorn's own logging config)."""
    for name in UVICORN_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactCredentials) for f in logger.filters):
            logger.addFilter(RedactCredentials())
