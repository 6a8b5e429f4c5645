"""The request guard: body size limits, privacy headers, and JSON parsing that refuses hostile bodies.

Every route sees requests through ``GuardMiddleware`` and reads JSON bodies with ``parse_json_body``;
what they refuse is answered 413 (too large) or 400 (``HostileJSON``: too deep, too long a number,
NaN or Infinity) with a short message, before any handler does work.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_JSON_DEPTH = 32  # our bodies nest 2 levels; deeper is hostile (json.loads recurses per level)
MAX_JSON_INT_DIGITS = 32


class HostileJSON(ValueError):
    """A JSON body built to exhaust the parser (nesting, digits) or not JSON at all (NaN, Infinity)."""


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_JSON_INT_DIGITS:
        raise HostileJSON(f"number with more than {MAX_JSON_INT_DIGITS} digits")
    return int(text)


def _refuse_constant(name: str) -> Any:
    raise HostileJSON(f"{name} is not JSON")


def parse_json_body(body: bytes) -> Any:
    """``json.loads`` with limits: nesting depth, integer digits, no NaN/Infinity.

    Depth is counted before parsing (brackets outside strings), since the parser itself recurses
    once per level and a 64 KiB body of ``[`` would exhaust the stack.
    """
    depth, deepest, in_string, escaped = 0, 0, False, False
    for byte in body:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):
            depth += 1
            deepest = max(deepest, depth)
            if deepest > MAX_JSON_DEPTH:
                raise HostileJSON(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return json.loads(body, parse_int=_parse_int, parse_constant=_refuse_constant)


class GuardMiddleware:
    """Refuses request bodies above the limit (413, before reading them) and sets privacy headers.

    Links carry tokens in the query string, so pages must not leak it through the Referer header,
    and nothing the server answers may be cached.
    """

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body_bytes):
            await JSONResponse({"error": "request too large"}, status_code=413)(scope, receive, send)
            return
        seen = 0
        limit = self.max_body_bytes

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise HTTPException(413)
            return message

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                extra = [
                    (b"referrer-policy", b"no-referrer"),
                    (b"x-content-type-options", b"nosniff"),
                    (b"cache-control", b"no-store"),
                    (b"x-frame-options", b"DENY"),
                ]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, limited_receive, send_with_headers)
