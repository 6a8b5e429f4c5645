"""A live session's findings: its AU series kept in memory, and the verdicts recomputed from it.

The paper's statistics accumulate keyframe by keyframe; the findings (``stream.symptoms.evidence``)
do not: a block bootstrap over time and an exact test over every pair tested need the whole series
of a scope at once. So the session keeps its series in memory (286 bytes a keyframe, ``LiveSeries``, loaded
from the store when a session is reopened) and recomputes a scope's findings from it, at most once a
second per scope, never more often than ``COST_FACTOR`` times what the last computation took, and
only once the scope has ``GROWTH_FRACTION`` more keyframes than its findings include: a computation
costs time in proportion to the keyframes (80 ms for 4,300 on this machine), so without the last
rule a 10-minute session of 3 patients spent a quarter of a core on verdicts that a keyframe more
or less does not change; with it the cost per second stays the same however long the session.

The same selection and the same call build the findings of the downloaded report
(``stream.server.session_report``), so the dashboard and the report state the same verdicts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Final

import numpy as np

from stream.analyze import series_findings
from stream.aus import N_AUS
from stream.config import AnalysisConfig
from stream.session.jsonsafe import JSONObject, clean_object
from stream.types import AUEstimate, AUSeries

MIN_INTERVAL_S: Final[float] = 1.0  # a scope's findings are recomputed at most this often
COST_FACTOR: Final[float] = 5.0  # ... and at most once per this many times their last computing time
GROWTH_FRACTION: Final[float] = 0.01  # ... and once the scope has this share more keyframes than they include


@dataclass(frozen=True)
class _SeriesRows:
    """The arrays of a ``LiveSeries`` (``capacity`` rows each; the first ``LiveSeries._n`` are filled)."""

    frames: np.ndarray  # (capacity,) int64
    time_s: np.ndarray  # (capacity,) float64
    left: np.ndarray  # (capacity, 12) float64
    right: np.ndarray  # (capacity, 12) float64
    has_closure: np.ndarray  # (capacity,) bool
    closure: np.ndarray  # (capacity, 2) float64, NaN where not measured
    has_movement: np.ndarray  # (capacity,) bool
    movement: np.ndarray  # (capacity, 2, 3) float64, NaN where not measured
    segment_ids: np.ndarray  # (capacity,) int64, -1 outside any exercise
    exercise: np.ndarray  # (capacity,) int32, index into ``LiveSeries._keys``

    @classmethod
    def empty(cls, capacity: int) -> _SeriesRows:
        return cls(
            frames=np.empty(capacity, dtype=np.int64),
            time_s=np.empty(capacity, dtype=np.float64),
            left=np.empty((capacity, N_AUS), dtype=np.float64),
            right=np.empty((capacity, N_AUS), dtype=np.float64),
            has_closure=np.empty(capacity, dtype=bool),
            closure=np.empty((capacity, 2), dtype=np.float64),
            has_movement=np.empty(capacity, dtype=bool),
            movement=np.empty((capacity, 2, 3), dtype=np.float64),
            segment_ids=np.empty(capacity, dtype=np.int64),
            exercise=np.empty(capacity, dtype=np.int32),
        )

    def grown(self, n: int, capacity: int) -> _SeriesRows:
        """New arrays of ``capacity`` rows holding this one's first ``n``."""
        out = _SeriesRows.empty(capacity)
        for f in fields(self):
            getattr(out, f.name)[:n] = getattr(self, f.name)[:n]
        return out

    @property
    def nbytes(self) -> int:
        return sum(getattr(self, f.name).nbytes for f in fields(self))


BYTES_PER_KEYFRAME: Final[int] = _SeriesRows.empty(1).nbytes  # 286: what a keyframe costs in a LiveSeries


class LiveSeries:
    """One row per analysed keyframe: AU values, eye closure and region movement, exercise segment.

    The rows live in preallocated arrays that double when full (``BYTES_PER_KEYFRAME`` a row, the
    numbers only; appending is amortised O(1)), not as one small array object per value: a 10-minute
    session of 3,500 keyframes holds about 1 MB, and no small long-lived blocks are scattered among
    the frames the process allocates and frees (they kept heap pages resident). Exercise keys are
    stored once each, a row holds the key's index.

    Appended from the session's analysis thread only (one keyframe at a time, in order); ``select``
    may run in another thread: a row is written before the count that makes it visible, and a
    doubling copies the visible rows into the new arrays before it replaces the old ones.
    """

    def __init__(self, capacity: int = 256) -> None:
        self._n = 0
        self._keys: list[str] = []  # exercise keys, "" (outside any exercise) among them
        self._key_index: dict[str, int] = {}
        self._rows = _SeriesRows.empty(max(1, capacity))

    @classmethod
    def from_series(cls, s: AUSeries, segment_ids: np.ndarray, exercises: Mapping[int, str]) -> LiveSeries:
        """A stored series; ``segment_ids``: each row's segment (-1 outside any); ``exercises``: segment id -> key."""
        out = cls(capacity=max(256, len(s)))
        for i in range(len(s)):
            segment_id = int(segment_ids[i])
            out._add(
                int(s.frames[i]),
                float(s.time_s[i]),
                s.left[i],
                s.right[i],
                None if s.closure is None else s.closure[i],
                None if s.movement is None else s.movement[i],
                segment_id,
                exercises.get(segment_id, ""),
            )
        return out

    def append(self, estimate: AUEstimate, segment_id: int | None, exercise: str) -> None:
        self._add(
            estimate.frame_index,
            estimate.time_s,
            estimate.left,
            estimate.right,
            estimate.closure,
            estimate.movement,
            -1 if segment_id is None else segment_id,
            exercise,
        )

    def _add(
        self,
        frame: int,
        time_s: float,
        left: np.ndarray,
        right: np.ndarray,
        closure: np.ndarray | None,
        movement: np.ndarray | None,
        segment_id: int,
        exercise: str,
    ) -> None:
        i = self._n
        if i == len(self._rows.frames):
            self._rows = self._rows.grown(i, 2 * i)
        rows = self._rows
        rows.frames[i] = frame
        rows.time_s[i] = time_s
        rows.left[i] = left
        rows.right[i] = right
        rows.has_closure[i] = closure is not None
        rows.closure[i] = np.nan if closure is None else closure
        rows.has_movement[i] = movement is not None
        rows.movement[i] = np.nan if movement is None else movement
        rows.segment_ids[i] = segment_id
        rows.exercise[i] = self._key(exercise)
        self._n = i + 1  # the row is complete: visible to ``select`` from now on

    def _key(self, exercise: str) -> int:
        index = self._key_index.get(exercise)
        if index is None:
            index = self._key_index[exercise] = len(self._keys)
            self._keys.append(exercise)
        return index

    def __len__(self) -> int:
        return self._n

    @property
    def nbytes(self) -> int:
        """Bytes the arrays hold (the capacity, filled or not)."""
        return self._rows.nbytes

    def select(self, segment_id: int | None = None) -> tuple[AUSeries, np.ndarray]:
        """The series of the whole session (None) or of one exercise segment, and each row's exercise.

        Eye closure and region movement come with it when every selected keyframe has them.
        """
        n = self._n  # rows appended after this line are not part of this selection
        rows = self._rows
        which: slice | np.ndarray = slice(0, n)
        if segment_id is not None:
            which = np.flatnonzero(rows.segment_ids[:n] == segment_id)
        k = len(rows.frames[which])
        closure = rows.closure[which] if k and rows.has_closure[which].all() else None
        movement = rows.movement[which] if k and rows.has_movement[which].all() else None
        series = AUSeries(
            frames=rows.frames[which].copy(),
            time_s=rows.time_s[which].copy(),
            left=rows.left[which].copy(),
            right=rows.right[which].copy(),
            closure=None if closure is None else closure.copy(),
            movement=None if movement is None else movement.copy(),
        )
        return series, np.array(self._keys, dtype=object)[rows.exercise[which]]


def segment_counts(counts: Mapping[str, object]) -> dict[str, object]:
    """The counts an exercise segment's warnings are judged on.

    Faces missed and heads turned are counted for the whole session only, so a segment's findings
    carry only the warning about its own number of keyframes; the session's carry the rest.
    """
    return {"frames": counts.get("frames", 0)}


def findings_json(
    series: AUSeries, context: np.ndarray, counts: Mapping[str, object], config: AnalysisConfig, normal: np.ndarray
) -> JSONObject:
    """``Findings.to_json()`` of one scope under ``config.rules``, JSON-safe (NaN -> None).

    Floats keep 6 significant digits (p-values are small: no fixed decimals).
    """
    return clean_object(series_findings(series, dict(counts), config, normal, context=context).to_json(), significant=6)


class FindingsSchedule:
    """Which scopes have keyframes their findings do not include yet, and which may be computed now.

    ``changed`` counts keyframes per scope (the analysis thread, after appending the keyframe);
    a computation notes the count it started from (before selecting its rows), so a keyframe that
    arrives while findings are being computed is never lost: its scope stays pending.
    """

    def __init__(self) -> None:
        self._version: dict[str, int] = {}
        self._computed: dict[str, int] = {}
        self._next_at: dict[str, float] = {}

    def changed(self, scope: str, keyframes: int = 1) -> None:
        self._version[scope] = self._version.get(scope, 0) + keyframes

    def due(
        self, now: float, *, closed: set[str] | frozenset[str] = frozenset(), force: bool = False
    ) -> list[tuple[str, int]]:
        """(scope, keyframe count) of pending scopes past their interval that grew by ``GROWTH_FRACTION``;
        of an ended exercise (``closed``) at once, and every pending scope when ``force``d."""
        due = []
        for s, v in list(self._version.items()):
            computed = self._computed.get(s, 0)
            if v <= computed:
                continue
            grown = v - computed >= GROWTH_FRACTION * computed
            if force or s in closed or (grown and now >= self._next_at.get(s, -math.inf)):
                due.append((s, v))
        return sorted(due)

    def done(self, scope: str, version: int, started: float, finished: float) -> None:
        self._computed[scope] = max(version, self._computed.get(scope, 0))
        self._next_at[scope] = started + max(MIN_INTERVAL_S, COST_FACTOR * (finished - started))
