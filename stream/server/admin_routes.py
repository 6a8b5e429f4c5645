"""The clinic's routes (the admin key): the index page, creating and listing sessions, further
clinician links, reopening an ended session. Patients have their own routes (``patients.py``).

    GET  /                                  index: create sessions, list past ones (admin key typed in)
    POST /api/sessions                      create a session (optionally of a patient) -> links
    GET  /api/sessions                      list stored sessions
    POST /api/sessions/{sid}/clinician-link a further clinician link (e.g. to reopen later)
    POST /api/sessions/{sid}/reopen         an ended session takes its patient link again
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from stream.server.node import Node
from stream.server.registry import SessionRegistry
from stream.server.sessions import Gate, Role, new_session_id, new_token, token_hash
from stream.server.settings import ServerSettings
from stream.server.store import Store
from stream.server.web import error, page, read_json


def admin_routes(
    settings: ServerSettings,
    store: Store,
    gate: Gate,
    node: Node,
    sessions: SessionRegistry,
    base_url: Callable[[Request], str],
    link_expiry: Callable[[float], float | None],
) -> list[BaseRoute]:
    def issue_clinician_link(request: Request, sid: str) -> dict[str, object]:
        """A new clinician link for session ``sid``: its URL, its token (shown once) and when it expires."""
        token = new_token()
        issued = store.add_token(sid, Role.CLINICIAN.value, token_hash(token))
        return {
            "clinician_url": f"{base_url(request)}/s/{sid}/clinician?token={token}",
            "clinician_token": token,
            "clinician_expires_at": link_expiry(issued),
        }

    async def index(request: Request) -> Response:
        return page("index.html")

    async def create_session(request: Request) -> Response:
        gate.check_admin(request)
        body = await read_json(request) if int(request.headers.get("content-length") or 0) else {}
        label = str(body.get("label", ""))[:200] if isinstance(body, dict) else ""
        code = body.get("patient") if isinstance(body, dict) else None  # a patient's code (stream/server/patients.py)
        if code not in (None, "") and store.patient(str(code)) is None:
            return error(422, "unknown patient code: create the patient first (POST /api/patients)")
        sid = new_session_id()
        patient = new_token()
        store.create_session(sid, label, settings.mirrored, settings.analysis.as_dict())
        if code not in (None, ""):
            store.attach_session(sid, str(code), "live")
        store.add_token(sid, Role.PATIENT.value, token_hash(patient))
        return JSONResponse(
            {
                "session_id": sid,
                "label": label,
                "patient": code or None,
                "patient_url": f"{base_url(request)}/s/{sid}/patient?token={patient}",
                "patient_token": patient,
                **issue_clinician_link(request, sid),
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
            return error(404)
        return JSONResponse({"session_id": sid, **issue_clinician_link(request, sid)}, status_code=201)

    async def reopen(request: Request) -> Response:
        gate.check_admin(request)
        sid = request.path_params["sid"]
        if store.session_status(sid) is None:
            return error(404)
        if (moved := await node.route(request, sid)) is not None:
            return moved
        async with sessions.use(sid) as session:
            session.reopen()
        return JSONResponse({"session_id": sid, "status": "waiting"})

    return [
        Route("/", index),
        Route("/api/sessions", create_session, methods=["POST"]),
        Route("/api/sessions", list_sessions, methods=["GET"]),
        Route("/api/sessions/{sid}/clinician-link", clinician_link, methods=["POST"]),
        Route("/api/sessions/{sid}/reopen", reopen, methods=["POST"]),
    ]
