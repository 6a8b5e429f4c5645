"""This serve process as one node among several: the Redis link, requests for sessions held elsewhere,
dashboards on any node, health and metrics.

Without ``--redis`` every method reduces to the single-process behaviour (sessions in this process,
the in-process hub), so ``app.py`` calls them the same way in both cases.

* ``route``: a session request (offer, exercise event, hang-up, state, statistics, reopen) for a
  session another live node holds is forwarded to that node (same method, body, credential, and
  query), and its answer returned as it is: the pages need not know which node holds their
  session. A forwarded request is never forwarded again (``X-Stream-Forwarded``). If the owner's
  lease is still valid but the owner does not answer (it died within its lease), the answer is
  ``503`` with ``Retry-After``: the patient's page retries, and once the lease has run out (at most
  ``--lease`` seconds) this node takes the session over: it claims the lease and reopens the
  session from the shared store (the stored series replayed), then answers the offer itself.
* ``watch``: a dashboard's subscription. Single node: the session's hub. Cluster: the Redis relay
  of this node (``Cluster.subscribe``); the session is opened here when no other node holds it,
  so an ended session still shows its stored results.
* ``/healthz`` (the process answers), ``/readyz`` (the store answers a query and, with
  ``--redis``, Redis answers a ping: 503 otherwise, so a balancer sends no one here),
  ``/metrics`` (``metrics.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from stream.server.cluster import Cluster, Owner, new_node_id
from stream.server.hub import Subscriber
from stream.server.metrics import CONTENT_TYPE, NodeMetrics
from stream.server.registry import OwnedElsewhere, SessionRegistry
from stream.server.settings import ServerSettings

log = logging.getLogger(__name__)

FORWARDED_HEADER = "x-stream-forwarded"
FORWARD_TIMEOUT_S = 60.0  # an offer is answered once aiortc gathered its candidates: seconds at most
RETRY_AFTER_S = 1
_PASSED_HEADERS = ("authorization", "content-type")


def node_url(settings: ServerSettings) -> str:
    """Where the other nodes reach this one (``--node-url``; else this node's own listening address)."""
    if settings.node_url:
        return settings.node_url.rstrip("/")
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    return f"{settings.scheme}://{host}:{settings.port}"


class Node:
    def __init__(self, settings: ServerSettings, store: Any) -> None:
        self.settings = settings
        self.store = store
        self.id = settings.node_id or new_node_id()
        self.url = node_url(settings)
        self.cluster: Cluster | None = None
        if settings.redis_url:
            self.cluster = Cluster(
                settings.redis_url,
                self.url,
                node_id=self.id,
                lease_s=settings.lease_s,
                client_queue=settings.client_queue,
            )
        self.sessions: SessionRegistry | None = None  # set by the app once it exists
        self.viewers = 0  # dashboards connected to this node
        self.metrics = NodeMetrics(
            self._held_sessions, lambda: self.viewers, lambda: int(getattr(store, "errors", 0)), cluster=self.cluster
        )
        self._http: Any = None
        self._sweeper: asyncio.Task[None] | None = None
        self._unowned_since: dict[str, float] = {}  # live session without a lease -> first seen so (monotonic)

    def _held_sessions(self) -> list[Any]:
        return self.sessions.sessions() if self.sessions is not None else []

    async def start(self) -> None:
        if self.cluster is not None:
            import httpx

            assert self.sessions is not None
            self.cluster.on_lost = self.sessions.lease_lost
            await self.cluster.start()
            self._http = httpx.AsyncClient(timeout=FORWARD_TIMEOUT_S, follow_redirects=False)
            self._sweeper = asyncio.ensure_future(self._sweep_orphans())
            log.info("node %s at %s joined the cluster (lease %g s)", self.id, self.url, self.settings.lease_s)

    async def stop(self) -> None:
        """After the sessions were closed (their records stored): release the leases, leave."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
        if self.cluster is not None:
            await self.cluster.close()
        if self._http is not None:
            await self._http.aclose()

    # -- sessions orphaned by a dead node ---------------------------------------------------------
    async def _sweep_orphans(self) -> None:
        """End ``live`` sessions that no node holds and no patient came back to.

        One node alone marks the sessions it finds ``live`` at start as ended; with several, a dead
        node's sessions stay ``live`` so that another node can take them over when the patient
        reconnects. If nobody does within ``orphan_end_s`` (120 s) after the lease ran out, any node
        ends the session under its lease, as a stream ends: the open exercise closes at the last
        stored keyframe, the patient link stops.
        """
        assert self.cluster is not None
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.settings.lease_s / 2)
            try:
                await self.sweep_once(loop)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the store or Redis: next round
                log.warning("orphaned sessions not checked: %s: %s", type(exc).__name__, exc)

    async def sweep_once(self, loop: asyncio.AbstractEventLoop) -> list[str]:
        """One round of ``_sweep_orphans``; the sessions it ended."""
        assert self.cluster is not None
        live = await loop.run_in_executor(None, self.store.live_sessions)
        now = time.monotonic()
        ended = []
        for sid in set(self._unowned_since) - set(live):
            del self._unowned_since[sid]
        for sid in live:
            if await self.cluster.owner(sid) is not None:
                self._unowned_since.pop(sid, None)
                continue
            first = self._unowned_since.setdefault(sid, now)
            if now - first < self.settings.orphan_end_s:
                continue
            owner = await self.cluster.claim(sid)
            if not owner.is_self:
                continue
            try:
                if await loop.run_in_executor(None, self.store.end_orphaned, sid):
                    ended.append(sid)
                    log.info(
                        "session %s: its node is gone and nobody reconnected within %g s; ended",
                        sid,
                        self.settings.orphan_end_s,
                    )
            finally:
                if self.sessions is None or sid not in self.sessions:
                    await self.cluster.release(sid)
            self._unowned_since.pop(sid, None)
        return ended

    # -- requests for sessions held elsewhere ------------------------------------------------------
    async def route(self, request: Request, sid: str) -> Response | None:
        """The owner's answer when another live node holds ``sid``; None: handle it here."""
        if self.cluster is None or request.headers.get(FORWARDED_HEADER):
            return None
        owner = await self.cluster.owner(sid)
        if owner is None or owner.is_self:
            return None
        return await self.forward(request, owner)

    async def forward(self, request: Request, owner: Owner) -> Response:
        if owner.url is None:  # its node record ran out: the lease follows within a heartbeat
            return self._retry_later()
        body = await request.body()
        headers = {k: v for k, v in request.headers.items() if k in _PASSED_HEADERS}
        headers[FORWARDED_HEADER] = self.id
        try:
            answer = await self._http.request(
                request.method, owner.url + request.url.path, params=request.query_params, content=body, headers=headers
            )
        except Exception as exc:  # the owner died within its lease (or is unreachable): retry shortly
            log.warning(
                "session %s: node %s holding it does not answer (%s); retry after its lease",
                request.path_params.get("sid"),
                owner.node_id,
                type(exc).__name__,
            )
            return self._retry_later()
        return Response(answer.content, status_code=answer.status_code, media_type=answer.headers.get("content-type"))

    def _retry_later(self) -> Response:
        return JSONResponse(
            {"error": "the node holding this session does not answer; retry in a few seconds"},
            status_code=503,
            headers={"retry-after": str(RETRY_AFTER_S)},
        )

    async def moved(self, request: Request, exc: Exception) -> Response:
        """Exception handler: another node claimed the session between ``route`` and the request's own claim."""
        assert isinstance(exc, OwnedElsewhere)
        return self._retry_later()

    async def redis_failed(self, request: Request, exc: Exception) -> Response:
        """Exception handler: Redis did not answer; nothing was done, the client may retry."""
        log.error(
            "%s %s: redis: %s: %s", request.method, request.url.path, type(exc).__name__, exc
        )  # no token in a path
        return JSONResponse(
            {"error": "session placement (Redis) unavailable; retry in a few seconds"},
            status_code=503,
            headers={"retry-after": str(RETRY_AFTER_S)},
        )

    def exception_handlers(self) -> dict[Any, Callable[[Request, Exception], Awaitable[Response]]]:
        from redis.exceptions import RedisError

        return {OwnedElsewhere: self.moved, RedisError: self.redis_failed}

    # -- dashboards ---------------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def watch(self, sid: str) -> AsyncIterator[Subscriber]:
        """A dashboard's subscription to ``sid``'s snapshots, the current one first."""
        assert self.sessions is not None
        self.viewers += 1
        try:
            if self.cluster is None:
                session = await self.sessions.open(sid)
                sub = session.hub.subscribe()
                try:
                    yield sub
                finally:
                    session.hub.unsubscribe(sub)
                    await self.sessions.release(sid)
                return
            opened = False
            try:
                await self.sessions.open(sid)  # no other node holds it: this node shows it
                opened = True
            except OwnedElsewhere:
                pass
            try:
                sub = await self.cluster.subscribe(sid)
                try:
                    yield sub
                finally:
                    await self.cluster.unsubscribe(sid, sub)
            finally:
                if opened:
                    await self.sessions.release(sid)
        finally:
            self.viewers -= 1

    # -- health, readiness, metrics -----------------------------------------------------------------
    def routes(self) -> list[Route]:
        async def healthz(request: Request) -> Response:
            return JSONResponse({"ok": True, "node": self.id})

        async def readyz(request: Request) -> Response:
            checks = {"store": await _check(self.store.ping)}
            if self.cluster is not None:
                checks["redis"] = await self.cluster.ping()
            ready = all(checks.values())
            return JSONResponse({"ready": ready, "node": self.id, **checks}, status_code=200 if ready else 503)

        async def metrics(request: Request) -> Response:
            return Response(self.metrics.render(), media_type=CONTENT_TYPE)

        return [Route("/healthz", healthz), Route("/readyz", readyz), Route("/metrics", metrics)]


async def _check(probe: Callable[[], Any] | Callable[[], Awaitable[Any]]) -> bool:
    """Run a blocking probe off the event loop with a bound; True if it returned without raising."""
    loop = asyncio.get_running_loop()
    try:
        await asyncio.wait_for(loop.run_in_executor(None, probe), 3.0)
        return True
    except Exception:
        return False
