"""The live analysis session (stream/session) on real frames, in-process: no server, no network.

A real pipeline (MTCNN, flow estimator) on the first seconds of a real face video; the session's
running statistics, findings and snapshots are checked against the batch computations the offline
report uses, and a reopened session against the one it continues.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from test_server_support import load_face_frames

from stream.analyze import series_findings, series_symptoms
from stream.config import AnalysisConfig
from stream.pipeline import Pipeline
from stream.session.analysis import AnalysisSession, SessionHistory
from stream.session.exercises import ExerciseError, Segment
from stream.session.jsonsafe import clean
from stream.symptoms.normal import load_normal_cooccurrence
from stream.types import AUEstimate, AUSeries

FPS = 15.0  # frames taken from the clip per second of session time


@pytest.fixture(scope="module")
def frames(shared_data) -> list[np.ndarray]:
    """RGB frames (640x480) of the first ~5 s of a real face whose expression changes quickly."""
    return load_face_frames(shared_data / "d9.mp4", every=2, limit=75, size=(640, 480), pixel_format="rgb24")


@pytest.fixture(scope="module")
def detector() -> Any:
    from stream.face.mtcnn import MTCNNDetector

    return MTCNNDetector()


@pytest.fixture(scope="module")
def normal() -> np.ndarray:
    return load_normal_cooccurrence(None)


def new_session(detector: Any, normal: np.ndarray, history: SessionHistory | None = None) -> AnalysisSession:
    config = AnalysisConfig()
    session = AnalysisSession(config, normal, name="test", history=history, tail=10)
    session.attach(Pipeline(config, detector=detector, keep_series=False, normal=normal))
    return session


def stream_frames(
    session: AnalysisSession, frames: list[np.ndarray], t0: float = 0.0, exercise_at: int | None = None
) -> list[tuple[AUEstimate, Segment | None]]:
    """What the server's loops do, in order: ingest, estimate, (store), add."""
    added = []
    for i, image in enumerate(frames):
        t = t0 + i / FPS
        if i == exercise_at:
            session.start_exercise("smile", t)
        result = session.ingest(image, t)
        if result.keyframe is not None:
            segment = session.timeline.segment_at(result.keyframe.time_s)
            estimate = session.estimate(result.keyframe)
            session.add(estimate, segment, received_at=1000.0 + t)
            added.append((estimate, segment))
    return added


def history_of(session: AnalysisSession, added: list[tuple[AUEstimate, Segment | None]]) -> SessionHistory:
    """What the store holds after ``added``: the series with each row's segment, segments, frame counts."""
    series = AUSeries.from_estimates([e for e, _ in added])
    segment_ids = np.array([-1 if s is None else s.segment_id for _, s in added], dtype=int)
    return SessionHistory(
        series, segment_ids, 1000.0 + series.time_s, tuple(session.timeline.segments), session.pipeline_counts()
    )


def without_findings(statistics: Any) -> Any:
    return {k: v for k, v in statistics.items() if k != "findings"}


@pytest.fixture(scope="module")
def streamed(frames, detector, normal) -> tuple[AnalysisSession, list[tuple[AUEstimate, Segment | None]]]:
    session = new_session(detector, normal)
    added = stream_frames(session, frames, exercise_at=len(frames) // 2)
    session.update_findings(force=True)
    return session, added


def test_session_and_exercise_statistics_equal_the_batch_statistics_of_the_same_keyframes(streamed, normal):
    session, added = streamed
    in_segment = [e for e, s in added if s is not None]
    assert len(added) >= 6 and len(in_segment) >= 3  # the clip moves: keyframes on both sides of the start
    assert session.next_seq == len(added)
    config = AnalysisConfig()
    for scope, estimates in (("session", [e for e, _ in added]), ("segment:0", in_segment)):
        series = AUSeries.from_estimates(estimates)
        batch = series_symptoms(series.left, series.right, config, normal).to_json()
        live = session.statistics(scope)
        assert live is not None and live["n_keyframes"] == len(estimates)
        assert live["active_mean"] == clean(batch["active_mean"])
        assert live["cooccurrence_difference"] == clean(batch["cooccurrence_difference"])
        assert live["synkinesis"] == clean(batch["synkinesis"])


def test_findings_equal_those_of_the_offline_report_for_the_same_series(streamed, normal):
    session, added = streamed
    counts = session.pipeline_counts()
    assert counts["frames"] == 75 and counts["keyframes"] == len(added)
    series = AUSeries.from_estimates([e for e, _ in added])
    context = np.array(["" if s is None else s.exercise for _, s in added], dtype=object)
    expected = series_findings(series, dict(counts), AnalysisConfig(), normal, context=context).to_json()
    found = session.statistics("session")["findings"]
    assert found is not None and set(found["regions"]) == {"eyebrows", "eyes", "mouth"}
    assert found == clean(expected, significant=6)


def test_a_snapshot_shows_the_newest_keyframes_and_the_running_exercise_in_full(streamed):
    session, added = streamed
    snapshot = session.snapshot()
    doc = snapshot.to_json()
    estimate, _ = added[-1]
    assert doc["latest"]["seq"] == len(added) - 1 and doc["latest"]["frame_index"] == estimate.frame_index
    assert doc["latest"]["left"] == clean(estimate.left)  # the patient's left stays the left
    assert doc["series"]["seq"] == list(range(len(added) - 10, len(added)))  # the tail: last 10
    assert doc["estimator"]["name"] == "flow" and doc["estimator"]["is_proxy"] is True
    assert doc["exercise"]["current"]["exercise"] == "smile"
    (segment,) = doc["statistics"]["segments"]
    assert "cooccurrence_difference" in segment["statistics"]  # the running exercise: full statistics
    assert "cooccurrence" not in doc["statistics"]["session"]  # raw matrices never go to dashboards


def test_a_reopened_session_continues_with_the_statistics_it_had(streamed, frames, detector, normal):
    session, added = streamed
    reopened = new_session(detector, normal, history_of(session, added))
    assert reopened.next_seq == len(added)
    for scope in ("session", "segment:0"):
        assert without_findings(reopened.statistics(scope)) == without_findings(session.statistics(scope))
    assert reopened.pipeline_counts() == session.pipeline_counts()  # the counts carry over, and so
    reopened.update_findings(force=True)  # do the warnings judged on them
    assert reopened.statistics("session")["findings"] == session.statistics("session")["findings"]
    assert reopened.snapshot().to_json()["series"] == session.snapshot().to_json()["series"]
    # a second sitting: the same exercise's keyframes add to what was stored
    more = stream_frames(reopened, frames[:20], t0=100.0)
    assert reopened.statistics("session")["n_keyframes"] == len(added) + len(more)


def test_a_change_of_frame_size_and_the_rest_exercise_take_a_new_reference(frames, detector, normal):
    session = new_session(detector, normal)
    first = stream_frames(session, frames[:20])
    assert first and first[0][0].frame_index == 0
    assert session.pipeline_counts().get("rereferenced", 0) == 0
    small = [image[::2, ::2].copy() for image in frames[20:45]]  # the sender drops to 320x240
    later = stream_frames(session, small, t0=100.0)
    assert later, "keyframes of the smaller frames were analysed"
    assert session.pipeline_counts()["rereferenced"] == 1  # the next keyframe was the new reference
    session.start_exercise("rest", 200.0)
    stream_frames(session, frames[45:], t0=200.0)
    assert session.pipeline_counts()["rereferenced"] == 2
    assert session.statistics("session")["n_keyframes"] == session.next_seq


def test_exercise_and_pipeline_misuse_is_refused_with_what_to_do(normal):
    session = AnalysisSession(AnalysisConfig(), normal, name="S")
    with pytest.raises(ExerciseError, match="unknown exercise 'jump'"):
        session.start_exercise("jump", 0.0)
    with pytest.raises(RuntimeError, match="call attach"):
        session.ingest(np.zeros((48, 64, 3), dtype=np.uint8), 0.0)
    assert session.snapshot().to_json()["estimator"] == {}  # never had a pipeline: no estimator to name


def test_findings_schedule_keeps_a_scope_pending_for_keyframes_that_arrive_during_a_computation():
    from stream.session.findings import COST_FACTOR, MIN_INTERVAL_S, FindingsSchedule

    schedule = FindingsSchedule()
    assert schedule.due(0.0) == []  # nothing analysed: nothing to judge
    schedule.changed("session")
    schedule.changed("segment:0")
    assert schedule.due(0.0) == [("segment:0", 1), ("session", 1)]
    schedule.changed("session")  # a keyframe arrives while the computation from version 1 runs
    schedule.done("session", 1, started=0.0, finished=0.5)
    # pending again, but not before max(1 s, 5 x 0.5 s) after the last start...
    assert ("session", 2) not in schedule.due(COST_FACTOR * 0.5 - 0.01)
    assert ("session", 2) in schedule.due(COST_FACTOR * 0.5)
    # ... unless forced (the end of a stream); an ended exercise is due at once
    assert ("session", 2) in schedule.due(0.1, force=True)
    schedule.done("segment:0", 1, started=0.0, finished=0.01)
    schedule.changed("segment:0")
    assert ("segment:0", 2) not in schedule.due(MIN_INTERVAL_S / 2)
    assert ("segment:0", 2) in schedule.due(MIN_INTERVAL_S / 2, closed={"segment:0"})
    schedule.done("segment:0", 2, started=1.0, finished=1.01)
    assert all(scope != "segment:0" for scope, _ in schedule.due(100.0))  # up to date: not due again


def test_the_packed_series_selects_the_keyframes_as_they_were_appended(streamed, normal):
    """``LiveSeries`` keeps rows in arrays that double: what it selects is what ``AUSeries`` builds
    from the same estimates, bit for bit, and so are the findings computed from it."""
    import dataclasses

    from stream.session.findings import BYTES_PER_KEYFRAME, LiveSeries, findings_json

    _, added = streamed
    live = LiveSeries(capacity=1)  # doubles at 1, 2, 4, 8, ... rows
    for estimate, segment in added:
        live.append(estimate, None if segment is None else segment.segment_id, "" if segment is None else "smile")
    assert len(live) == len(added) and live.nbytes <= 2 * len(added) * BYTES_PER_KEYFRAME
    in_segment = [(e, s) for e, s in added if s is not None]
    for segment_id, rows in ((None, added), (0, in_segment), (5, [])):
        series, context = live.select(segment_id)
        expected = AUSeries.from_estimates([e for e, _ in rows])
        assert expected.closure is not None or not rows  # the flow estimator measures eye closure and movement
        for name in ("frames", "time_s", "left", "right", "closure", "movement"):
            got, want = getattr(series, name), getattr(expected, name)
            assert (got is None) == (want is None), name
            if want is not None:
                assert got.dtype == want.dtype and np.array_equal(got, want), name
        assert context.tolist() == ["" if s is None else "smile" for _, s in rows]
    series, context = live.select()
    counts = {"frames": 75, "keyframes": len(added)}
    reference = AUSeries.from_estimates([e for e, _ in added])
    assert findings_json(series, context, counts, AnalysisConfig(), normal) == findings_json(
        reference, context, counts, AnalysisConfig(), normal
    )
    # a keyframe without eye closure or movement: selections that include it have neither
    first, _ = added[0]
    live.append(dataclasses.replace(first, closure=None, movement=None), 9, "snarl")
    assert live.select()[0].closure is None and live.select()[0].movement is None
    assert live.select(9)[0].closure is None and live.select(9)[1].tolist() == ["snarl"]
    assert live.select(0)[0].closure is not None  # the other segment's rows all have it


def test_findings_of_a_long_scope_wait_until_it_has_grown_by_a_fraction():
    from stream.session.findings import GROWTH_FRACTION, FindingsSchedule

    schedule = FindingsSchedule()
    schedule.changed("session", 1000)  # a reopened session's stored keyframes
    assert schedule.due(0.0) == [("session", 1000)]
    schedule.done("session", 1000, started=0.0, finished=0.01)
    needed = int(GROWTH_FRACTION * 1000)  # 10 more keyframes
    for _ in range(needed - 1):
        schedule.changed("session")
    assert schedule.due(100.0) == []  # long past the interval, but 9 keyframes do not change 1000's verdicts
    assert schedule.due(100.0, force=True) == [("session", 1000 + needed - 1)]  # the end of a stream: at once
    assert schedule.due(100.0, closed={"session"}) == [("session", 1000 + needed - 1)]
    schedule.changed("session")
    assert schedule.due(0.5) == []  # grown enough, but within a second of the last start
    assert schedule.due(100.0) == [("session", 1000 + needed)]
