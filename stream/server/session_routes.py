"""A session's routes, opened by its patient or clinician token: the two pages, signalling, the
exercise protocol, the clinician's state and statistics, and the report downloads.

    GET  /s/{sid}/patient                   patient    camera page with the exercise protocol
    GET  /s/{sid}/clinician                 clinician  live or reopened dashboard
    GET  /api/s/{sid}/config                either     ICE servers, protocol, role
    POST /api/s/{sid}/offer                 patient    SDP offer -> answer
    POST /api/s/{sid}/exercise              patient    {"action": "start", "exercise": key} | {"action": "stop"}
    POST /api/s/{sid}/hangup                patient    end the stream
    GET  /api/s/{sid}/state                 clinician  the current dashboard snapshot
    GET  /api/s/{sid}/statistics?scope=     clinician  statistics of "session" or "segment:<id>" with matrices
    GET  /api/s/{sid}/report.json|report.html|au_series.csv   clinician

Requests that act on the live session go to the node that holds it (``node.route``).
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from stream.errors import UnknownSessionError
from stream.server.ingest import SignallingError, parse_offer
from stream.server.node import Node
from stream.server.registry import SessionRegistry
from stream.server.session_report import build_session_report
from stream.server.sessions import Gate, Role
from stream.server.settings import ServerSettings
from stream.server.store import Store
from stream.server.web import attachment, error, page, read_json
from stream.session.exercises import PROTOCOL, ExerciseError

_REPORT_FILES = {
    "report.json": ("json", "application/json"),
    "report.html": ("html", "text/html; charset=utf-8"),
    "au_series.csv": ("csv", "text/csv; charset=utf-8"),
}


def session_routes(
    settings: ServerSettings, store: Store, gate: Gate, node: Node, sessions: SessionRegistry
) -> list[BaseRoute]:
    async def routed(request: Request, role: Role, *, ended_ok: bool = False) -> tuple[str, Response | None]:
        """The session id once the request's token holds ``role`` in it, and the answer of the node that
        holds the session when that is another one (None: serve it here)."""
        sid = request.path_params["sid"]
        gate.check(request, sid, role, ended_ok=ended_ok)
        return sid, await node.route(request, sid)

    async def patient_page(request: Request) -> Response:
        gate.check(request, request.path_params["sid"], Role.PATIENT)
        return page("patient.html")

    async def clinician_page(request: Request) -> Response:
        gate.check(request, request.path_params["sid"], Role.CLINICIAN)
        return page("clinician.html")

    async def session_config(request: Request) -> Response:
        sid = request.path_params["sid"]
        role = gate.check(request, sid, Role.PATIENT, Role.CLINICIAN)
        return JSONResponse(
            {
                "session_id": sid,
                "role": role.value,
                "ice_servers": [s.to_json() for s in settings.ice_servers],
                "mirrored": settings.mirrored,
                "protocol": [e.to_json() for e in PROTOCOL],
            }
        )

    async def offer(request: Request) -> Response:
        sid, moved = await routed(request, Role.PATIENT)
        if moved is not None:
            return moved
        try:
            description = parse_offer(await read_json(request))
            # The lease lasts until the answer is out: nothing can drop the session meanwhile.
            async with sessions.use(sid) as session:
                answer = await session.connect(description)
        except SignallingError as exc:
            return error(exc.status, exc.message)
        return JSONResponse({"sdp": answer.sdp, "type": answer.type})

    async def exercise(request: Request) -> Response:
        sid, moved = await routed(request, Role.PATIENT)
        if moved is not None:
            return moved
        body = await read_json(request)
        if not isinstance(body, dict) or body.get("action") not in ("start", "stop"):
            return error(400, 'expected {"action": "start", "exercise": key} or {"action": "stop"}')
        async with sessions.use(sid) as session:
            try:
                segment = (
                    session.start_exercise(str(body.get("exercise")))
                    if body["action"] == "start"
                    else session.stop_exercise()
                )
            except ExerciseError as exc:
                return error(422, str(exc))
        return JSONResponse({"segment": segment.to_json() if segment else None})

    async def hangup(request: Request) -> Response:
        sid, moved = await routed(request, Role.PATIENT, ended_ok=True)
        if moved is not None:
            return moved
        async with sessions.use(sid) as session:
            await session.hang_up()
        return JSONResponse({"ok": True})

    async def state(request: Request) -> Response:
        sid, moved = await routed(request, Role.CLINICIAN)
        if moved is not None:
            return moved
        async with sessions.use(sid) as session:
            return Response(session.hub.latest or "{}", media_type="application/json")

    async def scope_statistics(request: Request) -> Response:
        sid, moved = await routed(request, Role.CLINICIAN)
        if moved is not None:
            return moved
        async with sessions.use(sid) as session:
            found = session.statistics(request.query_params.get("scope", "session"))
        return JSONResponse(found) if found is not None else error(404)

    async def report_file(request: Request) -> Response:
        sid = request.path_params["sid"]
        gate.check(request, sid, Role.CLINICIAN)
        if request.path_params["name"] not in _REPORT_FILES:
            return error(404)
        kind, media_type = _REPORT_FILES[request.path_params["name"]]
        loop = asyncio.get_running_loop()
        content = await loop.run_in_executor(None, _render_report, store, sid, kind)
        filename = f"{sid}-{request.path_params['name']}"
        return attachment(content, media_type, filename)

    return [
        Route("/s/{sid}/patient", patient_page),
        Route("/s/{sid}/clinician", clinician_page),
        Route("/api/s/{sid}/config", session_config),
        Route("/api/s/{sid}/offer", offer, methods=["POST"]),
        Route("/api/s/{sid}/exercise", exercise, methods=["POST"]),
        Route("/api/s/{sid}/hangup", hangup, methods=["POST"]),
        Route("/api/s/{sid}/state", state),
        Route("/api/s/{sid}/statistics", scope_statistics),
        Route("/api/s/{sid}/{name:str}", report_file),
    ]


def _render_report(store: Store, session_id: str, kind: str) -> bytes:
    from stream.report import format_series_csv, write_report

    if kind == "csv":  # the series alone, nothing to compute: each dashboard loads it on opening
        if store.session(session_id) is None:
            raise UnknownSessionError(session_id)
        return format_series_csv(store.series(session_id).series).encode("utf-8")
    report, series = build_session_report(store, session_id)
    with tempfile.TemporaryDirectory(prefix="stream-report-") as tmp:
        paths = write_report(tmp, report, series)
        return Path(paths[kind]).read_bytes()
