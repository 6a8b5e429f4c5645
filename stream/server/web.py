"""What every route module answers with: error bodies, JSON request bodies, the static pages.

One place for the error texts, so every route (sessions, patients, dashboards) refuses alike.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, JSONResponse, Response

from stream.server.guard import HostileJSON, parse_json_body

# The pages are the package stream.static (the repository's static/ folder, mapped in pyproject.toml), so
# editable and non-editable installs find them alike; wheels install unzipped, so this is a real folder.
STATIC_DIR = Path(str(importlib.resources.files("stream.static")))
ERROR_TEXT = {
    400: "bad request",
    401: "unauthorized",
    403: "forbidden",
    404: "not found",
    405: "method not allowed",
    409: "conflict",
    413: "request too large",
    422: "unprocessable",
    429: "too many attempts",
    503: "storage unavailable",
}


def error(status: int, message: str | None = None) -> JSONResponse:
    return JSONResponse({"error": message or ERROR_TEXT.get(status, "error")}, status_code=status)


async def read_json(request: Request) -> Any:
    try:
        body = await request.body()
    except ClientDisconnect as exc:
        raise HTTPException(400) from exc
    try:
        return parse_json_body(body)
    except HostileJSON as exc:
        raise HTTPException(400, str(exc)) from exc
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise HTTPException(400, "body is not JSON") from exc


def page(name: str) -> FileResponse:
    return FileResponse(STATIC_DIR / name, media_type="text/html; charset=utf-8")


def attachment(content: bytes, media_type: str, filename: str) -> Response:
    """A download: ``content`` saved by the browser as ``filename``."""
    return Response(
        content, media_type=media_type, headers={"content-disposition": f'attachment; filename="{filename}"'}
    )
