"""The Starlette application: one node's services (store, access gate, models, sessions, cluster
node) wired to the route groups, each in the module of its concept (``admin_routes.py``,
``session_routes.py``, ``dashboard.py``, ``patients.py``, ``node.py``), and the error answers.

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
import dataclasses
import logging
import secrets
from collections.abc import AsyncIterator, Callable

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from stream.errors import UnknownSessionError
from stream.pipeline import Pipeline
from stream.server import logs
from stream.server.admin_routes import admin_routes
from stream.server.dashboard import dashboard_routes
from stream.server.executor import PriorityExecutor
from stream.server.guard import GuardMiddleware
from stream.server.models import ModelPool
from stream.server.node import Node
from stream.server.patients import patient_routes
from stream.server.registry import SessionRegistry
from stream.server.session_routes import session_routes
from stream.server.sessions import AccessDenied, FailureLimit, Gate
from stream.server.settings import ServerSettings
from stream.server.store import StorageError, Store
from stream.server.web import ERROR_TEXT, STATIC_DIR, error

__all__ = ["STATIC_DIR", "create_app"]

log = logging.getLogger(__name__)


def create_app(
    settings: ServerSettings | None = None, *, pipeline_factory: Callable[[], Pipeline] | None = None
) -> Starlette:
    """The web application. ``pipeline_factory`` replaces the default ``Pipeline`` (tests, benchmarks);
    its pipelines run in this process's model threads (no analysis processes)."""
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
    if pipeline_factory is not None:  # a factory's pipelines can only run in this process
        settings = dataclasses.replace(settings, analysis_processes=0)
    # Shared by all sessions; a keyframe's analysis runs before any waiting frame ingest.
    executor = PriorityExecutor(settings.model_threads, thread_name_prefix="models")
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
            # Workers first: a model thread still waiting for one gets its answer (or its death).
            await asyncio.to_thread(models.close)
            executor.shutdown(wait=True, cancel_futures=True)
            store.close()

    def link_expiry(issued: float) -> float | None:
        """Wall-clock time a clinician link issued at ``issued`` stops working (``--link-ttl``); None: never."""
        return None if settings.link_ttl_s is None else issued + settings.link_ttl_s

    def base_url(request: Request) -> str:
        return (settings.public_url or str(request.base_url)).rstrip("/")

    async def denied(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, AccessDenied)
        return error(exc.status)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return error(
            exc.status_code,
            exc.detail
            if exc.status_code in (400, 409, 422)
            and exc.detail not in (None, "")
            and exc.detail != ERROR_TEXT.get(exc.status_code)
            else None,
        )

    async def unknown_session(request: Request, exc: Exception) -> Response:
        return error(403)  # a valid token for an unknown session cannot exist; answer as for a bad token

    async def storage_failed(request: Request, exc: Exception) -> Response:
        log.error("%s %s: %s", request.method, request.url.path, exc)  # the path holds no token
        return error(503)

    routes = [
        *admin_routes(settings, store, gate, node, sessions, base_url, link_expiry),
        *session_routes(settings, store, gate, node, sessions),
        *dashboard_routes(settings, gate, node),
        *node.routes(),
        *patient_routes(store, gate, base_url, link_expiry),
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
