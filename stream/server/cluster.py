"""Several ``serve`` nodes through Redis: who holds which session, and dashboards on every node.

Only with ``serve --redis URL``; one node alone keeps the in-process ``Hub`` and needs no Redis.

**Placement.** A node that holds a session in memory (its patient's WebRTC peer, its analysis, or
a reopened record) owns it: ``stream:owner:<session>`` holds the node's id with a lease
(``lease_s``), renewed by the node's heartbeat every ``lease_s / 4``. A node that dies stops renewing,
and after at most ``lease_s`` the session is free: the next node asked for it (a reconnecting
patient, a dashboard) claims it and reopens it from the shared store, which replays the stored
series. ``stream:node:<id>`` holds each live node's address, so a node can forward a request for a
session it does not own to the owner. Claiming, renewing and releasing are single Lua scripts, so
two nodes never both believe they own a session.

**Fan-out.** The owner publishes every dashboard snapshot through Redis and every node relays the
sessions its dashboards watch: ``relay.SnapshotRelay``, which this node's ``Cluster`` holds and starts.
The heartbeat here renews this node's viewer counts and sums them for the sessions it owns.

Redis failures are logged once per outage and counted (``errors``); the sessions go on (their
results are in the store, not in Redis).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from stream.server.hub import Hub, Subscriber
from stream.server.relay import PREFIX, SnapshotRelay, viewers_key
from stream.server.relay import text as _text

log = logging.getLogger(__name__)

MAX_CONNECTIONS = 32  # per node: one held by the subscription, the rest shared by calls

# KEYS[1] owner key; ARGV: node id, lease ms. Returns the owner after the call (this node if claimed).
_CLAIM = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return ARGV[1] end
local owner = redis.call('GET', KEYS[1])
if owner == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return owner
"""
# KEYS: owner keys; ARGV: node id, lease ms. Renews those still ours; returns the indexes (1-based) lost.
_RENEW = """
local lost = {}
for i, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then redis.call('PEXPIRE', key, ARGV[2]) else table.insert(lost, i) end
end
return lost
"""
# KEYS[1] owner key; ARGV[1] node id. Deletes only our own lease.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def new_node_id() -> str:
    return secrets.token_hex(6)


@dataclass(frozen=True)
class Owner:
    node_id: str
    url: str | None  # the owner's address for forwarded requests; None: its node record expired
    is_self: bool


class Cluster:
    """One node's link to Redis: leases of the sessions it owns, its heartbeat, publish and relay."""

    def __init__(
        self,
        url: str,
        node_url: str,
        node_id: str | None = None,
        lease_s: float = 10.0,
        client_queue: int = 4,
        on_lost: Callable[[str], Any] | None = None,
    ) -> None:
        import redis.asyncio as redis

        self.url = url
        self.node_id = node_id or new_node_id()
        self.node_url = node_url.rstrip("/")
        self.lease_s = lease_s
        self.client_queue = client_queue
        self.on_lost = on_lost  # called with a session id whose lease another node took (or that expired)
        # A bounded pool that makes a burst wait (100 dashboards opening at once) instead of failing.
        pool = redis.BlockingConnectionPool.from_url(
            url, max_connections=MAX_CONNECTIONS, timeout=10, health_check_interval=30
        )
        self._redis = redis.Redis(connection_pool=pool)
        self._claim = self._redis.register_script(_CLAIM)
        self._renew = self._redis.register_script(_RENEW)
        self._release = self._redis.register_script(_RELEASE)
        self._owned: set[str] = set()
        self._viewer_totals: dict[str, int] = {}  # session (owned) -> viewers on all live nodes
        self.relay = SnapshotRelay(self._redis, self.node_id, self._lease_ms, client_queue, self._failed, self._ok)
        self._tasks: list[asyncio.Task[Any]] = []
        self._failing = False
        self.errors = 0  # Redis calls that failed (metrics)
        self.ready = False  # last heartbeat reached Redis

    # -- keys ------------------------------------------------------------------------------------
    @staticmethod
    def _owner_key(sid: str) -> str:
        return f"{PREFIX}owner:{sid}"

    def _node_key(self, node_id: str | None = None) -> str:
        return f"{PREFIX}node:{node_id or self.node_id}"

    @property
    def _lease_ms(self) -> int:
        return int(self.lease_s * 1000)

    # -- lifecycle -------------------------------------------------------------------------------
    async def start(self) -> None:
        """Register the node (fails here, at start, if Redis cannot be reached) and start its tasks."""
        await self._redis.set(self._node_key(), self.node_url, px=self._lease_ms)
        self.ready = True
        await self.relay.start(f"{PREFIX}ctl:{self.node_id}")
        self._tasks = [
            asyncio.ensure_future(self._heartbeat()),
            asyncio.ensure_future(self.relay.listen()),
            asyncio.ensure_future(self.relay.sender()),
        ]

    async def close(self) -> None:
        """Release every lease (another node may take the sessions at once) and disconnect."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await self.relay.flush()
        for sid in list(self._owned):
            with contextlib.suppress(Exception):
                await self.release(sid)
        with contextlib.suppress(Exception):
            await self._redis.delete(self._node_key())
        await self.relay.close()
        with contextlib.suppress(Exception):
            await self._redis.aclose(close_connection_pool=True)

    def _failed(self, what: str, exc: Exception) -> None:
        self.errors += 1
        if not self._failing:
            log.error("redis %s failed: %s: %s", what, type(exc).__name__, exc)
        self._failing = True

    def _ok(self) -> None:
        if self._failing:
            log.info("redis reachable again")
        self._failing = False

    # -- placement -------------------------------------------------------------------------------
    async def claim(self, sid: str) -> Owner:
        """Own ``sid`` if nobody does (or this node already does); the owner after the call."""
        found = await self._claim(keys=[self._owner_key(sid)], args=[self.node_id, self._lease_ms])
        owner = _text(found)
        if owner == self.node_id:
            self._owned.add(sid)
            return Owner(self.node_id, self.node_url, True)
        return Owner(owner, await self._url_of(owner), False)

    async def owner(self, sid: str) -> Owner | None:
        """Who owns ``sid`` now; None when nobody does (or its owner's lease ran out)."""
        found = await self._redis.get(self._owner_key(sid))
        if found is None:
            return None
        owner = _text(found)
        if owner == self.node_id:
            return Owner(owner, self.node_url, True)
        return Owner(owner, await self._url_of(owner), False)

    async def _url_of(self, node_id: str) -> str | None:
        url = await self._redis.get(self._node_key(node_id))
        return _text(url) if url is not None else None

    async def release(self, sid: str) -> None:
        self._owned.discard(sid)
        self._viewer_totals.pop(sid, None)
        await self._release(keys=[self._owner_key(sid)], args=[self.node_id])

    def owns(self, sid: str) -> bool:
        return sid in self._owned

    async def _heartbeat(self) -> None:
        interval = self.lease_s / 4
        while True:
            await asyncio.sleep(interval)
            try:
                await self.beat()
                self._ok()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.ready = False
                self._failed("heartbeat", exc)

    async def beat(self) -> None:
        """Renew the node record and every owned lease; sum the viewers of owned sessions."""
        await self._redis.set(self._node_key(), self.node_url, px=self._lease_ms)
        owned = sorted(self._owned)
        lost: list[str] = []
        if owned:
            indexes = await self._renew(keys=[self._owner_key(s) for s in owned], args=[self.node_id, self._lease_ms])
            lost = [owned[int(i) - 1] for i in indexes]
        await self.relay.count_viewers()  # this node's viewer counts, with the lease's lifetime
        for sid in owned:
            if sid not in lost:
                self._viewer_totals[sid] = await self._count_viewers(sid)
        self.ready = True
        for sid in lost:
            self._owned.discard(sid)
            log.warning("session %s: this node's lease on it was lost (another node owns it now)", sid)
            if self.on_lost is not None:
                self.on_lost(sid)

    async def _count_viewers(self, sid: str) -> int:
        counts = await self._redis.hgetall(viewers_key(sid))
        if not counts:
            return 0
        nodes = list(counts)
        alive = await self._redis.exists(*[self._node_key(_text(n)) for n in nodes]) if nodes else 0
        if alive == len(nodes):
            return sum(int(v) for v in counts.values())
        total = 0
        for node, value in counts.items():  # a dead node's viewers are gone with it
            if await self._redis.exists(self._node_key(_text(node))):
                total += int(value)
        return total

    def viewers(self, sid: str) -> int:
        """Viewers of an owned session on all live nodes (as of the last heartbeat, at least this node's)."""
        return max(self.relay.local_viewers(sid), self._viewer_totals.get(sid, 0))

    # -- fan-out (``relay``) -----------------------------------------------------------------------
    @property
    def published(self) -> int:
        return self.relay.published

    def publish(self, sid: str, message: str) -> None:
        """Hand a session's newest snapshot to the sender (never waits)."""
        self.relay.publish(sid, message)

    async def subscribe(self, sid: str) -> Subscriber:
        """A viewer on this node: gets the newest snapshot at once, then every one published."""
        return await self.relay.subscribe(sid)

    async def unsubscribe(self, sid: str, sub: Subscriber) -> None:
        await self.relay.unsubscribe(sid, sub)

    def relay_dropped(self, sid: str) -> int:
        return self.relay.dropped(sid)

    async def latest(self, sid: str) -> str | None:
        return await self.relay.latest(sid)

    async def ping(self) -> bool:
        try:
            return bool(await asyncio.wait_for(self._redis.ping(), 2.0))
        except Exception:
            return False


class ClusterHub(Hub):
    """What an owned session publishes into, in place of its ``Hub``.

    Snapshots go to Redis (and from there to every node's viewers, this node's included, through
    ``Cluster.subscribe``); ``len`` is the session's viewers on all nodes, ``dropped`` this node's
    relay drops.
    """

    def __init__(self, cluster: Cluster, sid: str) -> None:
        super().__init__(cluster.client_queue)
        self.cluster = cluster
        self.sid = sid

    def __len__(self) -> int:
        return self.cluster.viewers(self.sid)

    def publish(self, message: str) -> None:
        self.latest = message
        self.published += 1
        self.cluster.publish(self.sid, message)

    def dropped(self) -> int:
        return self.cluster.relay_dropped(self.sid)
