"""One patient's analysis session: the pipeline, the statistics of every scope, findings and snapshots.

A *scope* is the whole session (``"session"``) or one exercise segment (``"segment:<id>"``, see
``Segment.scope``); each has its own running statistics (``SymptomAccumulator``) and its own
findings. A session continues where it stopped: built from its ``SessionHistory`` (the series and
segments stored by earlier runs), it replays the stored keyframes into the accumulators.

The server schedules the calls; this class only computes. Per frame ``ingest`` (detect or track,
keyframe filter, align); per keyframe ``estimate`` (AU values), then, once the keyframe is stored,
``add`` (series, statistics of its scopes); now and then ``update_findings``; for the dashboards
``snapshot``. No asyncio, network or disk here: the caller loads the normal co-occurrence matrix and
builds the pipeline, and persists what ``add`` and ``scope_states`` return.

Threads: ``ingest`` runs in one thread at a time, ``estimate``/``add`` in one (possibly another)
thread at a time, ``update_findings`` in any; ``snapshot``, ``statistics`` and the exercise calls
may come from a third. The scope tables are guarded by a lock; the rest is appended atomically.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from stream.config import AnalysisConfig
from stream.pipeline import FrameResult, Pipeline
from stream.session.analyser import FrameAnalyser, LocalAnalyser
from stream.session.exercises import Segment, Timeline
from stream.session.findings import FindingsSchedule, LiveSeries, findings_json, segment_counts
from stream.session.jsonsafe import JSONObject, clean_object
from stream.session.snapshot import (
    AnalysisSnapshot,
    EstimatorInfo,
    KeyframeRow,
    SegmentStatistics,
    statistics_summary,
)
from stream.symptoms.statistics import SymptomAccumulator, SymptomState
from stream.types import AUEstimate, AUSeries, Frame, KeyframeStamp

log = logging.getLogger(__name__)

SESSION = "session"  # the scope of the whole session
# Pipeline counts carried over from earlier runs of a session (the rest are counted afresh per run).
PIPELINE_COUNTS = ("frames", "keyframes", "frames_without_face", "frames_with_several_faces")


@dataclass(frozen=True)
class SessionHistory:
    """What earlier runs of a session stored: its keyframe series, exercise segments and counts."""

    series: AUSeries
    segment_ids: np.ndarray  # (n,) int, each keyframe's segment, -1 outside any exercise
    received_at: np.ndarray  # (n,) wall-clock seconds each source frame reached the server
    segments: tuple[Segment, ...] = ()
    counts: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def empty(cls) -> SessionHistory:
        return cls(AUSeries.from_estimates([]), np.zeros(0, dtype=int), np.zeros(0))


@dataclass(frozen=True, eq=False)
class ScopeState:
    """The statistics of one scope after a keyframe (what the caller may persist)."""

    scope: str
    state: SymptomState


class AnalysisSession:
    def __init__(
        self,
        config: AnalysisConfig,
        normal: np.ndarray,
        *,
        name: str = "",
        mirrored: bool = False,
        history: SessionHistory | None = None,
        estimator: EstimatorInfo | None = None,
        tail: int = 40,
    ) -> None:
        """``name`` labels log lines; ``tail``: how many recent keyframes a snapshot carries."""
        history = history or SessionHistory.empty()
        self.config = config
        self.normal = normal
        self.name = name
        self.mirrored = mirrored
        self.estimator = estimator
        self.analyser: FrameAnalyser | None = None
        self.timeline = Timeline(list(history.segments))
        self._counts_before = {k: int(history.counts[k]) for k in PIPELINE_COUNTS if k in history.counts}
        series = history.series
        self._seq = len(series)  # keyframes stored: the next keyframe's sequence number
        self._frame_index = int(series.frames.max()) + 1 if len(series) else 0
        self._frame_shape: tuple[int, ...] | None = None
        self._retrack = False
        self._tail: deque[KeyframeRow] = deque(maxlen=tail)
        for i in range(max(0, len(series) - tail), len(series)):
            self._tail.append(
                KeyframeRow.of(
                    i, series.frames[i], series.time_s[i], history.received_at[i], series.left[i], series.right[i]
                )
            )
        self._accumulators: dict[str, SymptomAccumulator] = {}
        self._statistics: dict[str, JSONObject] = {}  # scope -> dashboard statistics, with "findings"
        self._findings: dict[str, JSONObject] = {}  # scope -> findings; absent: not computed yet
        self._merge_lock = threading.Lock()  # statistics and findings of a scope are set from two threads
        self._findings_lock = threading.Lock()  # one findings computation at a time
        self._findings_due = FindingsSchedule()
        self._findings_failed = False
        # The findings need a scope's whole series at once: kept here, appended per keyframe.
        self._series = LiveSeries.from_series(
            series, history.segment_ids, {s.segment_id: s.exercise for s in self.timeline.segments}
        )
        self._replay(history)

    def _replay(self, history: SessionHistory) -> None:
        """Rebuild every scope's statistics from the stored series."""
        series = history.series
        scopes: list[tuple[str, np.ndarray | slice]] = [(SESSION, slice(None))]
        scopes += [(seg.scope, history.segment_ids == seg.segment_id) for seg in self.timeline.segments]
        for scope, rows in scopes:
            acc = self._new_accumulator()
            left = series.left[rows]
            if len(left):
                acc.update_many(left, series.right[rows])
                self._findings_due.changed(scope, len(left))
            self._accumulators[scope] = acc
            self._set_statistics(scope, self._state(acc))

    def _new_accumulator(self) -> SymptomAccumulator:
        return SymptomAccumulator(active_threshold=self.config.active_threshold)

    def _state(self, accumulator: SymptomAccumulator) -> SymptomState:
        return accumulator.snapshot(self.normal, **self.config.symptom_thresholds())

    def _set_statistics(self, scope: str, state: SymptomState) -> None:
        """A scope's new statistics, with its latest findings (None: no findings computed yet).

        What a dashboard draws: everything but the four raw co-occurrence matrices, JSON-safe and
        rounded here, once per keyframe in the model thread, not at every snapshot.
        """
        stats = state.to_json()
        stats.pop("cooccurrence", None)
        stats["mask"] = np.asarray(state.mask, dtype=int).tolist()
        cleaned = clean_object(stats)
        with self._merge_lock:
            self._statistics[scope] = {**cleaned, "findings": self._findings.get(scope)}

    # -- the pipeline ----------------------------------------------------------------------------
    def attach(self, analyser: FrameAnalyser | Pipeline) -> EstimatorInfo:
        """Analyse with ``analyser`` from now on (a ``Pipeline`` runs in this process); built by the
        caller: loading weights is slow."""
        self.analyser = LocalAnalyser(analyser) if isinstance(analyser, Pipeline) else analyser
        self.estimator = self.analyser.estimator
        return self.estimator

    def _attached(self) -> FrameAnalyser:
        if self.analyser is None:
            raise RuntimeError(f"session {self.name}: no pipeline attached; call attach() before analysing frames")
        return self.analyser

    def ingest(self, image: np.ndarray, time_s: float) -> FrameResult[KeyframeStamp]:
        """One received frame (H x W x 3 RGB, ``time_s`` on the session clock) through detection and the
        keyframe filter. A change of frame size restarts tracking, keyframes and the AU reference."""
        analyser = self._attached()
        frame = Frame(self._frame_index, time_s, image)
        self._frame_index += 1
        if self._frame_shape is not None and image.shape != self._frame_shape:
            log.info(
                "session %s: frame size changed from %s to %s; tracking, keyframes and AU reference restart",
                self.name,
                "x".join(map(str, self._frame_shape[1::-1])),
                "x".join(map(str, image.shape[1::-1])),
            )
            analyser.restart_tracking()
        elif self._retrack:
            analyser.retrack()
        self._retrack = False
        self._frame_shape = image.shape
        return analyser.ingest(frame)

    def frames_skipped(self) -> None:
        """Frames went unanalysed (the caller dropped them): the next frame finds the face afresh."""
        self._retrack = True

    def rereference(self) -> None:
        """The next frame that faces the camera becomes the neutral AU reference (docs/au_flow.md, step 1)."""
        if self.analyser is not None:
            self.analyser.rereference()

    def estimate(self, keyframe: KeyframeStamp) -> AUEstimate:
        """AU intensities of one keyframe; nothing is added to the statistics until ``add``."""
        return self._attached().estimate(keyframe)

    # -- keyframes and scopes --------------------------------------------------------------------
    @property
    def next_seq(self) -> int:
        """Sequence number of the next keyframe ``add`` takes (= keyframes added over every run)."""
        return self._seq

    def add(self, estimate: AUEstimate, segment: Segment | None, received_at: float) -> list[ScopeState]:
        """A keyframe the caller has stored: into the series and the statistics of its scopes.

        Returns the new statistics of the scopes it changed (the session, and its segment if any).
        """
        seq = self._seq
        self._seq += 1
        self._series.append(
            estimate,
            segment.segment_id if segment is not None else None,
            segment.exercise if segment is not None else "",
        )
        self._tail.append(
            KeyframeRow.of(seq, estimate.frame_index, estimate.time_s, received_at, estimate.left, estimate.right)
        )
        scopes = [SESSION] if segment is None else [SESSION, segment.scope]
        states = []
        for scope in scopes:
            acc = self._accumulators.setdefault(scope, self._new_accumulator())
            acc.update(estimate.left, estimate.right)
            self._findings_due.changed(scope)  # computed after this keyframe is shown: ``update_findings``
            states.append(ScopeState(scope, self._state(acc)))
        for s in states:
            self._set_statistics(s.scope, s.state)
        return states

    def scope_states(self) -> list[ScopeState]:
        """The statistics of every scope as they are now (the session's first)."""
        return [ScopeState(scope, self._state(acc)) for scope, acc in list(self._accumulators.items())]

    def stored_statistics(self, scope_state: ScopeState) -> dict[str, object]:
        """What the store keeps of a scope: its full statistics and its latest findings."""
        return {**scope_state.state.to_json(), "findings": self._findings.get(scope_state.scope)}

    def statistics(self, scope: str) -> JSONObject | None:
        """Dashboard statistics of ``session`` or ``segment:<id>``, matrices included."""
        return self._statistics.get(scope)

    @property
    def latest_time_s(self) -> float:
        """Session time of the newest keyframe (0 before any)."""
        return self._tail[-1].time_s if self._tail else 0.0

    def pipeline_counts(self) -> dict[str, int]:
        """Frames and keyframes counted by the pipeline, over every run of the session."""
        counts = dict(self._counts_before)
        if self.analyser is not None:
            for key, value in self.analyser.counts().items():
                counts[key] = counts.get(key, 0) + value
        return counts

    # -- exercises -------------------------------------------------------------------------------
    def start_exercise(self, key: str, time_s: float) -> tuple[Segment | None, Segment]:
        """Begin exercise ``key`` (closing a running one); returns (the segment closed or None, the new one).

        The rest exercise is the protocol's neutral face: the AU reference is taken from it.
        Raises ``ExerciseError`` for a key outside the protocol or a time before the last segment.
        """
        closed, segment = self.timeline.start(key, time_s)
        if key == "rest":
            self.rereference()
        acc = self._new_accumulator()
        self._accumulators[segment.scope] = acc
        self._set_statistics(segment.scope, self._state(acc))
        return closed, segment

    def stop_exercise(self, time_s: float) -> Segment | None:
        """End the running exercise at ``time_s``; None when none was running."""
        return self.timeline.stop(time_s)

    # -- findings --------------------------------------------------------------------------------
    def _ended_scopes(self) -> set[str]:
        current = self.timeline.current
        return {seg.scope for seg in self.timeline.segments if current is None or seg.segment_id != current.segment_id}

    def findings_due(self) -> bool:
        """Whether some scope's findings may be recomputed now (``update_findings`` would do work)."""
        return bool(self._findings_due.due(time.monotonic(), closed=self._ended_scopes()))

    def update_findings(self, force: bool = False) -> bool:
        """Recompute the findings of the scopes that are due; True if any changed (see ``session/findings.py``).

        An exercise that has ended gets its findings at once; ``force`` (end of a stream, a reopened
        session) computes every scope that has keyframes its findings do not include. A failure is
        logged once and leaves the previous findings: the AU values and statistics go on.
        """
        changed = False
        with self._findings_lock:
            counts: dict[str, object] | None = None
            for scope, version in self._findings_due.due(time.monotonic(), closed=self._ended_scopes(), force=force):
                started = time.monotonic()
                counts = counts or dict(self.pipeline_counts())
                try:
                    if scope == SESSION:
                        series, context = self._series.select()
                        found = findings_json(series, context, counts, self.config, self.normal)
                    else:
                        series, context = self._series.select(int(scope.split(":", 1)[1]))
                        found = findings_json(series, context, segment_counts(counts), self.config, self.normal)
                except Exception:
                    if not self._findings_failed:
                        log.exception("session %s: findings of %s could not be computed", self.name, scope)
                    self._findings_failed = True
                else:
                    with self._merge_lock:
                        self._findings[scope] = found
                        if scope in self._statistics:
                            self._statistics[scope] = {**self._statistics[scope], "findings": found}
                    changed = True
                self._findings_due.done(scope, version, started, time.monotonic())
        return changed

    # -- snapshot --------------------------------------------------------------------------------
    def snapshot(self) -> AnalysisSnapshot:
        """What the dashboards show now: full statistics for the session and the running exercise, the
        other exercises as summaries (their matrices on request, ``statistics``), so snapshots stay small."""
        current = self.timeline.current
        with self._merge_lock:
            statistics = dict(self._statistics)
        segments = tuple(
            SegmentStatistics(
                seg,
                statistics.get(seg.scope)
                if current is not None and seg.segment_id == current.segment_id
                else statistics_summary(statistics.get(seg.scope)),
            )
            for seg in self.timeline.segments
        )
        tail = tuple(self._tail)
        return AnalysisSnapshot(
            estimator=self.estimator,
            mirrored=self.mirrored,
            keyframes=self._seq,
            latest=tail[-1] if tail else None,
            tail=tail,
            session_statistics=statistics.get(SESSION),
            segments=segments,
            current=current,
        )
