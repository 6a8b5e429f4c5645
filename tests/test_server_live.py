"""A real patient stream end to end: Python WebRTC patient -> serve (own process) -> WebSocket clinician,
SQLite on disk, and a restart of the server process."""

from __future__ import annotations

import asyncio
import json
import math
from functools import partial
from typing import Any

import httpx
import pytest
import test_server_support as support
import websockets
from test_server_support import (
    ADMIN_KEY,
    ProcessServer,
    allow_loopback_ice,
    connect_patient,
    create_session,
    load_face_frames,
    ws_url,
)

from stream.aus import N_AUS
from stream.server.store import Store

TIMEOUT_S = 90  # generous: the 2 test cores are shared with other work


@pytest.fixture(scope="module", params=["0", "2"], ids=["model-threads", "analysis-processes"])
def server(request, tmp_path_factory):
    """``serve`` analysing in its own model threads, then in two analysis worker processes: the same story."""
    allow_loopback_ice()
    tmp = tmp_path_factory.mktemp("serve")
    srv = ProcessServer(tmp / "sessions.sqlite3", tmp / "serve.log", ("--analysis-processes", request.param)).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def face_frames(shared_data):
    return load_face_frames(shared_data / "d9.mp4")


next_snapshot = partial(support.next_snapshot, timeout=TIMEOUT_S)


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
            assert first["statistics"]["session"]["findings"] is None  # "not measured yet", not zeros

            pc = await connect_patient(server.url, session, face_frames)
            async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
                r = await http.post(
                    f"/api/s/{sid}/exercise", json={"action": "start", "exercise": "smile"}, headers=patient(session)
                )
                assert r.status_code == 200 and r.json()["segment"]["exercise"] == "smile"

                # a snapshot from after the exercise started: on a busy machine the start's answer may
                # come after the fourth keyframe
                live = await next_snapshot(
                    ws, lambda m: m["health"]["keyframes"] >= 4 and m["exercise"]["current"] is not None
                )
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
                # findings follow the keyframes (throttled), for the session and the running exercise
                with_findings = await next_snapshot(
                    ws,
                    lambda m: (
                        m["statistics"]["session"]["findings"] is not None
                        # None until the exercise's first keyframe
                        and (m["statistics"]["segments"][0]["statistics"] or {}).get("findings") is not None
                    ),
                )
                for scope in (
                    with_findings["statistics"]["session"],
                    with_findings["statistics"]["segments"][0]["statistics"],
                ):
                    assert set(scope["findings"]["regions"]) == {"eyebrows", "eyes", "mouth"}
                    assert scope["findings"]["regions"]["eyes"]["n_keyframes"] <= scope["n_keyframes"]

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
    full = httpx.get(
        f"{server.url}/api/s/{sid}/statistics", params={"scope": "segment:0"}, headers=clinician(session)
    ).json()
    assert_close(full["delta_am"], exercise["symptoms"]["delta_am"])
    assert_close(full["cooccurrence_difference"], exercise["symptoms"]["cooccurrence_difference"])
    assert_findings_match_the_stored_series(server, sid, final, report)
    page = httpx.get(f"{server.url}/api/s/{sid}/report.html", headers=clinician(session)).text
    assert '<table class="evidence">' in page and "Findings per exercise" in page and "smile #1" in page
    verdicts = ("side weaker", "no clear difference", "did not move", "not enough keyframes")
    per_exercise = page.split('id="exercise-findings"')[1].split("</section>")[0]
    assert sum(per_exercise.count(w) for w in verdicts) == 3  # one verdict per region of the one exercise


def assert_findings_match_the_stored_series(
    server: Any, sid: str, final: dict[str, Any], report: dict[str, Any]
) -> None:
    """Dashboard and report state the verdicts ``series_findings`` gives on the stored series, with context."""
    import numpy as np

    from stream.analyze import series_findings
    from stream.config import AnalysisConfig
    from stream.symptoms.normal import load_normal_cooccurrence
    from stream.types import AUSeries

    store = Store(server.db)
    try:
        stored, segments, record = store.series(sid), store.segments(sid), store.session(sid)
    finally:
        store.close()
    series = stored.series
    assert series.closure is not None and series.movement is not None  # the flow estimator measures both
    config = AnalysisConfig()
    normal = load_normal_cooccurrence(config.normal_cooccurrence)
    exercise_of = {seg.segment_id: seg.exercise for seg in segments}
    context = np.array([exercise_of.get(int(i), "") for i in stored.segment_ids], dtype=object)
    expected = series_findings(series, dict(record.counts), config, normal, context=context).to_json()
    rows = stored.segment_ids == 0
    smile = AUSeries(
        series.frames[rows],
        series.time_s[rows],
        series.left[rows],
        series.right[rows],
        series.closure[rows],
        series.movement[rows],
    )
    expected_smile = series_findings(
        smile,
        {"frames": record.counts["frames"]},
        config,
        normal,
        context=np.array(["smile"] * int(rows.sum()), dtype=object),
    ).to_json()

    live = final["statistics"]["session"]["findings"]
    [segment] = final["statistics"]["segments"]
    [exercise] = report["exercises"]
    for got, want in (
        (live, expected),
        (report["findings"], expected),
        (segment["statistics"]["findings"], expected_smile),
        (exercise["findings"], expected_smile),
    ):
        for name in ("eyebrows", "eyes", "mouth"):
            region = got["regions"][name]
            assert {
                "status",
                "weaker_side",
                "n_keyframes",
                "n_moving",
                "weaker_percent",
                "weaker_percent_interval",
                "asymmetry_interval",
                "reason",
            } <= set(region)
            assert region["status"] in ("weaker_side", "no_clear_difference", "did_not_move", "not_enough_keyframes")
        assert_close(got["regions"], want["regions"], "regions")
        assert_close(got["synkinesis"], want["synkinesis"], "synkinesis")
    assert live["regions"]["eyes"]["n_keyframes"] == len(series)
    assert live["warnings"] == report["findings"]["warnings"]
    assert isinstance(report["synkinesis_history"], list)  # the paper's pairs as the live statistics saw them


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

    listed = httpx.get(f"{server.url}/api/sessions", headers={"Authorization": f"Bearer {ADMIN_KEY}"}).json()[
        "sessions"
    ]
    [record] = [s for s in listed if s["id"] == sid]
    assert record["status"] == "ended" and record["n_keyframes"] == n

    report = httpx.get(f"{server.url}/api/s/{sid}/report.json", headers=clinician(session))
    assert report.status_code == 200 and report.json()["n_keyframes"] == n
    html = httpx.get(f"{server.url}/api/s/{sid}/report.html", headers=clinician(session))
    assert html.status_code == 200 and "<html" in html.text
    csv = httpx.get(f"{server.url}/api/s/{sid}/au_series.csv", headers=clinician(session))
    assert len([line for line in csv.text.splitlines() if line and not line.startswith("#")]) == n + 1

    async def reopen() -> tuple[dict[str, Any], dict[str, Any]]:
        async with websockets.connect(ws_url(server.url, session)) as ws:
            first = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT_S))
            # the findings of a reopened session are recomputed off the event loop, then shown
            judged = (
                first
                if first["statistics"]["session"]["findings"]
                else await next_snapshot(ws, lambda m: m["statistics"]["session"]["findings"] is not None)
            )
            return first, judged

    reopened, judged = asyncio.run(reopen())
    assert not reopened["live"] and len(reopened["series"]["seq"]) == min(n, 40)
    assert reopened["statistics"]["session"]["n_keyframes"] == n
    assert_close(judged["statistics"]["session"]["findings"]["regions"], report.json()["findings"]["regions"])
