"""A live session's findings: its AU series kept in memory, and the verdicts recomputed from it.

The paper's statistics accumulate keyframe by keyframe; the findings (``stream.symptoms.evidence``)
do not: a block bootstrap over time and an exact test over every pair tested need the whole series
of a scope at once. So the session keeps its series in memory (about 300 bytes a keyframe, loaded
from the store when a session is reopened) and recomputes a scope's findings from it, at most once a
second per scope and never more often than ``COST_FACTOR`` times what the last computation took, so
a long session does not spend its model threads on verdicts that change slowly anyway.

The same selection and the same call build the findings of the downloaded report
(``stream.server.session_report``), so the dashboard and the report state the same verdicts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Final

import numpy as np

from stream.analyze import series_findings
from stream.config import AnalysisConfig
from stream.session.jsonsafe import JSONObject, clean_object
from stream.types import AUEstimate, AUSeries

MIN_INTERVAL_S: Final[float] = 1.0  # a scope's findings are recomputed at most this often
COST_FACTOR: Final[float] = 5.0  # ... and at most once per this many times their last computing time


class LiveSeries:
    """One row per analysed keyframe: AU values, eye closure and region movement, exercise segment.

    Appended from the session's analysis thread only (one keyframe at a time, in order).
    """

    def __init__(self) -> None:
        self._frames: list[int] = []
        self._time_s: list[float] = []
        self._left: list[np.ndarray] = []
        self._right: list[np.ndarray] = []
        self._closure: list[np.ndarray | None] = []
        self._movement: list[np.ndarray | None] = []
        self._segment_ids: list[int] = []  # -1 outside any exercise
        self._exercises: list[str] = []  # the exercise key of the keyframe's segment, "" outside any

    @classmethod
    def from_series(cls, s: AUSeries, segment_ids: np.ndarray, exercises: Mapping[int, str]) -> LiveSeries:
        """A stored series; ``segment_ids``: each row's segment (-1 outside any); ``exercises``: segment id -> key."""
        out = cls()
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
        self._frames.append(frame)
        self._time_s.append(time_s)
        self._left.append(np.asarray(left, dtype=float))
        self._right.append(np.asarray(right, dtype=float))
        self._closure.append(None if closure is None else np.asarray(closure, dtype=float))
        self._movement.append(None if movement is None else np.asarray(movement, dtype=float))
        self._segment_ids.append(segment_id)
        self._exercises.append(exercise)

    def __len__(self) -> int:
        return len(self._frames)

    def select(self, segment_id: int | None = None) -> tuple[AUSeries, np.ndarray]:
        """The series of the whole session (None) or of one exercise segment, and each row's exercise.

        Eye closure and region movement come with it when every selected keyframe has them.
        """
        n = len(self._frames)  # rows appended after this line are not part of this selection
        rows = [i for i in range(n) if segment_id is None or self._segment_ids[i] == segment_id]
        closure = [c for c in (self._closure[i] for i in rows) if c is not None]  # complete: every row has it
        movement = [m for m in (self._movement[i] for i in rows) if m is not None]
        series = AUSeries(
            frames=np.array([self._frames[i] for i in rows], dtype=int),
            time_s=np.array([self._time_s[i] for i in rows], dtype=float),
            left=np.array([self._left[i] for i in rows], dtype=float).reshape(len(rows), -1 if rows else 12),
            right=np.array([self._right[i] for i in rows], dtype=float).reshape(len(rows), -1 if rows else 12),
            closure=np.stack(closure) if rows and len(closure) == len(rows) else None,
            movement=np.stack(movement) if rows and len(movement) == len(rows) else None,
        )
        return series, np.array([self._exercises[i] for i in rows], dtype=object)


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

    def changed(self, scope: str) -> None:
        self._version[scope] = self._version.get(scope, 0) + 1

    def due(
        self, now: float, *, closed: set[str] | frozenset[str] = frozenset(), force: bool = False
    ) -> list[tuple[str, int]]:
        """(scope, keyframe count) of pending scopes past their interval; of an ended exercise (``closed``) at once."""
        pending = [(s, v) for s, v in list(self._version.items()) if v > self._computed.get(s, 0)]
        return sorted((s, v) for s, v in pending if force or s in closed or now >= self._next_at.get(s, -math.inf))

    def done(self, scope: str, version: int, started: float, finished: float) -> None:
        self._computed[scope] = max(version, self._computed.get(scope, 0))
        self._next_at[scope] = started + max(MIN_INTERVAL_S, COST_FACTOR * (finished - started))
