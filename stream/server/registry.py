"""The sessions held in memory: live ones, and stored ones a clinician has reopened.

Every user of a session holds a lease (``use``): a request, a dashboard, an offer being answered.
A session leaves memory only when its last lease ends and nothing streams, so a request or a
closing dashboard cannot drop a session while an offer is answered. Its data stays stored.

With ``--redis`` (``cluster``) a node holds a session only while it owns the session's lease
(``cluster.py``): loading a session claims it, forgetting it releases it, and a session another live
node holds raises ``OwnedElsewhere`` (the request is forwarded there). A lease lost to another node
(this node stalled past its lease) closes the session here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from stream.errors import UnknownSessionError
from stream.server.cluster import Cluster, ClusterHub, Owner
from stream.server.live import LiveSession
from stream.server.models import ModelPool
from stream.server.settings import ServerSettings
from stream.server.store import Store

log = logging.getLogger(__name__)


class OwnedElsewhere(Exception):
    """Another live node holds this session (``--redis``): requests for it go there."""

    def __init__(self, owner: Owner) -> None:
        super().__init__(owner.node_id)
        self.owner = owner


class SessionRegistry:
    def __init__(
        self,
        settings: ServerSettings,
        store: Store,
        models: ModelPool,
        cluster: Cluster | None = None,
        metrics: Any = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.models = models
        self.cluster = cluster
        self.metrics = metrics  # ``NodeMetrics``: told when a session comes and goes
        self._open: dict[str, LiveSession] = {}
        self._lock = asyncio.Lock()

    def __contains__(self, session_id: str) -> bool:
        return session_id in self._open

    def get(self, session_id: str) -> LiveSession | None:
        return self._open.get(session_id)

    async def open(self, session_id: str) -> LiveSession:
        """Take a lease on a session (loaded from the store if needed); give it back with ``release``.

        Raises ``UnknownSessionError`` when the store has no such session.
        """
        async with self._lock:
            session = self._open.get(session_id)
            if session is None:
                record = self.store.session(session_id)
                if record is None:
                    raise UnknownSessionError(session_id)
                session = await self._load(record)
                self._open[session_id] = session
                if self.metrics is not None:
                    self.metrics.opened(session)
            session.users += 1
            return session

    async def release(self, session_id: str) -> None:
        """End a lease; forget the session once nobody uses it (no lease, no patient)."""
        async with self._lock:
            session = self._open.get(session_id)
            if session is None:
                return
            session.users = max(0, session.users - 1)
            if session.users == 0 and session.idle:
                del self._open[session_id]
                await self._forget(session)

    async def _load(self, record: Any) -> LiveSession:
        """A stored session into memory (caller holds the lock); with a cluster, only under this node's lease."""
        if self.cluster is None:
            return LiveSession(record, self.settings, self.store, self.models, observe_latency=self._observe())
        owner = await self.cluster.claim(record.id)
        if not owner.is_self:
            raise OwnedElsewhere(owner)
        try:
            return LiveSession(
                record,
                self.settings,
                self.store,
                self.models,
                hub=ClusterHub(self.cluster, record.id),
                observe_latency=self._observe(),
            )
        except BaseException:
            await self.cluster.release(record.id)
            raise

    def _observe(self) -> Any:
        return self.metrics.observe_latency if self.metrics is not None else None

    async def _forget(self, session: LiveSession) -> None:
        try:
            # The last change (a hang-up, the end of a stream) goes out before the publisher stops:
            # with --redis the session's viewers may be on other nodes, holding no lease here.
            session.publisher.publish_now()
            await session.close()
        finally:
            if self.metrics is not None:
                self.metrics.closed(session)
            if self.cluster is not None:
                try:
                    await self.cluster.release(session.id)
                except Exception as exc:  # the lease runs out by itself
                    log.warning(
                        "session %s: lease not released (%s); it expires in %g s", session.id, exc, self.cluster.lease_s
                    )

    def lease_lost(self, session_id: str) -> None:
        """Another node took this session (this node stalled past its lease): stop holding it here."""
        asyncio.ensure_future(self._drop(session_id))

    async def _drop(self, session_id: str) -> None:
        async with self._lock:
            session = self._open.pop(session_id, None)
        if session is not None:
            log.warning("session %s: closed on this node, another node holds it now", session_id)
            await session.close()
            if self.metrics is not None:
                self.metrics.closed(session)

    def sessions(self) -> list[LiveSession]:
        return list(self._open.values())

    @contextlib.asynccontextmanager
    async def use(self, session_id: str) -> AsyncIterator[LiveSession]:
        session = await self.open(session_id)
        try:
            yield session
        finally:
            await self.release(session_id)

    async def close_all(self) -> None:
        async with self._lock:
            sessions, self._open = list(self._open.values()), {}
        await asyncio.gather(*(self._forget(s) for s in sessions), return_exceptions=True)
