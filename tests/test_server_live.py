"""A real patient stream end to end: Python WebRTC patient -> serve (own process) -> WebSocket clinician,
SQLite on disk, and a restart of the server process."""

from __future__ import annotations

import asyncio
import json
import math
import time
from typing import Any

import httpx
import pytest
import websockets

from stream.aus import N_AUS
from stream.server.store import Store
from test_server_support import ADMIN_KEY, ProcessServer, allow_loopback_ice, connect_patient, create_session, load_face_frames, ws_url

TIMEOUT_S = 90  # generous: the 2 test cores are shared with other work


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    allow_loopback_ice()
    tmp = tmp_path_factory.mktemp("serve")
    srv = ProcessServer(tmp / "sessions.sqlite3", tmp / "serve.log").start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def face_frames(shared_data):
    return load_face_frames(shared_data / "d9.mp4")


async def next_snapshot(ws: Any, until: Any, timeout: float = TIMEOUT_S) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), max(0.1, deadline - time.monotonic())))
        if until(message):
            return message


def patient(session: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {session['patient_token']}"}


def clinician(session: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {session['clinician_token']}"}


def assert_close(a: Any, b: Any, path: str = "") -> None:
    if isinstance(a, dict):
        assert set(a) <= set(b), path
        for k in a:
            assert_close(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            assert_close(x, y, f"{path}[{i}]")
    elif isinstance(a, float) or isinstance(b, float):
        assert a is not None and b is not None and math.isclose(a, b, abs_tol=1e-3), (path, a, b)
    else:
        assert a == b, (path, a, b)


def test_patient_stream_reaches_clinicians_and_matches_the_stored_results(server, face_frames):
    session = create_session(server.url, "loopback")
    sid = session["session_id"]

    async def story() -> dict[str, Any]:
        async with websockets.connect(ws_url(server.url, session)) as ws:
            first = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT_S))
            assert first["type"] == "snapshot" and first["latest"] is None  # current state at once

            pc = await connect_patient(server.url, session, face_frames)
            async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
                r = await http.post(f"/api/s/{sid}/exercise", json={"action": "start", "exercise": "smile"}, headers=patient(session))
                assert r.status_code == 200 and r.json()["segment"]["exercise"] == "smile"

                live = await next_snapshot(ws, lambda m: m["health"]["keyframes"] >= 4)
                for side in ("left", "right"):
                    values = live["latest"][side]
                    assert len(values) == N_AUS and all(isinstance(v, (int, float)) and 0 <= v <= 5 for v in values)
                assert live["live"] and live["health"]["frames_received"] > 0
                # stream health says where the frame-to-dashboard latency goes, stage by stage
                stages = live["health"]["latency_stages_ms"]
                assert {"ingest", "keyframe_queue", "analyse", "publish_wait", "serialise"} <= set(stages)
                assert all(0 <= p50 <= p95 for p50, p95 in stages.values())
                assert sum(p50 for p50, _ in stages.values()) <= 10 * live["health"]["latency_ms_p95"]
                assert live["exercise"]["current"]["exercise"] == "smile"

                await http.post(f"/api/s/{sid}/exercise", json={"action": "stop"}, headers=patient(session))
                await http.post(f"/api/s/{sid}/hangup", headers=patient(session))
            await pc.close()
            return await next_snapshot(ws, lambda m: m["status"] == "ended" and not m["live"])

    final = asyncio.run(story())
    n = final["health"]["keyframes"]
    assert n >= 4

    report = httpx.get(f"{server.url}/api/s/{sid}/report.json", headers=clinician(session)).json()
    stored = Store(server.db)
    try:
        assert len(stored.series(sid).series) == n == report["n_keyframes"]
        saved = stored.statistics(sid)["session"]
    finally:
        stored.close()
    live_stats = final["statistics"]["session"]
    for key in ("n_keyframes", "active_mean", "delta_am", "regions", "cooccurrence_difference", "synkinesis"):
        assert_close(live_stats[key], report[key], key)
        assert_close(live_stats[key], saved[key], key)
    [segment] = final["statistics"]["segments"]
    [exercise] = report["exercises"]
    assert segment["exercise"] == exercise["exercise"] == "smile"
    assert_close(segment["statistics"]["regions"], exercise["symptoms"]["regions"])  # summary in snapshots
    assert segment["statistics"]["n_keyframes"] == exercise["symptoms"]["n_keyframes"] >= 1
    full = httpx.get(f"{server.url}/api/s/{sid}/statistics", params={"scope": "segment:0"}, headers=clinician(session)).json()
    assert_close(full["delta_am"], exercise["symptoms"]["delta_am"])
    assert_close(full["cooccurrence_difference"], exercise["symptoms"]["cooccurrence_difference"])


def test_dropped_patient_and_server_restart_lose_nothing_computed(server, face_frames):
    session = create_session(server.url, "dropped")
    sid = session["session_id"]

    async def stream_then_drop() -> dict[str, Any]:
        async with websockets.connect(ws_url(server.url, session)) as ws:
            pc = await connect_patient(server.url, session, face_frames)
            await next_snapshot(ws, lambda m: m["health"]["keyframes"] >= 2)
            await pc.close()  # the patient vanishes: no hangup call
            return await next_snapshot(ws, lambda m: m["status"] == "ended")

    ended = asyncio.run(stream_then_drop())
    n = ended["health"]["keyframes"]
    assert n >= 2

    server.stop()
    server.start()

    listed = httpx.get(f"{server.url}/api/sessions", headers={"Authorization": f"Bearer {ADMIN_KEY}"}).json()["sessions"]
    [record] = [s for s in listed if s["id"] == sid]
    assert record["status"] == "ended" and record["n_keyframes"] == n

    report = httpx.get(f"{server.url}/api/s/{sid}/report.json", headers=clinician(session))
    assert report.status_code == 200 and report.json()["n_keyframes"] == n
    html = httpx.get(f"{server.url}/api/s/{sid}/report.html", headers=clinician(session))
    assert html.status_code == 200 and "<html" in html.text
    csv = httpx.get(f"{server.url}/api/s/{sid}/au_series.csv", headers=clinician(session))
    assert len([line for line in csv.text.splitlines() if line and not line.startswith("#")]) == n + 1

    async def reopen() -> dict[str, Any]:
        async with websockets.connect(ws_url(server.url, session)) as ws:
            return json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT_S))

    reopened = asyncio.run(reopen())
    assert not reopened["live"] and len(reopened["series"]["seq"]) == min(n, 40)
    assert reopened["statistics"]["session"]["n_keyframes"] == n
