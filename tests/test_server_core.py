"""Server building blocks without the network: tokens, store, hub, exercise timeline, queues."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from stream.aus import N_AUS
from stream.server.executor import ANALYSIS, INGEST, PriorityExecutor
from stream.server.exercises import EXERCISES, PROTOCOL, ExerciseError, Timeline
from stream.server.hub import Hub
from stream.server.ingest import KeyframeQueue, LatestFrame
from stream.server.sessions import Gate, Role, new_token, token_hash
from stream.server.store import SegmentRecord, Store


class FakeConn:
    client = None  # starlette's Address of the peer; the failure limit counts per address

    def __init__(self, token: str | None = None, header: str | None = None) -> None:
        self.query_params = {"token": token} if token is not None else {}
        self.headers = {"authorization": header} if header is not None else {}


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "sessions.sqlite3")
    yield s
    s.close()


def test_tokens_are_stored_only_as_hashes_and_bound_to_session_and_role(store, tmp_path):
    patient, clinician = new_token(), new_token()
    assert len(patient) >= 43 and patient != clinician
    store.create_session("A", "", False, {})
    store.create_session("B", "", False, {})
    store.add_token("A", "patient", token_hash(patient))
    store.add_token("A", "clinician", token_hash(clinician))
    gate = Gate(store, admin_key="a-long-clinic-admin-key-0123456789")
    assert gate.allows("A", clinician, Role.CLINICIAN)
    assert gate.allows("A", patient, Role.PATIENT)
    assert not gate.allows("A", patient, Role.CLINICIAN)  # a patient token cannot view
    assert not gate.allows("B", clinician, Role.CLINICIAN)  # session A's token opens nothing of B
    assert not gate.allows("A", "x" * 1000, Role.CLINICIAN)
    assert gate.check(FakeConn(header=f"Bearer {clinician}"), "A", Role.PATIENT, Role.CLINICIAN) is Role.CLINICIAN
    raw = (tmp_path / "sessions.sqlite3").read_bytes() + (tmp_path / "sessions.sqlite3-wal").read_bytes()
    assert patient.encode() not in raw and clinician.encode() not in raw
    assert token_hash(patient).encode() in raw


def test_access_denials_distinguish_only_missing_from_wrong(store):
    from stream.server.sessions import AccessDenied

    gate = Gate(store, admin_key="a-long-clinic-admin-key-0123456789")
    with pytest.raises(AccessDenied) as missing:
        gate.check(FakeConn(), "nope", Role.CLINICIAN)
    with pytest.raises(AccessDenied) as wrong:
        gate.check(FakeConn(token="guess"), "nope", Role.CLINICIAN)
    with pytest.raises(AccessDenied) as wrong_admin:
        gate.check_admin(FakeConn(header="Bearer guess"))
    assert (missing.value.status, wrong.value.status, wrong_admin.value.status) == (401, 403, 403)
    gate.check_admin(FakeConn(header="Bearer a-long-clinic-admin-key-0123456789"))


def test_store_keeps_series_segments_statistics_and_findings_across_reopen(tmp_path):
    path = tmp_path / "s.sqlite3"
    store = Store(path)
    store.create_session("S", "label", False, {"active_threshold": 0.5})
    rng = np.random.default_rng(0)
    rows = [(rng.uniform(0, 5, N_AUS), rng.uniform(0, 5, N_AUS)) for _ in range(5)]
    store.start_segment("S", SegmentRecord(0, "smile", 1.0, None))
    for i, (left, right) in enumerate(rows):
        store.add_keyframe("S", i, 10 * i, 0.5 * i, 1000.0 + i, 0 if i >= 2 else None, 2, left, right)
    store.end_segment("S", 0, 9.0)
    state = {"n_keyframes": 5, "synkinesis": {"pairs": [{"matrix": "right-left|left", "row": "AU5", "col": "AU20", "value": 0.4}]}}
    store.save_statistics("S", "session", 2.0, state)
    store.save_statistics("S", "session", 3.0, {**state, "n_keyframes": 6})
    store.close()

    again = Store(path)
    stored = again.series("S")
    assert len(stored.series) == 5
    np.testing.assert_allclose(stored.series.left, np.stack([r[0] for r in rows]))
    np.testing.assert_allclose(stored.series.right, np.stack([r[1] for r in rows]))
    assert stored.segment_ids.tolist() == [-1, -1, 0, 0, 0]
    assert again.segments("S") == [SegmentRecord(0, "smile", 1.0, 9.0)]
    assert again.statistics("S")["session"]["n_keyframes"] == 6
    [finding] = again.findings("S")
    assert (finding["row"], finding["col"], finding["first_seen_s"], finding["last_seen_s"]) == ("AU5", "AU20", 2.0, 3.0)
    assert again.session("S").n_keyframes == 5
    again.close()


def test_hub_drops_oldest_for_a_full_client_and_new_clients_get_the_latest():
    async def story():
        hub = Hub(queue_size=2)
        slow = hub.subscribe()
        for i in range(5):
            hub.publish(f"m{i}")
        assert [slow.queue.get_nowait() for _ in range(2)] == ["m3", "m4"]
        assert slow.dropped == 3
        late = hub.subscribe()
        assert late.queue.get_nowait() == "m4"

    asyncio.run(story())


def test_latest_frame_slot_and_keyframe_queue_policies():
    async def story():
        slot: LatestFrame[int] = LatestFrame()
        for i in range(3):
            slot.put(i)
        assert await slot.newer_than(0) == (3, 2)  # two frames overwritten unseen
        slot.close()
        assert await slot.newer_than(3) == (3, None)

        queue: KeyframeQueue[int] = KeyframeQueue(2)
        for i in range(4):
            queue.put(i)
        queue.close()
        assert [await queue.get(), await queue.get(), await queue.get()] == [2, 3, None]
        assert queue.dropped == 2

    asyncio.run(story())


def test_model_pool_runs_a_waiting_keyframe_before_waiting_frames():
    """One model thread busy, frames of three sessions waiting: the keyframe that comes later runs next."""
    import threading

    pool = PriorityExecutor(1)
    try:
        release, order = threading.Event(), []
        busy = pool.at(INGEST).submit(release.wait, 10)
        frames = [pool.at(INGEST).submit(order.append, f"frame{i}") for i in range(3)]
        keyframe = pool.at(ANALYSIS).submit(order.append, "keyframe")
        failing = pool.at(ANALYSIS).submit(lambda: 1 / 0)
        release.set()
        for f in (busy, *frames, keyframe):
            f.result(timeout=10)
        assert order == ["keyframe", "frame0", "frame1", "frame2"]  # FIFO within a priority
        with pytest.raises(ZeroDivisionError):
            failing.result(timeout=10)

        async def through_the_loop():  # how the session loops use it
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(pool.at(ANALYSIS), sum, [1, 2])

        assert asyncio.run(through_the_loop()) == 3
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    with pytest.raises(RuntimeError):
        pool.submit(print)


def test_model_pool_shutdown_cancels_waiting_jobs():
    import threading

    pool = PriorityExecutor(1)
    started, release = threading.Event(), threading.Event()
    running = pool.submit(lambda: (started.set(), release.wait(10))[1])
    assert started.wait(10)
    waiting = pool.at(ANALYSIS).submit(print, "never")
    pool.shutdown(wait=False, cancel_futures=True)
    assert waiting.cancelled()
    release.set()
    pool.shutdown(wait=True)
    assert running.result(timeout=10) is True


def test_exercise_timeline_assigns_times_to_segments():
    assert [e.key for e in PROTOCOL][:2] == ["rest", "brow_raise"] and "lip_pucker" in EXERCISES
    timeline = Timeline()
    closed, smile = timeline.start("smile", 10.0)
    assert closed is None and timeline.current == smile
    closed, pucker = timeline.start("lip_pucker", 16.0)
    assert closed is not None and closed.end_s == 16.0
    timeline.stop(20.0)
    assert timeline.current is None
    assert timeline.segment_at(9.9) is None
    assert timeline.segment_at(10.0).exercise == "smile"
    assert timeline.segment_at(16.0).exercise == "lip_pucker"
    assert timeline.segment_at(20.0) is None
    with pytest.raises(ExerciseError):
        timeline.start("juggling", 21.0)
    with pytest.raises(ExerciseError):
        timeline.start("smile", 5.0)


def test_serve_flags_set_dashboard_rate_and_refuse_bad_values():
    import argparse

    from stream.server.main import add_serve_arguments, settings_from_args

    parser = argparse.ArgumentParser()
    add_serve_arguments(parser)
    key = ["--admin-key", "a-long-clinic-admin-key-0123456789"]
    assert settings_from_args(parser.parse_args(key)).dashboard_hz == 10.0
    assert settings_from_args(parser.parse_args([*key, "--dashboard-hz", "20"])).dashboard_hz == 20.0
    with pytest.raises(ValueError, match="dashboard rate"):
        settings_from_args(parser.parse_args([*key, "--dashboard-hz", "0"]))
