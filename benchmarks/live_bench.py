"""Live server benchmark: sustained ingest, frame-to-dashboard latency, CPU/memory, WebSocket fan-out.

    python benchmarks/live_bench.py ingest --seconds 180      # one patient, 640x480 at 30 fps
    python benchmarks/live_bench.py ingest --sessions 3 --pre-encoded --serve-args="--analysis-processes 0"
    python benchmarks/live_bench.py fanout --clients 100 --hz 10 --seconds 30

``ingest``: ``serve`` runs in its own process with the default detector and estimator; a Python
WebRTC patient streams a real face clip (../shared/data/d9.mp4 scaled to 640x480, looped) at 30 fps;
a clinician WebSocket records the time from the server receiving a keyframe's frame to the snapshot
reaching the dashboard (same host, same clock), for the newest keyframe of each message and for every
keyframe (a message can bring several; older ones come from the series tail). The server's own
trace (``health.latency_stages_ms``: where the time goes, per stage) is reported per window, with
its CPU time and RSS from /proc (the server's, and apart that of its children, the analysis
worker processes), to show whether anything grows. ``--sessions N``: N patients stream at once, each
watched by its own dashboard; "skipped" is the share of received frames the models never took (the
latest-frame policy drops stale ones). ``--pre-encoded``: the patients send d9 encoded once as VP8 (with
aiortc's encoder settings) instead of encoding every frame on the bench's cores, as a browser encodes
on the patient's own device; 3 live encoders take about 0.65 of this machine's 2 cores.
``--serve-args="--dashboard-hz 20"`` passes more flags to ``serve``.

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
def encode_vp8(frames: list[Any], bitrate: int = 1_000_000) -> list[bytes]:
    """The frames encoded once as VP8, with aiortc's encoder settings (a keyframe every 5 s)."""
    from fractions import Fraction

    import av

    codec = av.CodecContext.create("libvpx", "w")
    codec.height, codec.width = frames[0].shape[0] * 2 // 3, frames[0].shape[1]
    codec.bit_rate, codec.pix_fmt, codec.gop_size, codec.qmin, codec.qmax = bitrate, "yuv420p", 150, 2, 56
    codec.options = {
        "bufsize": str(bitrate),
        "cpu-used": "-6",
        "deadline": "realtime",
        "lag-in-frames": "0",
        "minrate": str(bitrate),
        "maxrate": str(bitrate),
        "noise-sensitivity": "4",
        "overshoot-pct": "15",
        "partitions": "0",
        "static-thresh": "1",
        "undershoot-pct": "100",
    }
    out = []
    for i, planes in enumerate(frames):
        frame = av.VideoFrame.from_ndarray(planes, format="yuv420p")
        frame.pts, frame.time_base = i, Fraction(1, 30)
        out.append(b"".join(bytes(p) for p in codec.encode(frame)))
    return out


def encoded_track(payloads: list[bytes]) -> Any:
    """A 30 fps camera that sends ``payloads`` (VP8 frames) in a loop without encoding anything."""
    import itertools

    import av
    from aiortc import VideoStreamTrack

    class EncodedTrack(VideoStreamTrack):
        def __init__(self) -> None:
            super().__init__()
            self._payloads = itertools.cycle(payloads)

        async def recv(self) -> Any:
            pts, time_base = await self.next_timestamp()  # 30 fps pacing
            packet = av.Packet(next(self._payloads))
            packet.pts, packet.time_base = pts, time_base
            return packet  # aiortc's sender packs an av.Packet as it is

    return EncodedTrack()


def children(pid: int) -> list[int]:
    """Pids of a process's children (the analysis workers and multiprocessing's resource tracker)."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    return out


def tree_usage(pid: int) -> tuple[float, float, float, float]:
    """(CPU seconds, RSS MiB) of a server, then the same summed over its living children.

    A child's CPU seconds count once it is seen; a worker that exited takes its seconds with it.
    """
    cpu, rss = proc_usage(pid)
    child_cpu = child_rss = 0.0
    for child in children(pid):
        try:
            c_cpu, c_rss = proc_usage(child)
        except OSError:
            continue
        child_cpu += c_cpu
        child_rss += c_rss
    return cpu, rss, child_cpu, child_rss


class Watcher:
    """One session's clinician WebSocket: keyframe latencies and the latest stream health."""

    def __init__(self) -> None:
        self.latencies: list[tuple[float, float]] = []  # (elapsed s, ms): newest keyframe of each message
        self.every: list[tuple[float, float]] = []  # (elapsed s, ms): every keyframe, from the series tail
        self.health: dict[str, Any] = {}

    async def run(
        self, url: str, session: dict[str, Any], frames: list[Any], t0: float, seconds: float, track: Any = None
    ) -> None:
        import websockets

        async with websockets.connect(ws_url(url, session), max_size=None) as ws:
            pc = await connect_patient(url, session, frames, track)
            last_seq, seen_seq = -1, -1
            try:
                while time.time() - t0 < seconds:
                    message = json.loads(await asyncio.wait_for(ws.recv(), 30))
                    now = time.time()
                    latest, self.health = message["latest"], message["health"]
                    if latest and latest["seq"] != last_seq:
                        last_seq = latest["seq"]
                        self.latencies.append((now - t0, (now - latest["received_at"]) * 1000))
                        # A message can bring several new keyframes (coalescing): each one's receipt
                        # time is the session start (received_at - time_s of the newest) + its time_s.
                        start = latest["received_at"] - latest["time_s"]
                        series = message["series"]
                        for seq, t in zip(series["seq"], series["time_s"]):
                            if seq > seen_seq:
                                self.every.append((now - t0, (now - start - t) * 1000))
                        seen_seq = max(seen_seq, latest["seq"])
            finally:
                await pc.close()


def skipped_percent(health: dict[str, Any]) -> float | None:
    received = health.get("frames_received") or 0
    return None if not received else 100.0 * (1 - (health.get("frames_analysed") or 0) / received)


async def ingest(
    seconds: float, window: float, serve_args: tuple[str, ...] = (), sessions: int = 1, pre_encoded: bool = False
) -> dict[str, Any]:
    allow_loopback_ice()
    tmp = Path(tempfile.mkdtemp(prefix="live-bench-"))
    server = ProcessServer(tmp / "bench.sqlite3", tmp / "serve.log", serve_args).start()
    assert server.proc is not None
    pid = server.proc.pid
    frames = load_640x480(DATA / "d9.mp4")
    payloads = encode_vp8(frames) if pre_encoded else None
    created = [create_session(server.url, f"bench {i}") for i in range(sessions)]
    watchers = [Watcher() for _ in created]
    samples: list[dict[str, Any]] = []
    try:
        t0 = time.time()
        cpu0, _, child_cpu0, _ = tree_usage(pid)
        own0 = time.process_time()  # this process: the patients' encoders and the dashboards
        tasks = [
            asyncio.ensure_future(
                w.run(server.url, s, frames, t0, seconds, encoded_track(payloads) if payloads else None)
            )
            for w, s in zip(watchers, created)
        ]
        next_sample = t0 + window
        while not all(t.done() for t in tasks):
            await asyncio.wait(tasks, timeout=max(0.0, next_sample - time.time()))
            if time.time() >= next_sample:
                cpu, rss, child_cpu, child_rss = tree_usage(pid)
                health = [dict(w.health) for w in watchers]
                samples.append(
                    {
                        "t": time.time() - t0,
                        "cpu_s": cpu - cpu0,
                        "workers_cpu_s": child_cpu - child_cpu0,
                        "rss_mib": rss,
                        "workers_rss_mib": child_rss,
                        "load_1m": os.getloadavg()[0],
                        "bench_cpu_s": time.process_time() - own0,
                        "health": health,
                    }
                )
                next_sample += window
        for task in tasks:
            task.result()  # a session that failed fails the run
    finally:
        server.stop()

    def total(health: list[dict[str, Any]], key: str) -> int:
        return sum(h.get(key) or 0 for h in health)

    per_window = []
    for i, s in enumerate(samples):
        start = {"t": 0.0, "cpu_s": 0.0, "workers_cpu_s": 0.0, "bench_cpu_s": 0.0, "health": [{} for _ in watchers]}
        prev = samples[i - 1] if i else start
        span = s["t"] - prev["t"]
        received = total(s["health"], "frames_received") - total(prev["health"], "frames_received")
        analysed = total(s["health"], "frames_analysed") - total(prev["health"], "frames_analysed")
        lat = [ms for w in watchers for t, ms in w.latencies if prev["t"] <= t < s["t"]]
        every = [ms for w in watchers for t, ms in w.every if prev["t"] <= t < s["t"]]
        per_window.append(
            {
                "until_s": round(s["t"]),
                "fps_received": received / span,
                "fps_analysed": analysed / span,
                "skipped_percent": 100.0 * (1 - analysed / received) if received else None,
                "keyframes_per_s": (total(s["health"], "keyframes") - total(prev["health"], "keyframes")) / span,
                "server_cpu_cores": (s["cpu_s"] - prev["cpu_s"]) / span,
                "workers_cpu_cores": (s["workers_cpu_s"] - prev["workers_cpu_s"]) / span,
                "patients_cpu_cores": (s["bench_cpu_s"] - prev["bench_cpu_s"]) / span,
                "server_rss_mib": s["rss_mib"],
                "workers_rss_mib": s["workers_rss_mib"],
                "load_1m": s["load_1m"],
                "latency_p50_ms": pct(lat, 50),
                "latency_p95_ms": pct(lat, 95),
                "every_keyframe_p50_ms": pct(every, 50),
                "every_keyframe_p95_ms": pct(every, 95),
                "server_stages_ms": [h.get("latency_stages_ms") for h in s["health"]],
            }
        )
    final = [w.health for w in watchers]
    all_ms = [ms for w in watchers for _, ms in w.latencies]
    every_ms = [ms for w in watchers for _, ms in w.every]
    received, analysed = total(final, "frames_received"), total(final, "frames_analysed")
    return {
        "seconds": seconds,
        "sessions": sessions,
        "pre_encoded": pre_encoded,
        "serve_args": list(serve_args),
        "cores": os.cpu_count(),
        "load_1m_during": [s["load_1m"] for s in samples],
        "frames_received": received,
        "frames_analysed": analysed,
        "skipped_percent": 100.0 * (1 - analysed / received) if received else None,
        "keyframes": total(final, "keyframes"),
        "keyframes_dropped": total(final, "keyframes_dropped"),
        "fps_received_per_session": received / seconds / sessions,
        "fps_analysed_per_session": analysed / seconds / sessions,
        "keyframe_to_dashboard_ms": {"p50": pct(all_ms, 50), "p95": pct(all_ms, 95), "n": len(all_ms)},
        "every_keyframe_to_dashboard_ms": {"p50": pct(every_ms, 50), "p95": pct(every_ms, 95), "n": len(every_ms)},
        "per_session": [
            {
                "frames_received": h.get("frames_received"),
                "frames_analysed": h.get("frames_analysed"),
                "skipped_percent": skipped_percent(h),
                "keyframes": h.get("keyframes"),
                "newest_p95_ms": pct([ms for _, ms in w.latencies], 95),
                # the server's own figures over its last 300 keyframes: receipt -> snapshot offered to
                # the viewers, and where that time went ([p50, p95] ms per stage, server.latency)
                "server_latency_ms": {"p50": h.get("latency_ms_p50"), "p95": h.get("latency_ms_p95")},
                "server_stages_ms": h.get("latency_stages_ms"),
            }
            for w, h in zip(watchers, final)
        ],
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
    p.add_argument("--sessions", type=int, default=1, help="patients streaming at once, each with its own dashboard")
    p.add_argument(
        "--pre-encoded",
        action="store_true",
        help="patients send VP8 encoded once before the run (a browser encodes on its own device), "
        "so the bench's encoders do not take the server's cores",
    )
    f = sub.add_parser("fanout")
    f.add_argument("--clients", type=int, default=100)
    f.add_argument("--hz", type=float, default=10)
    f.add_argument("--seconds", type=float, default=30)
    args = parser.parse_args()
    if args.what == "ingest":
        result = asyncio.run(
            ingest(args.seconds, args.window, tuple(args.serve_args.split()), args.sessions, args.pre_encoded)
        )
    else:
        result = asyncio.run(fanout(args.clients, args.hz, args.seconds))
    print(json.dumps(result, indent=2, default=lambda v: None))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
