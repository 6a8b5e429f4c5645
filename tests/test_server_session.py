"""A live session's loops in-process: real frames in the latest-frame slot, real pipeline, real SQLite.

No signalling and no network: the frames that the WebRTC pump would put into the session's slot are
put there by the test (real decoded frames of a face video, one at a time as the models take them),
with a real, unconnected aiortc peer for the loops to close at the end. What must hold is what the
dashboards and the stored record show: every frame counted, every keyframe analysed stored once and
shown, the exercise closed at the last frame, final statistics and findings stored and equal to the
downloaded report's, and a reopened session showing the same figures.
"""

from __future__ import annotations

import asyncio
import json
import pickle
import time
from collections.abc import Callable
from typing import Any

import pytest
from test_server_support import load_face_frames

from stream.server.executor import PriorityExecutor
from stream.server.ingest import LatestFrame, PatientPeer, ReceivedFrame
from stream.server.latency import LATENCY_STAGES
from stream.server.models import ModelPool
from stream.server.registry import SessionRegistry
from stream.server.session_report import session_report
from stream.server.settings import ServerSettings
from stream.server.store import Store
from stream.session.jsonsafe import clean

TIMEOUT_S = 120  # generous: the 2 test cores are shared with other work


@pytest.fixture(scope="module")
def face_frames(shared_data) -> list[Any]:
    import av

    return [
        av.VideoFrame.from_ndarray(f, format="yuv420p")
        for f in load_face_frames(shared_data / "d9.mp4", every=2, limit=60, size=(640, 480))
    ]


async def until(condition: Callable[[], bool], what: str) -> None:
    """Wait for ``condition`` (checked every 10 ms; the wait has no bearing on what is asserted)."""
    deadline = time.monotonic() + TIMEOUT_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def test_a_stream_is_counted_stored_shown_and_ended_and_a_reopened_session_shows_the_same(tmp_path, face_frames):
    settings = ServerSettings(db_path=str(tmp_path / "s.sqlite3"))
    store = Store(settings.db_path)
    store.create_session("S", "in-process", settings.mirrored, settings.analysis.as_dict())
    executor = PriorityExecutor(2)
    registry = SessionRegistry(settings, store, ModelPool(settings, executor))

    async def stream() -> tuple[dict[str, Any], float | None]:
        async with registry.use("S") as session:
            await session.prepare()
            slot: LatestFrame[ReceivedFrame] = LatestFrame()
            session.start_stream(PatientPeer((), on_video=lambda _: None, on_closed=lambda: None), slot)
            for i, frame in enumerate(face_frames):
                if i == len(face_frames) // 2:
                    session.start_exercise("smile")
                slot.put(ReceivedFrame(frame, time.time(), time.perf_counter()))
                await until(lambda n=i + 1: session.health.frames_analysed == n, f"frame {i} to be analysed")
            slot.close()  # the patient's track ends
            await until(lambda: session.idle, "the stream to end")
            await until(lambda: json.loads(session.hub.latest or "{}")["status"] == "ended", "the final snapshot")
            snapshot = session.snapshot()  # plain data: it can cross a process boundary as it is
            assert pickle.loads(pickle.dumps(snapshot)).to_json() == snapshot.to_json()
            return json.loads(session.hub.latest or "{}"), session.last_frame_s

    async def reopen() -> dict[str, Any]:
        async with registry.use("S") as session:
            assert session.analysis.analyser is None  # a fresh session, from the store
            await until(
                lambda: json.loads(session.hub.latest or "{}")["statistics"]["session"]["findings"] is not None,
                "the reopened session's findings",
            )
            return json.loads(session.hub.latest or "{}")

    try:
        final, last_frame_s = asyncio.run(stream())
        assert "S" not in registry  # nobody uses it, nothing streams: out of memory, data stored
        reopened = asyncio.run(reopen())
        stored, record, segments = store.series("S"), store.session("S"), store.segments("S")
        report, _ = session_report(store, "S")
    finally:
        executor.shutdown()
        store.close()

    n = len(face_frames)
    assert final["status"] == "ended" and record is not None and record.status == "ended"
    assert final["alert"] is None
    health = final["health"]
    assert health["frames_received"] == health["frames_analysed"] == n and health["frames_stale_dropped"] == 0
    keyframes = len(stored.series)
    assert 4 <= keyframes < n and health["keyframes"] == keyframes  # each keyframe analysed is stored once
    assert list(stored.series.frames) == sorted(set(stored.series.frames))
    assert record.counts["frames"] == n and record.counts["keyframes"] == keyframes
    assert set(health["latency_stages_ms"]) == set(LATENCY_STAGES)
    assert all(p50 >= 0 for p50, _ in health["latency_stages_ms"].values())
    # The exercise closes at the last frame received; the keyframes after its start are its own.
    [segment] = segments
    assert segment.exercise == "smile" and segment.end_s == last_frame_s
    in_segment = int((stored.segment_ids == 0).sum())
    assert 1 <= in_segment < keyframes
    session_stats = final["statistics"]["session"]
    [segment_view] = final["statistics"]["segments"]
    assert session_stats["n_keyframes"] == keyframes and segment_view["statistics"]["n_keyframes"] == in_segment
    assert final["latest"]["seq"] == keyframes - 1
    # The final findings are stored, and the downloaded report states the same ones.
    assert session_stats["findings"] == clean(report["findings"], significant=6)
    assert segment_view["statistics"]["findings"] == clean(report["exercises"][0]["findings"], significant=6)
    # Reopened from the store: the same statistics, findings and series.
    for key in ("statistics", "series", "latest", "exercise", "estimator"):
        assert reopened[key] == final[key], key
    assert reopened["health"]["keyframes"] == keyframes and reopened["health"]["frames_received"] == n
