"""Patients: pseudonymous records, their sessions' graded scores, history pages, exports.

A patient is a code the clinic chooses (letters, digits, ``-`` and ``.``, up to 64: also a valid FHIR
id) with an optional label; no name is asked for or stored. Sessions attach to a patient when they
are created (``POST /api/sessions`` with ``"patient"``), and ``python -m stream analyze VIDEO
--patient CODE --db PATH`` stores an offline analysis (its AU series, numbers only) as an ended
session of that patient. The clinic key opens everything; a per-patient clinician link (a token
like the sessions', only its SHA-256 stored) opens that patient's history page, its data and its
exports, nothing else.

Routes (``{code}`` a patient code; "history" names the per-patient token):

    POST /api/patients                          admin    create {"code", "label"} -> history link
    GET  /api/patients                          admin    list patients
    POST /api/patients/{code}/link              admin    a further history link
    GET  /p/{code}/history                      history  the history page (static/history.html)
    GET  /api/p/{code}/history                  history  sessions with graded scores, changes
    GET  /api/p/{code}/export.{json|csv|fhir.json}   history  the patient's results
    GET  /api/p/{code}/s/{sid}/export.{json|csv|fhir.json}  history  one session's results
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable
from typing import Any, Final

from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from stream.errors import InputError
from stream.export import (
    SessionResult,
    patient_csv,
    patient_fhir_bundle,
    patient_json,
)
from stream.grading import changes, grade_report
from stream.server.sessions import Gate, new_token, token_hash
from stream.server.store import SessionRecord, StorageError, Store
from stream.server.web import attachment, error, page, read_json

log = logging.getLogger(__name__)

CODE_PATTERN: Final[re.Pattern[str]] = re.compile(r"[A-Za-z0-9][A-Za-z0-9.\-]{0,63}")
# Bumped when the grading changes, so stored grades computed by an older version are recomputed.
GRADING_VERSION: Final[int] = 1


class PatientCodeError(InputError, ValueError):
    """A patient code the product does not accept (it must be a valid FHIR id, and no name)."""


def check_code(code: str) -> str:
    code = str(code).strip()
    if not CODE_PATTERN.fullmatch(code):
        raise PatientCodeError(
            f"patient code {code[:80]!r} is not accepted: use 1-64 letters, digits, '-' or '.', starting with a "
            "letter or digit (a clinic reference, never a name)"
        )
    return code


def check_history(gate: Gate, store: Store, conn: HTTPConnection, code: str) -> None:
    """The request's token is the clinic key or a history link of this patient, else AccessDenied.

    Same answers as the session links: 401 without a credential, 403 for anything wrong (unknown
    patients included), 429 after too many wrong ones, clinician-link lifetime (``--link-ttl``) applied.
    """
    gate.check_admin_or(conn, lambda: store.patient_tokens(code) if len(code) <= 64 else ())


# --------------------------------------------------------------------------------------------
# grades of stored sessions


def session_grades(store: Store, record: SessionRecord) -> dict[str, Any]:
    """The grades of a stored session (JSON form), recomputed only when it has new keyframes."""
    cached = store.grades(record.id)
    if (
        cached is not None
        and cached[0] == record.n_keyframes
        and cached[1] == record.status == "ended"
        and cached[2].get("version") == GRADING_VERSION
    ):
        return cached[2]
    from stream.server.session_report import session_report

    report, _ = session_report(store, record.id)
    grades = grade_report(report).to_json()
    grades["version"] = GRADING_VERSION
    grades["warnings"] = list(report.get("warnings") or [])
    grades["estimator"] = {"name": report["config"].get("estimator"), "is_proxy": report.get("estimator_is_proxy")}
    store.save_grades(record.id, record.n_keyframes, record.status, grades)
    return grades


def session_result(store: Store, record: SessionRecord, kind: str) -> SessionResult:
    grades = None
    if record.n_keyframes:
        try:
            grades = session_grades(store, record)
        except StorageError:
            raise
        except Exception:  # one session that cannot be graded must not hide the patient's other sessions
            log.exception("session %s could not be graded", record.id)
    return SessionResult(
        session_id=record.id,
        label=record.label,
        kind=kind,
        status=record.status,
        created_at=record.created_at,
        n_keyframes=record.n_keyframes,
        grades=grades,
    )


def patient_results(store: Store, code: str) -> list[SessionResult]:
    return [session_result(store, record, kind) for record, kind in store.patient_sessions(code)]


def history(store: Store, code: str) -> dict[str, Any]:
    """The history page's data: the patient, every session with its grades, the changes."""
    patient = store.patient(code)
    if patient is None:
        raise KeyError(code)
    results = patient_results(store, code)
    graded = [r.grades for r in results if r.n_keyframes and r.grades is not None]
    return {
        "patient": patient.to_json(),
        "sessions": [r.to_json() for r in results],
        "changes": [c.to_json() for c in changes(graded)],
        "label": "estimate, not a clinical grade",
    }


def store_analysis(store: Store, code: str, report: dict[str, Any], series: Any, label: str = "") -> tuple[str, bool]:
    """An offline analysis (``analyze --patient --db``) as an ended session of patient ``code``.

    Numbers only: the AU series, counts, configuration and estimator; never a frame or the video's
    file name (which may name the patient). Creates the patient when the code is new. Returns
    (session id, whether the patient was created).
    """
    from stream.server.sessions import new_session_id

    code = check_code(code)
    created = store.create_patient(code, "")
    sid = new_session_id()
    config = {k: v for k, v in (report.get("config") or {}).items() if k not in ("video", "created")}
    estimator = {"name": config.get("estimator"), "is_proxy": bool(report.get("estimator_is_proxy", True))}
    if report.get("model"):
        estimator["model"] = report["model"]
    store.add_recorded_session(
        sid, label[:200], time.time(), config, estimator, dict(report.get("counts") or {}), series, code
    )
    return sid, created


# --------------------------------------------------------------------------------------------
# routes


def patient_routes(
    store: Store,
    gate: Gate,
    base_url: Callable[[Request], str],
    link_expiry: Callable[[float], float | None],
) -> list[BaseRoute]:
    def link(request: Request, code: str, token: str) -> str:
        return f"{base_url(request)}/p/{code}/history?token={token}"

    def issue_link(request: Request, code: str) -> dict[str, Any]:
        """A new history link for patient ``code``: its URL, its token (shown once) and when it expires."""
        token = new_token()
        issued = store.add_patient_token(code, token_hash(token))
        return {
            "history_url": link(request, code, token),
            "history_token": token,
            "history_expires_at": link_expiry(issued),
        }

    async def create_patient(request: Request) -> Response:
        gate.check_admin(request)
        body = await read_json(request)
        if not isinstance(body, dict):
            return error(400, 'expected {"code": ..., "label": ...}')
        try:
            code = check_code(body.get("code", ""))
        except PatientCodeError as exc:
            return error(422, str(exc))
        label = str(body.get("label", ""))[:200]
        if not store.create_patient(code, label):
            return error(409, f"patient code {code} is already taken")
        return JSONResponse({"code": code, "label": label, **issue_link(request, code)}, status_code=201)

    async def list_patients(request: Request) -> Response:
        gate.check_admin(request)
        return JSONResponse({"patients": [p.to_json() for p in store.patients()]})

    async def new_link(request: Request) -> Response:
        gate.check_admin(request)
        code = request.path_params["code"]
        if store.patient(code) is None:
            return error(404)
        return JSONResponse({"code": code, **issue_link(request, code)}, status_code=201)

    async def history_page(request: Request) -> Response:
        check_history(gate, store, request, request.path_params["code"])
        return page("history.html")

    async def history_data(request: Request) -> Response:
        code = request.path_params["code"]
        check_history(gate, store, request, code)
        if store.patient(code) is None:  # only the clinic key gets this far for an unknown code
            return error(404)
        loop = asyncio.get_running_loop()
        return JSONResponse(await loop.run_in_executor(None, history, store, code))

    async def export(request: Request) -> Response:
        code = request.path_params["code"]
        check_history(gate, store, request, code)
        name = request.path_params["name"]
        sid = request.path_params.get("sid")
        if name not in _EXPORTS:
            return error(404)
        loop = asyncio.get_running_loop()

        def build() -> bytes | None:
            patient = store.patient(code)
            if patient is None:
                return None
            records = store.patient_sessions(code)
            if sid is not None:  # grade only the session asked for
                records = [(record, kind) for record, kind in records if record.id == sid]
                if not records:
                    return None
            return _EXPORTS[name][0](patient.code, [session_result(store, record, kind) for record, kind in records])

        content = await loop.run_in_executor(None, build)
        if content is None:
            return error(404)
        filename = f"{code}-{sid}-{name}" if sid else f"{code}-{name}"
        return attachment(content, _EXPORTS[name][1], filename)

    return [
        Route("/api/patients", create_patient, methods=["POST"]),
        Route("/api/patients", list_patients, methods=["GET"]),
        Route("/api/patients/{code}/link", new_link, methods=["POST"]),
        Route("/p/{code}/history", history_page),
        Route("/api/p/{code}/history", history_data),
        Route("/api/p/{code}/s/{sid}/{name:str}", export),
        Route("/api/p/{code}/{name:str}", export),
    ]


_EXPORTS: Final[dict[str, tuple[Callable[[str, list[SessionResult]], bytes], str]]] = {
    "export.json": (lambda code, results: patient_json(code, results), "application/json"),
    "export.csv": (lambda code, results: patient_csv(code, results), "text/csv; charset=utf-8"),
    "export.fhir.json": (lambda code, results: patient_fhir_bundle(code, results), "application/fhir+json"),
}
