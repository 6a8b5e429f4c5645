"""The sessions held in memory: live ones, and stored ones a clinician has reopened.

Every user of a session holds a lease (``use``): a request, a dashboard, an offer being answered.
A session leaves memory only when its last lease ends and nothing streams, so a request or a
closing dashboard cannot drop a session while an offer is answered. Its data stays stored.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from stream.errors import UnknownSessionError
from stream.server.live import LiveSession
from stream.server.models import ModelPool
from stream.server.settings import ServerSettings
from stream.server.store import Store


class SessionRegistry:
    def __init__(self, settings: ServerSettings, store: Store, models: ModelPool) -> None:
        self.settings = settings
        self.store = store
        self.models = models
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
                session = LiveSession(record, self.settings, self.store, self.models)
                self._open[session_id] = session
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
                await session.close()

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
        await asyncio.gather(*(s.close() for s in sessions), return_exceptions=True)
