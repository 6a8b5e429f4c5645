"""Server building blocks without the network: tokens, store, hub, exercise timeline, queues."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from stream.aus import N_AUS
from stream.server.executor import ANALYSIS, INGEST, PriorityExecutor
from stream.server.hub import Hub
from stream.server.ingest import KeyframeQueue, LatestFrame
from stream.server.sessions import Gate, Role, new_token, token_hash
from stream.server.store import Store
from stream.session.exercises import EXERCISES, PROTOCOL, ExerciseError, Segment, Timeline


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
    store.start_segment("S", Segment(0, "smile", 1.0, None))
    for i, (left, right) in enumerate(rows):
        store.add_keyframe("S", i, 10 * i, 0.5 * i, 1000.0 + i, 0 if i >= 2 else None, 2, left, right)
    store.end_segment("S", 0, 9.0)
    state = {
        "n_keyframes": 5,
        "synkinesis": {"pairs": [{"matrix": "right-left|left", "row": "AU5", "col": "AU20", "value": 0.4}]},
    }
    store.save_statistics("S", "session", 2.0, state)
    store.save_statistics("S", "session", 3.0, {**state, "n_keyframes": 6})
    store.close()

    again = Store(path)
    stored = again.series("S")
    assert len(stored.series) == 5
    np.testing.assert_allclose(stored.series.left, np.stack([r[0] for r in rows]))
    np.testing.assert_allclose(stored.series.right, np.stack([r[1] for r in rows]))
    assert stored.segment_ids.tolist() == [-1, -1, 0, 0, 0]
    assert again.segments("S") == [Segment(0, "smile", 1.0, 9.0)]
    assert again.statistics("S")["session"]["n_keyframes"] == 6
    [finding] = again.findings("S")
    assert (finding["row"], finding["col"], finding["first_seen_s"], finding["last_seen_s"]) == (
        "AU5",
        "AU20",
        2.0,
        3.0,
    )
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


_OLD_KEYFRAMES = """
CREATE TABLE sessions (id TEXT PRIMARY KEY, label TEXT NOT NULL DEFAULT '', created_at REAL NOT NULL,
    status TEXT NOT NULL, ended_at REAL, mirrored INTEGER NOT NULL DEFAULT 0, config_json TEXT NOT NULL DEFAULT '{}',
    estimator_json TEXT NOT NULL DEFAULT '{}', counts_json TEXT NOT NULL DEFAULT '{}');
CREATE TABLE keyframes (session_id TEXT NOT NULL REFERENCES sessions(id), seq INTEGER NOT NULL,
    frame_index INTEGER NOT NULL, time_s REAL NOT NULL, received_at REAL NOT NULL, segment_id INTEGER,
    n_helpers INTEGER NOT NULL, %s, PRIMARY KEY (session_id, seq));
"""


def test_a_database_of_the_old_schema_opens_and_gains_eye_closure_and_movement_columns(tmp_path):
    """Databases written before eye closure and region movement were stored keep working."""
    import sqlite3

    from stream.aus import AU_NAMES

    path = tmp_path / "old.sqlite3"
    au_columns = [f"{side}_{au}" for side in ("left", "right") for au in AU_NAMES]
    with sqlite3.connect(path) as db:
        db.executescript(_OLD_KEYFRAMES % ", ".join(f"{c} REAL NOT NULL" for c in au_columns))
        db.execute("INSERT INTO sessions (id, created_at, status) VALUES ('OLD', 0, 'ended')")
        db.execute(
            f"INSERT INTO keyframes VALUES ('OLD', 0, 3, 0.1, 100.0, NULL, 0, {', '.join('1.5' for _ in au_columns)})"
        )

    store = Store(path)
    try:
        columns = {row[1] for row in store._read("PRAGMA table_info(keyframes)")}
        assert {"left_AU43", "right_AU43", "left_move_eyebrows", "right_move_mouth"} <= columns
        old = store.series("OLD").series
        assert len(old) == 1 and old.left[0, 0] == 1.5 and old.closure is None and old.movement is None

        store.create_session("NEW", "", False, {})
        movement = np.arange(6, dtype=float).reshape(2, 3) / 2
        for i in range(3):
            store.add_keyframe(
                "NEW",
                i,
                i,
                0.1 * i,
                100.0 + i,
                None,
                0,
                np.full(N_AUS, 1.0),
                np.full(N_AUS, 2.0),
                closure=np.array([0.5 * i, 4.0]),
                movement=movement + i,
            )
        store.add_keyframe(
            "OLD",
            1,
            4,
            0.2,
            101.0,
            None,
            0,
            np.zeros(N_AUS),
            np.zeros(N_AUS),
            closure=np.array([1.0, 2.0]),
            movement=movement,
        )
    finally:
        store.close()

    again = Store(path)  # a second open migrates nothing and loses nothing
    try:
        new = again.series("NEW").series
        np.testing.assert_array_equal(new.closure, [[0.0, 4.0], [0.5, 4.0], [1.0, 4.0]])
        np.testing.assert_array_equal(new.movement[2], movement + 2)  # (left, right) x (brows, eyes, mouth)
        mixed = again.series("OLD").series
        assert len(mixed) == 2 and mixed.closure is None and mixed.movement is None  # not every row measured
    finally:
        again.close()


def test_stored_report_carries_findings_of_the_session_and_of_each_exercise(store):
    """report["findings"] is the evidence layer on the stored series; the paper's pairs move to synkinesis_history."""
    from stream.analyze import series_findings
    from stream.config import AnalysisConfig
    from stream.report.html import render_report_html
    from stream.server.session_report import session_report
    from stream.symptoms.normal import load_normal_cooccurrence

    rng = np.random.default_rng(1)
    store.create_session("S", "", False, {})
    store.start_segment("S", Segment(0, "smile", 0.0, 6.0))
    store.start_segment("S", Segment(1, "gentle_eye_closure", 6.0, 12.0))
    for i in range(60):
        t = 0.2 * i
        seg = 0 if t < 6 else 1
        wave = 2.5 + 2.0 * np.sin(i / 3.0)  # the right side moves fully, the left at a third
        right = np.clip(rng.normal(wave, 0.2, N_AUS), 0, 5)
        left = np.clip(right / 3 + rng.normal(0, 0.05, N_AUS), 0, 5)
        movement = np.stack([left[:3], right[:3]])
        # the smile moves the mouth with the eyes still, the eye closure the eyes with the mouth still
        movement[:, 1 if seg == 0 else 2] = 0.0
        store.add_keyframe(
            "S", i, 2 * i, t, 100.0 + t, seg, 0, left, right, closure=np.array([left[4], right[4]]), movement=movement
        )
    store.set_counts("S", {"frames": 120, "frames_without_face": 0})
    store.save_statistics(
        "S",
        "session",
        1.0,
        {
            "n_keyframes": 60,
            "synkinesis": {"pairs": [{"matrix": "right-left|left", "row": "AU5", "col": "AU20", "value": 0.4}]},
        },
    )

    report, series = session_report(store, "S")

    stored = store.series("S")
    config = AnalysisConfig()
    normal = load_normal_cooccurrence(config.normal_cooccurrence)
    context = np.array(["smile" if s == 0 else "gentle_eye_closure" for s in stored.segment_ids], dtype=object)
    expected = series_findings(stored.series, dict(report["counts"]), config, normal, context=context).to_json()
    assert report["findings"]["regions"] == expected["regions"]
    assert report["findings"]["synkinesis"] == expected["synkinesis"]
    assert {r["status"] for r in report["findings"]["regions"].values()} <= {
        "weaker_side",
        "no_clear_difference",
        "did_not_move",
    }
    assert report["findings"]["regions"]["mouth"]["weaker_side"] == "left"
    [synkinesis] = report["synkinesis_history"]
    assert (synkinesis["row"], synkinesis["col"]) == ("AU5", "AU20")
    smile, eyes = report["exercises"]
    rows = stored.segment_ids == 0
    from stream.types import AUSeries

    only_smile = AUSeries(
        stored.series.frames[rows],
        stored.series.time_s[rows],
        stored.series.left[rows],
        stored.series.right[rows],
        stored.series.closure[rows],
        stored.series.movement[rows],
    )
    assert (
        smile["findings"]["regions"]
        == series_findings(
            only_smile, {"frames": 120}, config, normal, context=np.array(["smile"] * int(rows.sum()))
        ).to_json()["regions"]
    )
    assert eyes["findings"]["regions"]["eyes"]["n_keyframes"] == 30

    page = render_report_html(report, series)
    assert "Findings per exercise" in page and "gentle eye closure #2" in page
    assert "left side weaker" in page


def test_an_expired_clinician_token_is_refused_like_a_wrong_one(store):
    import time

    now = [time.time()]
    store.create_session("A", "", False, {})
    clinician, patient = new_token(), new_token()
    store.add_token("A", "clinician", token_hash(clinician))
    for _ in range(5):  # more links of the same session: the comparison walks them all
        store.add_token("A", "clinician", token_hash(new_token()))
    store.add_token("A", "patient", token_hash(patient))
    gate = Gate(store, admin_key="a-long-clinic-admin-key-0123456789", link_ttl_s=60.0, clock=lambda: now[0])
    assert gate.allows("A", clinician, Role.CLINICIAN)
    assert gate.expires_at("A", clinician) == pytest.approx(now[0] + 60.0, abs=5.0)
    now[0] += 61.0
    assert not gate.allows("A", clinician, Role.CLINICIAN)
    assert gate.allows("A", patient, Role.PATIENT)  # patient links end with their session, not by age
    assert Gate(store, admin_key="a-long-clinic-admin-key-0123456789").allows("A", clinician, Role.CLINICIAN)
