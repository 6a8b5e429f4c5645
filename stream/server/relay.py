"""Snapshot fan-out through Redis: an owner publishes, every node relays to its own dashboards.

Apart from the placement leases (``cluster``) because it is the other half of running several
nodes: placement decides which node computes a session, the relay carries what that node computes
to the viewers on every node.

The owner publishes every dashboard snapshot (a complete state, serialised once) on
``stream:snap:<session>`` and keeps the newest in ``stream:latest:<session>``. Every node relays
the channels of the sessions its dashboards watch into a local ``Hub`` (bounded queues per viewer,
oldest dropped, as for one node), so a clinician's WebSocket may land on any node; a viewer who joins
gets the newest state at once. Each node counts its viewers per session in
``stream:viewers:<session>`` (a hash by node id), which the owner sums (live nodes only) for the
snapshot's ``viewers``.

Publishing never waits for Redis: the newest message per session is handed to one sender task, which
sends whatever is pending in one round trip; a session that produced two snapshots while Redis was
busy sends only the newer (each is complete).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from stream.server.hub import Hub, Subscriber

if TYPE_CHECKING:
    import redis.asyncio as redis

PREFIX = "stream:"
LATEST_TTL_S = 3600  # the newest snapshot of a session stays readable this long after its last update


def text(value: bytes | str) -> str:
    """A Redis reply as text (the client returns bytes; its type hints say bytes or str)."""
    return value.decode() if isinstance(value, bytes) else str(value)


def channel(sid: str) -> str:
    return f"{PREFIX}snap:{sid}"


def latest_key(sid: str) -> str:
    return f"{PREFIX}latest:{sid}"


def viewers_key(sid: str) -> str:
    return f"{PREFIX}viewers:{sid}"


class SnapshotRelay:
    """One node's side of the fan-out: the sender of owned sessions' snapshots, the relays of watched ones.

    ``failed(what, exc)`` and ``ok()`` report Redis outages to the node (logged once per outage).
    """

    def __init__(
        self,
        client: redis.Redis,
        node_id: str,
        lease_ms: int,
        client_queue: int,
        failed: Callable[[str, Exception], None],
        ok: Callable[[], None],
    ) -> None:
        self._redis = client
        self.node_id = node_id
        self.lease_ms = lease_ms  # viewer counts expire with the node's lease
        self.client_queue = client_queue
        self._failed = failed
        self._ok = ok
        self._pubsub: Any = None
        self._relays: dict[str, Hub] = {}  # session -> local hub of this node's viewers
        self._joining: dict[str, asyncio.Lock] = {}  # session -> lock over its relay's setup and teardown
        self._pending: dict[str, str] = {}  # session -> newest snapshot not yet published
        self._send = asyncio.Event()
        self.published = 0

    async def start(self, control_channel: str) -> None:
        self._pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        # A channel of its own from the start: the listener has a subscription to wait on.
        await self._pubsub.subscribe(control_channel)

    async def close(self) -> None:
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()

    # -- publishing (owned sessions) -------------------------------------------------------------
    def publish(self, sid: str, message: str) -> None:
        """Hand a session's newest snapshot to the sender (never waits)."""
        self._pending[sid] = message
        self._send.set()

    async def sender(self) -> None:
        while True:
            await self._send.wait()
            self._send.clear()
            try:
                await self.flush()
                self._ok()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._failed("publish", exc)
                await asyncio.sleep(0.5)

    async def flush(self) -> None:
        if not self._pending:
            return
        pending, self._pending = self._pending, {}
        async with self._redis.pipeline(transaction=False) as pipe:
            for sid, message in pending.items():
                pipe.set(latest_key(sid), message, ex=LATEST_TTL_S)
                pipe.publish(channel(sid), message)
            await pipe.execute()
        self.published += len(pending)

    # -- relaying (watched sessions) -------------------------------------------------------------
    async def subscribe(self, sid: str) -> Subscriber:
        """A viewer on this node: gets the newest snapshot at once, then every one published.

        The first viewer of a session on this node subscribes to its channel, then reads the newest
        snapshot; viewers joining meanwhile wait for that (one lock per session), so each starts
        with the newest state. Messages arriving in between go to the hub already.
        """
        async with self._joining.setdefault(sid, asyncio.Lock()):
            hub = self._relays.get(sid)
            if hub is None:
                hub = self._relays[sid] = Hub(self.client_queue)
                try:
                    await self._pubsub.subscribe(channel(sid))
                    latest = await self._redis.get(latest_key(sid))
                except BaseException:
                    del self._relays[sid]
                    raise
                if latest is not None and hub.latest is None:
                    hub.latest = text(latest)
            sub = hub.subscribe()
        await self._count(sid, hub)
        return sub

    async def unsubscribe(self, sid: str, sub: Subscriber) -> None:
        async with self._joining.setdefault(sid, asyncio.Lock()):
            hub = self._relays.get(sid)
            if hub is None:
                return
            hub.unsubscribe(sub)
            if len(hub) == 0:
                del self._relays[sid]  # (its lock stays: a viewer may be waiting on it)
                with contextlib.suppress(Exception):
                    await self._pubsub.unsubscribe(channel(sid))
        with contextlib.suppress(Exception):
            await self._count(sid, hub)

    async def _count(self, sid: str, hub: Hub) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hset(viewers_key(sid), self.node_id, len(hub))
            pipe.pexpire(viewers_key(sid), self.lease_ms)
            await pipe.execute()

    async def count_viewers(self) -> None:
        """Write this node's viewer count of every relayed session (the heartbeat renews them)."""
        for sid, hub in self._relays.items():
            await self._count(sid, hub)

    def local_viewers(self, sid: str) -> int:
        return len(self._relays[sid]) if sid in self._relays else 0

    def dropped(self, sid: str) -> int:
        hub = self._relays.get(sid)
        return hub.dropped() if hub is not None else 0

    async def listen(self) -> None:
        while True:
            try:
                message = await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._failed("subscription", exc)
                await asyncio.sleep(0.5)
                continue
            if message is None or message.get("type") != "message":
                continue
            name = text(message["channel"])
            hub = self._relays.get(name[len(PREFIX) + len("snap:") :])
            if hub is not None:
                hub.publish(text(message["data"]))

    async def latest(self, sid: str) -> str | None:
        found = await self._redis.get(latest_key(sid))
        return text(found) if found is not None else None
