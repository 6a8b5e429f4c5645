"""Several serve nodes on one machine with PostgreSQL and Redis (docs/scale.md): fan-out through Redis,
takeover after a node is killed, sessions per node, store write rate.

    python benchmarks/cluster_bench.py fanout --clients 100 --nodes 3 --hz 10 --seconds 30
    python benchmarks/cluster_bench.py fanout --clients 100 --nodes 1 --no-redis   # control: in-process hub
    python benchmarks/cluster_bench.py takeover --runs 3 --lease 10
    python benchmarks/cluster_bench.py sessions --max 3 --seconds 45
    python benchmarks/cluster_bench.py store --rows 3000 --writers 8

Each run starts its own PostgreSQL and redis-server (tests/services.py: temporary folders, 127.0.0.1,
free ports) and its own nodes; all traffic stays on loopback (ICE forced onto 127.0.0.1 in every
process). Results are printed as JSON.

``fanout``: node A (its own process) holds one session with a realistic snapshot (120-keyframe tail,
an exercise segment) and publishes it ``--hz`` times a second through its ``ClusterHub`` (Redis
PUBLISH); nodes B, C, ... are real ``serve`` processes. ``--clients`` dashboard WebSockets are spread
round robin over all nodes (A's own viewers also get the snapshots through the Redis relay). Each
records the delay from the snapshot's ``sent_at`` (node A's wall clock when it built it) to its
arrival (same host, same clock): serialisation, Redis publish, relay on each node, WebSocket send.

``takeover``: three ``serve`` nodes, a real aiortc patient streaming d9.mp4 to node A, a dashboard on
node C; A is killed with SIGKILL; the patient offers again through node B every second (what the
patient page does on 503 + Retry-After) until B answers. Measured: kill -> B's answer (the lease
running out plus B reopening the session from PostgreSQL) and kill -> the dashboard on C showing a
new keyframe analysed by B.

``sessions``: one node (PostgreSQL, Redis) with 1..``--max`` simultaneous real patients (d9.mp4 at
640x480, 30 fps); per count, the frame-to-dashboard latency p50/p95 of each session's keyframes
(server receipt -> snapshot at a dashboard) and frames analysed per second.

``store``: keyframe rows per second that one connection commits (one row per statement, as the
live server writes them), SQLite and PostgreSQL.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import re
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from services import PostgresServer, RedisServer, postgres_bin, redis_bin  # noqa: E402
from test_server_support import (  # noqa: E402
    ADMIN_KEY,
    ProcessServer,
    allow_loopback_ice,
    create_session,
    free_port,
    load_face_frames,
    looping_track,
    next_snapshot,
    send_offer,
    ws_url,
)

DATA = Path(os.environ.get("STREAM_SHARED_DATA", REPO.parent / "shared" / "data"))
_SENT_AT = re.compile(r'"sent_at":([0-9.]+)')


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))], 1)


def summary(values: list[float]) -> dict[str, Any]:
    return {
        "n": len(values),
        "p50": pct(values, 50),
        "p95": pct(values, 95),
        "p99": pct(values, 99),
        "max": round(max(values), 1) if values else None,
    }


class Services:
    """PostgreSQL (fsync on, as in production) and Redis for one run."""

    def __enter__(self) -> Services:
        pg, rd = postgres_bin(), redis_bin()
        if pg is None or rd is None:
            raise SystemExit("needs PostgreSQL and redis-server (apt-get install postgresql redis-server)")
        self.pg = PostgresServer(pg, fsync=True).start()
        self.redis = RedisServer(rd).start()
        self.db = self.pg.new_database()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.redis.stop()
        self.pg.stop()


def node(
    db: str, redis_url: str, name: str, tmp: Path, lease: float = 10.0, extra: tuple[str, ...] = ()
) -> ProcessServer:
    return ProcessServer(
        db,
        tmp / f"node-{name}.log",
        extra_args=("--redis", redis_url, "--node-id", name, "--lease", str(lease), *extra),
    )


# -- fan-out -------------------------------------------------------------------------------------
def _publisher_node(db: str, redis_url: str | None, port: int, ready: Any, hz: float, compression: bool) -> None:
    import numpy as np
    import uvicorn

    from stream.aus import N_AUS
    from stream.server import ServerSettings, create_app
    from stream.server.sessions import token_hash
    from stream.session.exercises import Segment

    app = create_app(ServerSettings(db_path=db, admin_key=ADMIN_KEY, port=port, redis_url=redis_url, node_id="a"))
    store = app.state.store
    store.create_session("bench", "", False, {})
    rng = np.random.default_rng(0)
    store.start_segment("bench", Segment(0, "smile", 0.0, None))
    for i in range(120):
        store.add_keyframe("bench", i, i, i / 10, time.time(), 0, 2, rng.uniform(0, 5, N_AUS), rng.uniform(0, 5, N_AUS))
    store.add_token("bench", "clinician", token_hash("bench-token"))

    async def main() -> None:
        server = uvicorn.Server(
            uvicorn.Config(
                app,
                host="127.0.0.1",
                port=port,
                log_level="warning",
                access_log=False,
                ws_per_message_deflate=compression,
            )
        )  # as serve sets it
        task = asyncio.ensure_future(server.serve())
        while not server.started:
            await asyncio.sleep(0.05)
        session = await app.state.sessions.open("bench")  # node A claims the session's lease
        ready.set()
        while True:
            session.publisher.publish_now()  # the real snapshot, serialised once, published to Redis
            await asyncio.sleep(1 / hz)
        await task

    asyncio.run(main())


async def fanout(
    clients: int, nodes: int, hz: float, seconds: float, use_redis: bool = True, compression: bool = False
) -> dict[str, Any]:
    """``use_redis=False`` (one node only): the control, the in-process hub of a single node."""
    import websockets

    assert use_redis or nodes == 1, "without Redis there is one node"

    tmp = Path(tempfile.mkdtemp(prefix="cluster-fanout-"))
    with Services() as svc:
        extra = ("--ws-compression",) if compression else ()
        others = [node(svc.db, svc.redis.url, chr(ord("b") + i), tmp, extra=extra).start() for i in range(nodes - 1)]
        port = free_port()
        ctx = multiprocessing.get_context("spawn")
        ready = ctx.Event()
        owner = ctx.Process(
            target=_publisher_node,
            args=(svc.db, svc.redis.url if use_redis else None, port, ready, hz, compression),
            daemon=True,
        )
        owner.start()
        try:
            if not ready.wait(180):
                raise RuntimeError("publisher node did not start")
            urls = [f"http://127.0.0.1:{port}"] + [n.url for n in others]
            delays: dict[int, list[float]] = {i: [] for i in range(len(urls))}
            sizes: list[int] = []
            received = [0] * clients

            async def client(i: int, start: float) -> None:
                k = i % len(urls)
                url = f"{urls[k].replace('http', 'ws', 1)}/ws/s/bench?token=bench-token"
                async with websockets.connect(url, max_size=None) as ws:  # offers permessage-deflate, as browsers do
                    await ws.recv()
                    while time.time() - start < seconds:
                        text = await ws.recv()
                        now = time.time()
                        if now < start:
                            continue
                        received[i] += 1
                        found = _SENT_AT.search(text, 0, 1000)  # no JSON parse of 14 KB per message
                        assert found is not None
                        delays[k].append((now - float(found.group(1))) * 1000)
                        if i == 0:
                            sizes.append(len(text))

            start = time.time() + 3  # all clients connected and warm before counting
            await asyncio.gather(*(client(i, start) for i in range(clients)))
            everything = [d for v in delays.values() for d in v]
            return {
                "clients": clients,
                "nodes": nodes,
                "redis": use_redis,
                "compression": compression,
                "hz": hz,
                "seconds": seconds,
                "message_bytes": statistics.median(sizes) if sizes else None,
                "delivered": sum(received),
                "expected_about": int(clients * hz * seconds),
                "delay_ms": summary(everything),
                "delay_ms_by_node": {
                    ("a (owner)" if k == 0 else chr(ord("a") + k)): summary(v) for k, v in delays.items()
                },
                "load_avg_1m": os.getloadavg()[0],
            }
        finally:
            owner.terminate()
            owner.join(10)
            for n in others:
                n.stop()


# -- takeover ------------------------------------------------------------------------------------
async def offer(url: str, session: dict[str, Any], frames: list[Any]) -> tuple[Any, int]:
    pc, r = await send_offer(url, session, looping_track(frames))
    return pc, r.status_code


async def takeover(runs: int, lease: float) -> dict[str, Any]:
    import websockets

    allow_loopback_ice()
    frames = load_face_frames(DATA / "d9.mp4")
    answered, shown, attempts = [], [], []
    with Services() as svc:
        for run in range(runs):
            tmp = Path(tempfile.mkdtemp(prefix="cluster-takeover-"))
            a, b, c = (node(svc.db, svc.redis.url, f"{n}{run}", tmp, lease).start() for n in "abc")
            try:
                session = create_session(a.url, "takeover")
                pc, status = await offer(a.url, session, frames)
                assert status == 200
                async with websockets.connect(ws_url(c.url, session), max_size=None) as ws:
                    before = await next_snapshot(ws, lambda m: m["health"]["keyframes"] >= 5, timeout=180)
                    a.proc.send_signal(signal.SIGKILL)
                    killed = time.monotonic()
                    await pc.close()
                    tries = 0
                    while True:
                        tries += 1
                        pc, status = await offer(b.url, session, frames)
                        if status == 200:
                            break
                        assert status == 503, status
                        await asyncio.sleep(1.0)  # Retry-After
                    answered.append(time.monotonic() - killed)
                    attempts.append(tries)
                    n0 = before["health"]["keyframes"]
                    await next_snapshot(
                        ws,
                        lambda m, n0=n0: m["live"] and m["health"]["keyframes"] > n0 and m["latest"]["seq"] >= n0,
                        timeout=180,
                    )
                    shown.append(time.monotonic() - killed)
                    await pc.close()
            finally:
                for n in (a, b, c):
                    n.stop()
    return {
        "runs": runs,
        "lease_s": lease,
        "kill_to_answer_s": [round(x, 2) for x in answered],
        "kill_to_new_keyframe_on_dashboard_s": [round(x, 2) for x in shown],
        "offers_tried": attempts,
        "load_avg_1m": os.getloadavg()[0],
    }


# -- sessions per node ---------------------------------------------------------------------------
async def sessions_per_node(max_sessions: int, seconds: float) -> dict[str, Any]:
    import websockets

    allow_loopback_ice()
    from live_bench import load_640x480

    frames = load_640x480(DATA / "d9.mp4")
    results = []
    with Services() as svc:
        for count in range(1, max_sessions + 1):
            tmp = Path(tempfile.mkdtemp(prefix="cluster-sessions-"))
            n = node(svc.db, svc.redis.url, f"s{count}", tmp).start()
            try:
                sessions = [create_session(n.url, f"s{i}") for i in range(count)]
                delays: list[float] = []
                analysed: list[float] = []

                async def one(
                    session: dict[str, Any], n: ProcessServer, delays: list[float], analysed: list[float]
                ) -> None:
                    pc, status = await offer(n.url, session, frames)
                    assert status == 200
                    seen = -1
                    async with websockets.connect(ws_url(n.url, session), max_size=None) as ws:
                        start = time.monotonic()
                        last: dict[str, Any] | None = None
                        while time.monotonic() - start < seconds:
                            m = json.loads(await asyncio.wait_for(ws.recv(), 60))
                            now = time.time()
                            latest = m.get("latest")
                            if latest and latest["seq"] > seen and time.monotonic() - start > 5:  # after warm-up
                                delays.append((now - latest["received_at"]) * 1000)
                            if latest:
                                seen = latest["seq"]
                            last = m
                        if last is not None:
                            h = last["health"]
                            analysed.append(h["frames_analysed"] / max(1e-9, last["session_time_s"]))
                    await pc.close()

                await asyncio.gather(*(one(s, n, delays, analysed) for s in sessions))
                results.append(
                    {
                        "sessions": count,
                        "latency_ms": summary(delays),
                        "frames_analysed_per_s_per_session": [round(x, 1) for x in analysed],
                        "load_avg_1m": os.getloadavg()[0],
                    }
                )
            finally:
                n.stop()
    return {"seconds": seconds, "runs": results}


# -- store write rate ----------------------------------------------------------------------------
def store_rate(rows: int, writers: int, synchronous_commit: str) -> dict[str, Any]:
    """Rows per second committed by ``writers`` threads (sessions), each with its own connection."""
    import threading

    import numpy as np

    from stream.aus import N_AUS
    from stream.server.store import Store

    out: dict[str, Any] = {"writers": writers, "postgresql_synchronous_commit": synchronous_commit}
    with Services() as svc:
        if synchronous_commit != "on":
            import psycopg

            with psycopg.connect(svc.pg.url("postgres"), autocommit=True) as conn:
                conn.execute(f"ALTER SYSTEM SET synchronous_commit = '{synchronous_commit}'")
                conn.execute("SELECT pg_reload_conf()")
        for name, target in (
            ("sqlite", str(Path(tempfile.mkdtemp(prefix="store-rate-")) / "s.sqlite3")),
            ("postgresql", svc.db),
        ):
            stores = [Store(target) for _ in range(writers)]
            for k, store in enumerate(stores):
                store.create_session(f"R{k}", "", False, {})
            left, right = np.random.default_rng(0).uniform(0, 5, (2, N_AUS))

            def write(k: int, stores: list[Store] = stores, left: Any = left, right: Any = right) -> None:
                for i in range(rows // writers):
                    stores[k].add_keyframe(
                        f"R{k}",
                        i,
                        i,
                        i / 10,
                        1000.0 + i,
                        None,
                        2,
                        left,
                        right,
                        closure=np.zeros(2),
                        movement=np.zeros((2, 3)),
                    )

            threads = [threading.Thread(target=write, args=(k,)) for k in range(writers)]
            start = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            elapsed = time.perf_counter() - start
            for store in stores:
                store.close()
            total = writers * (rows // writers)
            out[name] = {
                "rows": total,
                "rows_per_s": round(total / elapsed),
                "ms_per_row_per_writer": round(1000 * elapsed * writers / total, 3),
            }
    out["load_avg_1m"] = os.getloadavg()[0]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    f = sub.add_parser("fanout")
    f.add_argument("--clients", type=int, default=100)
    f.add_argument("--nodes", type=int, default=3)
    f.add_argument("--hz", type=float, default=10)
    f.add_argument("--seconds", type=float, default=30)
    f.add_argument("--no-redis", action="store_true", help="control: one node, its in-process hub (with --nodes 1)")
    f.add_argument(
        "--ws-compression",
        action="store_true",
        help="nodes accept permessage-deflate (serve --ws-compression): every send compressed per viewer",
    )
    t = sub.add_parser("takeover")
    t.add_argument("--runs", type=int, default=3)
    t.add_argument("--lease", type=float, default=10.0)
    s = sub.add_parser("sessions")
    s.add_argument("--max", type=int, default=3)
    s.add_argument("--seconds", type=float, default=45)
    r = sub.add_parser("store")
    r.add_argument("--rows", type=int, default=3000)
    r.add_argument("--writers", type=int, default=1, help="threads writing at once, each its own connection")
    r.add_argument(
        "--synchronous-commit",
        default="on",
        choices=("on", "off"),
        help="PostgreSQL synchronous_commit (off: a database-server crash may lose the last ~0.6 s)",
    )
    args = parser.parse_args()
    if args.command == "fanout":
        result = asyncio.run(
            fanout(args.clients, args.nodes, args.hz, args.seconds, not args.no_redis, args.ws_compression)
        )
    elif args.command == "takeover":
        result = asyncio.run(takeover(args.runs, args.lease))
    elif args.command == "sessions":
        result = asyncio.run(sessions_per_node(args.max, args.seconds))
    else:
        result = store_rate(args.rows, args.writers, args.synchronous_commit)
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
