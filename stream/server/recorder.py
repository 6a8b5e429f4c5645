"""What a live session stores, and when: every keyframe at once, statistics and counts at most once a second.

Every keyframe analysed is stored before it is shown or counted (keyframes analysed = keyframes
stored, whatever fails next); the statistics of its scopes and the session's frame counts follow at
most every ``STATISTICS_SAVE_INTERVAL_S`` (a killed server keeps its counts). A failed write raises
``StorageError``; a keyframe whose row could not be written stays *unstored* and is written before
anything else by ``retry``, with the sequence number it would have had, so none is stored twice.
Runs in the model threads, one call at a time per session.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from stream.server.latency import KeyframeTrace
from stream.server.store import Store
from stream.session.analysis import AnalysisSession, ScopeState
from stream.session.exercises import Segment
from stream.types import AUEstimate

STATISTICS_SAVE_INTERVAL_S = 1.0  # statistics snapshots (and frame counts) are written at most this often


@dataclass(frozen=True, eq=False)
class AnalysedKeyframe:
    """A keyframe's AU values and where it belongs, waiting to be stored."""

    estimate: AUEstimate
    received_at: float  # wall clock the source frame reached the server
    segment: Segment | None
    trace: KeyframeTrace


class Recorder:
    def __init__(
        self,
        store: Store,
        session_id: str,
        analysis: AnalysisSession,
        counts: Callable[[], dict[str, int]],
        shown: Callable[[KeyframeTrace], None],
    ) -> None:
        """``counts``: the frame counts now; ``shown``: called once a keyframe is stored and in the statistics."""
        self.store = store
        self.session_id = session_id
        self.analysis = analysis
        self._counts = counts
        self._shown = shown
        self.unstored: AnalysedKeyframe | None = None
        self._saved_at: dict[str, float] = {}
        self._counts_saved_at = -math.inf

    def keyframe(self, keyframe: AnalysedKeyframe) -> None:
        """Store, show and count a keyframe just analysed (raises ``StorageError``: see the module).

        A keyframe with the head turned away from the reference's pose (``pose_gated``) was not
        measured: the pipeline counted it (``keyframes_pose_gated``), and it is neither stored nor shown.
        """
        if keyframe.estimate.pose_gated:
            return
        self.unstored = keyframe
        self._record()

    def retry(self) -> None:
        """The write that failed, again: the unstored keyframe first, else every scope's statistics and the counts."""
        if self.unstored is not None:
            self._record()
        else:
            self.save_all()

    def _record(self) -> None:
        assert self.unstored is not None
        estimate, segment = self.unstored.estimate, self.unstored.segment
        self.store.add_keyframe(
            self.session_id,
            self.analysis.next_seq,
            estimate.frame_index,
            estimate.time_s,
            self.unstored.received_at,
            segment.segment_id if segment is not None else None,
            estimate.n_helpers,
            estimate.left,
            estimate.right,
            closure=estimate.closure,
            movement=estimate.movement,
        )
        done, self.unstored = self.unstored, None
        # Stored, so shown and counted; the writes below may fail without losing it.
        states = self.analysis.add(estimate, segment, done.received_at)
        self._shown(done.trace)
        now = time.monotonic()
        for state in states:
            if now - self._saved_at.get(state.scope, -math.inf) >= STATISTICS_SAVE_INTERVAL_S:
                self._save(state, estimate.time_s)
                self._saved_at[state.scope] = now
        if now - self._counts_saved_at >= STATISTICS_SAVE_INTERVAL_S:
            self.store.set_counts(self.session_id, self._counts())  # a killed server keeps its frame counts
            self._counts_saved_at = now

    def _save(self, state: ScopeState, time_s: float) -> None:
        self.store.save_statistics(self.session_id, state.scope, time_s, self.analysis.stored_statistics(state))

    def save_all(self) -> None:
        """Statistics of every scope and the frame counts, as they are now."""
        now = time.monotonic()
        for state in self.analysis.scope_states():
            # the session's statistics are as of its newest keyframe; a segment's carry no time
            self._save(state, self.analysis.latest_time_s if state.scope == "session" else 0.0)
            self._saved_at[state.scope] = now
        self.store.set_counts(self.session_id, self._counts())
        self._counts_saved_at = now

    def finish(self) -> None:
        """The final record of a stream: a last try for an unstored keyframe, findings of every scope, all saved."""
        if self.unstored is not None:
            self._record()
        self.analysis.update_findings(force=True)
        self.save_all()
