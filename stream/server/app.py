"""The Starlette application: pages, signalling, WebSocket dashboards, the session API.

Routes (``{sid}`` a session id; "patient"/"clinician" name the token the route needs, "admin" the
clinic key):

    GET  /                                  index: create sessions, list past ones (admin key typed in)
    POST /api/sessions                      admin      create a session (optionally of a patient) -> links
    GET  /api/sessions                      admin      list stored sessions
    (patients, their history pages and exports: stream/server/patients.py)
    POST /api/sessions/{sid}/clinician-link admin      a further clinician link (e.g. to reopen later)
    POST /api/sessions/{sid}/reopen         admin      an ended session takes its patient link again
    GET  /s/{sid}/patient                   patient    camera page with the exercise protocol
    GET  /s/{sid}/clinician                 clinician  live or reopened dashboard
    GET  /api/s/{sid}/config                either     ICE servers, protocol, role
    POST /api/s/{sid}/offer                 patient    SDP offer -> answer
    POST /api/s/{sid}/exercise              patient    {"action": "start", "exercise": key} | {"action": "stop"}
    POST /api/s/{sid}/hangup                patient    end the stream
    GET  /api/s/{sid}/state                 clinician  the current dashboard snapshot
    GET  /api/s/{sid}/statistics?scope=     clinician  statistics of "session" or "segment:<id>" with matrices
    GET  /api/s/{sid}/report.json|report.html|au_series.csv   clinician
    WS   /ws/s/{sid}                        clinician  dashboard snapshots
    GET  /healthz | /readyz | /metrics                 this node: alive, ready (store, Redis), Prometheus metrics

With ``--redis`` several nodes share the sessions (``node.py``): a session request reaching a node
that does not hold the session is forwarded to the node that does.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.resources
import logging
import secrets
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket

from stream.errors import UnknownSessionError
from stream.pipeline import Pipeline
from stream.server import logs
from stream.server.executor import PriorityExecutor
from stream.server.guard import GuardMiddleware, HostileJSON, parse_json_body
from stream.server.ingest import SignallingError, parse_offer
from stream.server.models import ModelPool
from stream.server.node import Node
from stream.server.patients import patient_routes
from stream.server.registry import SessionRegistry
from stream.server.session_report import build_session_report
from stream.server.sessions import (
    AccessDenied,
    FailureLimit,
    Gate,
    Role,
    new_session_id,
    new_token,
    token_from,
    token_hash,
)
from stream.server.settings import ServerSettings
from stream.server.store import StorageError, Store
from stream.session.exercises import PROTOCOL, ExerciseError

log = logging.getLogger(__name__)

# The pages are the package stream.static (the repository's static/ folder, mapped in pyproject.toml), so
# editable and non-editable installs find them alike; wheels install unzipped, so this is a real folder.
STATIC_DIR = Path(str(importlib.resources.files("stream.static")))
_ERROR_TEXT = {
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
_REPORT_FILES = {
    "report.json": ("json", "application/json"),
    "report.html": ("html", "text/html; charset=utf-8"),
    "au_series.csv": ("csv", "text/csv; charset=utf-8"),
}


def _error(status: int, message: str | None = None) -> JSONResponse:
    return JSONResponse({"error": message or _ERROR_TEXT.get(status, "error")}, status_code=status)


def create_app(
    settings: ServerSettings | None = None, *, pipeline_factory: Callable[[], Pipeline] | None = None
) -> Starlette:
    """The web application. ``pipeline_factory`` replaces the default ``Pipeline`` (benchmarks)."""
    settings = (settings or ServerSettings()).validate()
    logs.install()
    admin_key = settings.admin_key or secrets.token_urlsafe(24)
    store = Store(settings.db_path)
    gate = Gate(
        store,
        admin_key,
        FailureLimit(settings.max_failed_credentials, settings.failed_credentials_window_s),
        link_ttl_s=settings.link_ttl_s,
    )
    # Shared by all sessions; a keyframe's analysis runs before any waiting frame ingest.
    executor = PriorityExecutor(settings.model_workers, thread_name_prefix="models")
    models = ModelPool(settings, executor, pipeline_factory)
    node = Node(settings, store)  # with --redis, one of several nodes (node.py)
    sessions = SessionRegistry(settings, store, models, cluster=node.cluster, metrics=node.metrics)
    node.sessions = sessions

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if node.cluster is None:  # with other nodes, a live session may be theirs (or theirs to take over)
            interrupted = store.end_interrupted()
            if interrupted:
                log.info("%d session(s) were live when the server last stopped; marked ended", interrupted)
        await node.start()
        try:
            yield
        finally:
            await sessions.close_all()
            await node.stop()
            executor.shutdown(wait=True, cancel_futures=True)
            store.close()

    def link_expiry(issued: float) -> float | None:
        """Wall-clock time a clinician link issued at ``issued`` stops working (``--link-ttl``); None: never."""
        return None if settings.link_ttl_s is None else issued + settings.link_ttl_s

    def base_url(request: Request) -> str:
        return (settings.public_url or str(request.base_url)).rstrip("/")

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

    # -- admin --------------------------------------------------------------------------------
    async def index(request: Request) -> Response:
        return page("index.html")

    async def create_session(request: Request) -> Response:
        gate.check_admin(request)
        body = await read_json(request) if int(request.headers.get("content-length") or 0) else {}
        label = str(body.get("label", ""))[:200] if isinstance(body, dict) else ""
        code = body.get("patient") if isinstance(body, dict) else None  # a patient's code (stream/server/patients.py)
        if code not in (None, "") and store.patient(str(code)) is None:
            return _error(422, "unknown patient code: create the patient first (POST /api/patients)")
        sid = new_session_id()
        patient, clinician = new_token(), new_token()
        store.create_session(sid, label, settings.mirrored, settings.analysis.as_dict())
        if code not in (None, ""):
            store.attach_session(sid, str(code), "live")
        store.add_token(sid, Role.PATIENT.value, token_hash(patient))
        issued = store.add_token(sid, Role.CLINICIAN.value, token_hash(clinician))
        base = base_url(request)
        return JSONResponse(
            {
                "session_id": sid,
                "label": label,
                "patient": code or None,
                "patient_url": f"{base}/s/{sid}/patient?token={patient}",
                "clinician_url": f"{base}/s/{sid}/clinician?token={clinician}",
                "patient_token": patient,
                "clinician_token": clinician,
                "clinician_expires_at": link_expiry(issued),
            },
            status_code=201,
        )

    async def list_sessions(request: Request) -> Response:
        gate.check_admin(request)
        return JSONResponse({"sessions": [r.to_json() for r in store.sessions()]})

    async def clinician_link(request: Request) -> Response:
        gate.check_admin(request)
        sid = request.path_params["sid"]
        if store.session(sid) is None:
            return _error(404)
        token = new_token()
        issued = store.add_token(sid, Role.CLINICIAN.value, token_hash(token))
        return JSONResponse(
            {
                "session_id": sid,
                "clinician_token": token,
                "clinician_url": f"{base_url(request)}/s/{sid}/clinician?token={token}",
                "clinician_expires_at": link_expiry(issued),
            },
            status_code=201,
        )

    async def reopen(request: Request) -> Response:
        gate.check_admin(request)
        sid = request.path_params["sid"]
        if store.session_status(sid) is None:
            return _error(404)
        if (moved := await node.route(request, sid)) is not None:
            return moved
        async with sessions.use(sid) as session:
            session.reopen()
        return JSONResponse({"session_id": sid, "status": "waiting"})

    # -- pages and session API ---------------------------------------------------------------------
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
        sid = request.path_params["sid"]
        gate.check(request, sid, Role.PATIENT)
        if (moved := await node.route(request, sid)) is not None:
            return moved
        try:
            description = parse_offer(await read_json(request))
            # The lease lasts until the answer is out: nothing can drop the session meanwhile.
            async with sessions.use(sid) as session:
                answer = await session.connect(description)
        except SignallingError as exc:
            return _error(exc.status, exc.message)
        return JSONResponse({"sdp": answer.sdp, "type": answer.type})

    async def exercise(request: Request) -> Response:
        sid = request.path_params["sid"]
        gate.check(request, sid, Role.PATIENT)
        if (moved := await node.route(request, sid)) is not None:
            return moved
        body = await read_json(request)
        if not isinstance(body, dict) or body.get("action") not in ("start", "stop"):
            return _error(400, 'expected {"action": "start", "exercise": key} or {"action": "stop"}')
        async with sessions.use(sid) as session:
            try:
                segment = (
                    session.start_exercise(str(body.get("exercise")))
                    if body["action"] == "start"
                    else session.stop_exercise()
                )
            except ExerciseError as exc:
                return _error(422, str(exc))
        return JSONResponse({"segment": segment.to_json() if segment else None})

    async def hangup(request: Request) -> Response:
        sid = request.path_params["sid"]
        gate.check(request, sid, Role.PATIENT, ended_ok=True)
        if (moved := await node.route(request, sid)) is not None:
            return moved
        async with sessions.use(sid) as session:
            await session.hang_up()
        return JSONResponse({"ok": True})

    async def state(request: Request) -> Response:
        sid = request.path_params["sid"]
        gate.check(request, sid, Role.CLINICIAN)
        if (moved := await node.route(request, sid)) is not None:
            return moved
        async with sessions.use(sid) as session:
            return Response(session.hub.latest or "{}", media_type="application/json")

    async def scope_statistics(request: Request) -> Response:
        sid = request.path_params["sid"]
        gate.check(request, sid, Role.CLINICIAN)
        if (moved := await node.route(request, sid)) is not None:
            return moved
        async with sessions.use(sid) as session:
            found = session.statistics(request.query_params.get("scope", "session"))
        return JSONResponse(found) if found is not None else _error(404)

    async def report_file(request: Request) -> Response:
        sid = request.path_params["sid"]
        gate.check(request, sid, Role.CLINICIAN)
        if request.path_params["name"] not in _REPORT_FILES:
            return _error(404)
        kind, media_type = _REPORT_FILES[request.path_params["name"]]
        loop = asyncio.get_running_loop()
        content = await loop.run_in_executor(None, _render_report, store, sid, kind)
        filename = f"{sid}-{request.path_params['name']}"
        return Response(
            content, media_type=media_type, headers={"content-disposition": f'attachment; filename="{filename}"'}
        )

    # -- dashboards ---------------------------------------------------------------------------------
    async def dashboard(ws: WebSocket) -> None:
        sid = ws.path_params["sid"]
        try:
            gate.check(ws, sid, Role.CLINICIAN)
        except AccessDenied as denied:
            await _refuse(ws, denied.status)
            return
        expires_at = gate.expires_at(sid, token_from(ws) or "")
        # The session's snapshots: from this process, or with --redis from whichever node holds it.
        watching = node.watch(sid)
        sub = await watching.__aenter__()
        await ws.accept()

        async def send_loop() -> None:
            while True:
                message = await sub.queue.get()
                # A client whose socket accepts nothing for send_timeout_s is dropped, not waited for.
                await asyncio.wait_for(ws.send_text(message), settings.send_timeout_s)
                sub.sent += 1

        async def receive_loop() -> None:
            while True:
                message = await ws.receive()
                if message["type"] == "websocket.disconnect":
                    return

        tasks = [asyncio.ensure_future(send_loop()), asyncio.ensure_future(receive_loop())]
        if expires_at is not None:  # the link's lifetime ends an open dashboard too (1008, as a refusal)
            tasks.append(asyncio.ensure_future(asyncio.sleep(max(0.0, expires_at - time.time()))))
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            with contextlib.suppress(Exception):
                await ws.close(code=1008 if expires_at is not None and time.time() >= expires_at else 1000)
            await watching.__aexit__(None, None, None)

    async def denied(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, AccessDenied)
        return _error(exc.status)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return _error(
            exc.status_code,
            exc.detail
            if exc.status_code in (400, 409, 422)
            and exc.detail not in (None, "")
            and exc.detail != _ERROR_TEXT.get(exc.status_code)
            else None,
        )

    async def unknown_session(request: Request, exc: Exception) -> Response:
        return _error(403)  # a valid token for an unknown session cannot exist; answer as for a bad token

    async def storage_failed(request: Request, exc: Exception) -> Response:
        log.error("%s %s: %s", request.method, request.url.path, exc)  # the path holds no token
        return _error(503)

    routes = [
        Route("/", index),
        Route("/api/sessions", create_session, methods=["POST"]),
        Route("/api/sessions", list_sessions, methods=["GET"]),
        Route("/api/sessions/{sid}/clinician-link", clinician_link, methods=["POST"]),
        Route("/api/sessions/{sid}/reopen", reopen, methods=["POST"]),
        Route("/s/{sid}/patient", patient_page),
        Route("/s/{sid}/clinician", clinician_page),
        Route("/api/s/{sid}/config", session_config),
        Route("/api/s/{sid}/offer", offer, methods=["POST"]),
        Route("/api/s/{sid}/exercise", exercise, methods=["POST"]),
        Route("/api/s/{sid}/hangup", hangup, methods=["POST"]),
        Route("/api/s/{sid}/state", state),
        Route("/api/s/{sid}/statistics", scope_statistics),
        Route("/api/s/{sid}/{name:str}", report_file),
        WebSocketRoute("/ws/s/{sid}", dashboard),
        *node.routes(),
        *patient_routes(store, gate, admin_key, base_url, link_expiry, read_json, page),
        Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={
            AccessDenied: denied,
            HTTPException: http_error,
            UnknownSessionError: unknown_session,
            StorageError: storage_failed,
            **node.exception_handlers(),
        },
    )
    app.add_middleware(GuardMiddleware, max_body_bytes=settings.max_body_bytes)
    app.state.settings = settings
    app.state.admin_key = admin_key
    app.state.store = store
    app.state.sessions = sessions
    app.state.node = node
    return app


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


async def _refuse(ws: WebSocket, status: int) -> None:
    """Refuse a WebSocket handshake with a bare HTTP status where the server supports it."""
    if "websocket.http.response" in ws.scope.get("extensions", {}):
        await ws.send_denial_response(_error(status))
    else:
        await ws.close(code=1008)
