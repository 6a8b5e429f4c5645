"""Placement and fan-out through a real redis-server (tests/services.py): two or three ``Cluster`` nodes
in one event loop, each with its own Redis connections, as separate serve processes would have."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from stream.server.cluster import Cluster, ClusterHub

TIMEOUT_S = 30


async def nodes(url: str, n: int, lease_s: float = 10.0, **kw: Any) -> list[Cluster]:
    out = []
    for i in range(n):
        node = Cluster(url, f"http://127.0.0.1:{9000 + i}", node_id=f"node{i}", lease_s=lease_s, **kw)
        await node.start()
        out.append(node)
    return out


async def until(condition: Any, timeout: float = TIMEOUT_S) -> Any:
    """Poll a condition (a coroutine function) until it holds; fails after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = await condition()
        if value:
            return value
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


def test_one_owner_per_session_and_the_others_learn_its_address(redis_url):
    async def story() -> None:
        a, b = await nodes(redis_url, 2)
        try:
            mine = await a.claim("s1")
            assert mine.is_self and a.owns("s1")
            theirs = await b.claim("s1")  # already owned: b learns who owns it and where
            assert not theirs.is_self and theirs.node_id == "node0" and theirs.url == "http://127.0.0.1:9000"
            assert not b.owns("s1")
            assert (await a.claim("s1")).is_self  # claiming again is renewing
            await a.release("s1")
            assert await b.owner("s1") is None
            assert (await b.claim("s1")).is_self
            assert (await a.owner("s1")).node_id == "node1"
        finally:
            await a.close()
            await b.close()

    asyncio.run(story())


def test_snapshots_reach_viewers_on_every_node_and_a_late_viewer_gets_the_newest_at_once(redis_url):
    async def story() -> None:
        a, b, c = await nodes(redis_url, 3)
        try:
            assert (await a.claim("s1")).is_self
            hub = ClusterHub(a, "s1")
            on_a, on_b, on_c = await a.subscribe("s1"), await b.subscribe("s1"), await c.subscribe("s1")
            for i in range(3):
                hub.publish(json.dumps({"seq": i}))
                for sub in (on_a, on_b, on_c):
                    # coalescing may skip a snapshot (each is complete), never reorder or invent one
                    seen = -1
                    while seen != i:
                        got = json.loads(await asyncio.wait_for(sub.queue.get(), TIMEOUT_S))["seq"]
                        assert seen < got <= i
                        seen = got
            late = await c.subscribe("s1")
            assert json.loads(late.queue.get_nowait()) == {"seq": 2}
            # a snapshot of another session does not reach these viewers
            assert (await b.claim("s2")).is_self
            ClusterHub(b, "s2").publish(json.dumps({"other": True}))
            hub.publish(json.dumps({"seq": 3}))
            assert json.loads(await asyncio.wait_for(late.queue.get(), TIMEOUT_S)) == {"seq": 3}
            # viewers of all nodes are counted for the owner (4 subscribed: a, b, c twice)
            await a.beat()
            await b.beat()
            await c.beat()
            await a.beat()
            assert len(hub) == 4
            await c.unsubscribe("s1", late)
            await c.beat()
            await a.beat()
            assert len(hub) == 3
        finally:
            for node in (a, b, c):
                await node.close()

    asyncio.run(story())


def test_a_dead_nodes_sessions_are_taken_over_after_its_lease_and_it_learns_it_lost_them(redis_url):
    lost: list[str] = []

    async def story() -> None:
        a, b = await nodes(redis_url, 2, lease_s=3.0)  # long enough for b's first claim on a busy machine
        a.on_lost = lost.append
        try:
            assert (await a.claim("s1")).is_self
            # a stops renewing (its process hangs or dies): its heartbeat task is gone
            for task in a._tasks:
                task.cancel()
            await asyncio.gather(*a._tasks, return_exceptions=True)
            assert not (await b.claim("s1")).is_self  # still within the lease

            async def taken() -> bool:
                return (await b.claim("s1")).is_self

            await until(taken)
            owner = await a.owner("s1")
            assert owner is not None and owner.node_id == "node1"
            # a comes back: its next heartbeat finds the lease gone and says so
            await a.beat()
            assert lost == ["s1"] and not a.owns("s1")
        finally:
            await a.close()
            await b.close()
        # b's close released its lease: nobody owns the session now
        c = (await nodes(redis_url, 1))[0]
        try:
            assert await c.owner("s1") is None
        finally:
            await c.close()

    asyncio.run(story())


def test_a_burst_of_viewers_joining_at_once_waits_for_connections_instead_of_failing(redis_url):
    """150 dashboards opening together (more than the node's Redis connections) all get the newest snapshot."""

    async def story() -> None:
        a, b = await nodes(redis_url, 2)
        try:
            assert (await a.claim("s1")).is_self
            ClusterHub(a, "s1").publish(json.dumps({"seq": 7}))

            async def published() -> bool:
                return await b.latest("s1") is not None

            await until(published)
            subs = await asyncio.gather(*(b.subscribe("s1") for _ in range(150)))
            assert all(json.loads(s.queue.get_nowait()) == {"seq": 7} for s in subs)
            assert b.errors == 0
            await asyncio.gather(*(b.unsubscribe("s1", s) for s in subs))
        finally:
            await a.close()
            await b.close()

    asyncio.run(story())
