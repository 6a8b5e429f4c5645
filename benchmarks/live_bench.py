"""Live server benchmark: sustained ingest, frame-to-dashboard latency, CPU/memory, WebSocket fan-out.

    python benchmarks/live_bench.py ingest --seconds 180      # one patient, 640x480 at 30 fps
    python benchmarks/live_bench.py fanout --clients 100 --hz 10 --seconds 30

``ingest``: ``serve`` runs in its own process with the default detector and estimator; a Python
WebRTC patient streams a real face clip (../shared/data/d9.mp4 scaled to 640x480, looped) at 30 fps;
a clinician WebSocket records the time from the server receiving a keyframe's frame to the snapshot
reaching the dashboard (same host, same clock), for the newest keyframe of each message and for every
keyframe (a message can bring several; older ones come from the series tail). The server's own
trace (``health.latency_stages_ms``: where the time goes, per stage) is reported per window, with
its CPU time and RSS from /proc, to show whether anything grows. ``--serve-args="--dashboard-hz 20"``
passes more flags to ``serve``.

``fanout``: a server process holds one session with a realistic snapshot (120-keyframe tail, an
exercise segment) and publishes it through the real hub ``--hz`` times a second; ``--clients``
WebSocket clients in this process record publish-to-receive delays.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from test_server_support import (  # noqa: E402
    ADMIN_KEY,
    ProcessServer,
    allow_loopback_ice,
    connect_patient,
    create_session,
    free_port,
    ws_url,
)

DATA = Path(os.environ.get("STREAM_SHARED_DATA", REPO.parent / "shared" / "data"))
CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_usage(pid: int) -> tuple[float, float]:
    """(CPU seconds used, RSS MiB) of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / CLK_TCK
    rss = int(fields[21]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    return cpu, rss


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def load_640x480(path: Path, every: int = 2) -> list[Any]:
    import av

    frames = []
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i % every == 0:
                frames.append(frame.reformat(width=640, height=480, format="yuv420p").to_ndarray())
    return frames


# -- ingest ---------------------------------------------------------------------------------------
async def ingest(seconds: float, window: float, serve_args: tuple[str, ...] = ()) -> dict[str, Any]:
    import websockets

    allow_loopback_ice()
    tmp = Path(tempfile.mkdtemp(prefix="live-bench-"))
    server = ProcessServer(tmp / "bench.sqlite3", tmp / "serve.log", serve_args).start()
    assert server.proc is not None
    pid = server.proc.pid
    frames = load_640x480(DATA / "d9.mp4")
    session = create_session(server.url, "bench")
    latencies: list[tuple[float, float]] = []  # (elapsed s, ms): newest keyframe of each message
    every: list[tuple[float, float]] = []  # (elapsed s, ms): every keyframe, from the series tail
    samples: list[dict[str, Any]] = []
    try:
        async with websockets.connect(ws_url(server.url, session), max_size=None) as ws:
            pc = await connect_patient(server.url, session, frames)
            t0 = time.time()
            cpu0, _ = proc_usage(pid)
            last_seq, seen_seq, next_sample, health = -1, -1, t0 + window, {}
            while time.time() - t0 < seconds:
                message = json.loads(await asyncio.wait_for(ws.recv(), 30))
                now = time.time()
                latest, health = message["latest"], message["health"]
                if latest and latest["seq"] != last_seq:
                    last_seq = latest["seq"]
                    latencies.append((now - t0, (now - latest["received_at"]) * 1000))
                    # A message can bring several new keyframes (coalescing): each one's receipt
                    # time is the session start (received_at - time_s of the newest) + its time_s.
                    start = latest["received_at"] - latest["time_s"]
                    series = message["series"]
                    for seq, t in zip(series["seq"], series["time_s"]):
                        if seq > seen_seq:
                            every.append((now - t0, (now - start - t) * 1000))
                    seen_seq = max(seen_seq, latest["seq"])
                if now >= next_sample:
                    cpu, rss = proc_usage(pid)
                    samples.append({"t": now - t0, "cpu_s": cpu - cpu0, "rss_mib": rss, **health})
                    next_sample += window
            await pc.close()
    finally:
        server.stop()
    per_window = []
    for i, s in enumerate(samples):
        prev = samples[i - 1] if i else {"t": 0.0, "cpu_s": 0.0, "frames_received": 0, "keyframes": 0}
        span = s["t"] - prev["t"]
        lat = [ms for t, ms in latencies if prev["t"] <= t < s["t"]]
        per_window.append(
            {
                "until_s": round(s["t"]),
                "fps_received": (s["frames_received"] - prev["frames_received"]) / span,
                "keyframes_per_s": (s["keyframes"] - prev["keyframes"]) / span,
                "frames_analysed_per_s": None,
                "cpu_cores": (s["cpu_s"] - prev["cpu_s"]) / span,
                "rss_mib": s["rss_mib"],
                "latency_p50_ms": pct(lat, 50),
                "latency_p95_ms": pct(lat, 95),
                "every_keyframe_p50_ms": pct([ms for t, ms in every if prev["t"] <= t < s["t"]], 50),
                "every_keyframe_p95_ms": pct([ms for t, ms in every if prev["t"] <= t < s["t"]], 95),
                "server_stages_ms": s.get("latency_stages_ms"),
            }
        )
    last = samples[-1] if samples else {}
    all_ms = [ms for _, ms in latencies]
    return {
        "seconds": seconds,
        "serve_args": list(serve_args),
        "load_avg_1m": os.getloadavg()[0],
        "cores": os.cpu_count(),
        "frames_received": last.get("frames_received"),
        "frames_analysed": last.get("frames_analysed"),
        "keyframes": last.get("keyframes"),
        "keyframes_dropped": last.get("keyframes_dropped"),
        "frames_stale_dropped": last.get("frames_stale_dropped"),
        "fps_received": last.get("frames_received", 0) / last.get("t", 1),
        "fps_analysed": last.get("frames_analysed", 0) / last.get("t", 1),
        "keyframe_to_dashboard_ms": {"p50": pct(all_ms, 50), "p95": pct(all_ms, 95), "n": len(all_ms)},
        "every_keyframe_to_dashboard_ms": {
            "p50": pct([ms for _, ms in every], 50),
            "p95": pct([ms for _, ms in every], 95),
            "n": len(every),
        },
        # the server's own figures over its last 300 keyframes: receipt -> snapshot offered to the
        # viewers, and where that time went ([p50, p95] ms per stage, see server.latency.KeyframeTrace)
        "server_latency_ms": {"p50": last.get("latency_ms_p50"), "p95": last.get("latency_ms_p95")},
        "server_stages_ms": last.get("latency_stages_ms"),
        "per_window": per_window,
    }


# -- fan-out --------------------------------------------------------------------------------------
def _fanout_server(db: str, port: int, ready: Any, hz: float) -> None:
    import numpy as np
    import uvicorn

    from stream.aus import N_AUS
    from stream.server import ServerSettings, create_app
    from stream.session.exercises import Segment

    app = create_app(ServerSettings(db_path=db, admin_key=ADMIN_KEY, port=port))
    store = app.state.store
    store.create_session("bench", "", False, {})
    rng = np.random.default_rng(0)
    store.start_segment("bench", Segment(0, "smile", 0.0, None))
    for i in range(120):
        store.add_keyframe("bench", i, i, i / 10, time.time(), 0, 2, rng.uniform(0, 5, N_AUS), rng.uniform(0, 5, N_AUS))
    store.add_token(
        "bench", "clinician", __import__("stream.server.sessions", fromlist=["token_hash"]).token_hash("bench-token")
    )

    async def publisher() -> None:
        session = await app.state.sessions.open("bench")
        ready.set()
        while True:
            session.publisher.publish_now()  # the real snapshot, serialised once, through the real hub
            await asyncio.sleep(1 / hz)

    async def main() -> None:
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False))
        task = asyncio.ensure_future(server.serve())
        while not server.started:
            await asyncio.sleep(0.05)
        await publisher()
        await task

    asyncio.run(main())


async def fanout(clients: int, hz: float, seconds: float) -> dict[str, Any]:
    import websockets

    tmp = Path(tempfile.mkdtemp(prefix="fanout-bench-"))
    port = free_port()
    ready = multiprocessing.get_context("spawn").Event()
    proc = multiprocessing.get_context("spawn").Process(
        target=_fanout_server, args=(str(tmp / "f.sqlite3"), port, ready, hz), daemon=True
    )
    proc.start()
    if not ready.wait(120):
        raise RuntimeError("fan-out server did not start")
    url = f"ws://127.0.0.1:{port}/ws/s/bench?token=bench-token"
    delays: list[float] = []
    sizes: list[int] = []
    received = [0] * clients

    async def client(i: int, start: float) -> None:
        async with websockets.connect(url, max_size=None) as ws:
            await ws.recv()
            while time.time() - start < seconds:
                text = await ws.recv()
                now = time.time()
                received[i] += 1
                # sent_at is near the start of every snapshot: read it without parsing 10+ KB
                # of JSON per message, so the measurement is the server's delivery, not our parser.
                head = text[: text.index(',"session_time_s"')] + "}"
                delays.append((now - json.loads(head)["sent_at"]) * 1000)
                if i == 0:
                    sizes.append(len(text))

    start = time.time() + 2
    cpu0, _ = proc_usage(proc.pid)
    await asyncio.gather(*(client(i, start) for i in range(clients)))
    cpu1, rss = proc_usage(proc.pid)
    proc.terminate()
    elapsed = time.time() - start + 2
    return {
        "clients": clients,
        "hz": hz,
        "seconds": seconds,
        "message_bytes": statistics.median(sizes) if sizes else None,
        "delivered": sum(received),
        "expected_about": int(clients * hz * seconds),
        "delay_ms": {
            "p50": pct(delays, 50),
            "p95": pct(delays, 95),
            "p99": pct(delays, 99),
            "max": max(delays) if delays else None,
        },
        "server_cpu_cores": (cpu1 - cpu0) / elapsed,
        "server_rss_mib": rss,
        "load_avg_1m": os.getloadavg()[0],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("ingest")
    p.add_argument("--seconds", type=float, default=180)
    p.add_argument("--window", type=float, default=30, help="seconds per reported window")
    p.add_argument("--serve-args", default="", help='more flags for serve, e.g. --serve-args="--dashboard-hz 20"')
    f = sub.add_parser("fanout")
    f.add_argument("--clients", type=int, default=100)
    f.add_argument("--hz", type=float, default=10)
    f.add_argument("--seconds", type=float, default=30)
    args = parser.parse_args()
    if args.what == "ingest":
        result = asyncio.run(ingest(args.seconds, args.window, tuple(args.serve_args.split())))
    else:
        result = asyncio.run(fanout(args.clients, args.hz, args.seconds))
    print(json.dumps(result, indent=2, default=lambda v: None))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
