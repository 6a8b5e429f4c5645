"""What an analysis session shows: plain frozen dataclasses, turned into JSON in one place (``to_json``).

A snapshot holds only values already rounded and JSON-safe (computed once per keyframe in the model
thread), so publishing it costs no walk over matrices, and it can be pickled or queued as it is.
The dashboard (``static/js/clinician.js``) reads the JSON these produce; the server adds the stream's
status and health around it (``stream.server.snapshot``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from stream.au.base import AUEstimator
from stream.aus import AU_NAMES
from stream.session.exercises import PROTOCOL, Segment
from stream.session.jsonsafe import JSON, JSONObject, clean, clean_object

# The parts of a scope's statistics the per-exercise table needs; the matrices stay out of snapshots.
SUMMARY_KEYS = ("n_keyframes", "asymmetry_threshold", "regions", "synkinesis", "findings")


@dataclass(frozen=True)
class EstimatorInfo:
    """Which AU estimator spoke: its name, whether it is a training-free proxy, and its model card."""

    name: str
    is_proxy: bool
    model: JSONObject

    @classmethod
    def of(cls, estimator: AUEstimator) -> EstimatorInfo:
        return cls(estimator.name, bool(estimator.is_proxy), clean_object(estimator.model_info(), decimals=None))

    @classmethod
    def from_json(cls, stored: Mapping[str, object]) -> EstimatorInfo | None:
        """As ``to_json`` stored it; None for a session that never had a pipeline (stored as ``{}``)."""
        if "name" not in stored:
            return None
        model = stored.get("model")
        return cls(
            str(stored["name"]),
            bool(stored.get("is_proxy", True)),
            clean_object(model, decimals=None) if isinstance(model, dict) else {},
        )

    def to_json(self) -> JSONObject:
        return {"name": self.name, "is_proxy": self.is_proxy, "model": self.model}


@dataclass(frozen=True)
class KeyframeRow:
    """One stored keyframe as the dashboard plots it (rounded once, when it was analysed)."""

    seq: int
    frame_index: int
    time_s: float
    received_at: float  # wall clock the source frame reached the server
    left: list[JSON]  # 12 AU intensities, patient's left, AU_NAMES order
    right: list[JSON]

    @classmethod
    def of(
        cls, seq: int, frame_index: int, time_s: float, received_at: float, left: object, right: object
    ) -> KeyframeRow:
        left_json, right_json = clean(left), clean(right)
        assert isinstance(left_json, list) and isinstance(right_json, list)
        return cls(seq, int(frame_index), float(time_s), float(received_at), left_json, right_json)

    def to_json(self) -> JSONObject:
        return {
            "seq": self.seq,
            "frame_index": self.frame_index,
            "time_s": clean(self.time_s),
            "received_at": clean(self.received_at),
            "left": self.left,
            "right": self.right,
        }


@dataclass(frozen=True)
class SegmentStatistics:
    """An exercise segment and its statistics (full for the running one, a summary for the others)."""

    segment: Segment
    statistics: JSONObject | None

    def to_json(self) -> JSONObject:
        return {**clean_object(self.segment.to_json()), "statistics": self.statistics}


@dataclass(frozen=True)
class AnalysisSnapshot:
    """Everything an analysis session shows at one moment: latest values, recent series, statistics."""

    estimator: EstimatorInfo | None
    mirrored: bool
    keyframes: int  # keyframes analysed and stored, over every run of the session
    latest: KeyframeRow | None
    tail: tuple[KeyframeRow, ...]  # the most recent keyframes, oldest first
    session_statistics: JSONObject | None  # matrices included
    segments: tuple[SegmentStatistics, ...]
    current: Segment | None  # the running exercise segment

    def to_json(self) -> JSONObject:
        """The analysis part of a dashboard snapshot."""
        return {
            "aus": list(AU_NAMES),
            "estimator": clean_object(self.estimator.to_json()) if self.estimator is not None else {},
            "mirrored": self.mirrored,
            "latest": self.latest.to_json() if self.latest is not None else None,
            "series": {
                "seq": [r.seq for r in self.tail],
                "time_s": [clean(r.time_s) for r in self.tail],
                "left": [r.left for r in self.tail],
                "right": [r.right for r in self.tail],
            },
            "statistics": {"session": self.session_statistics, "segments": [s.to_json() for s in self.segments]},
            "exercise": {
                "current": clean_object(self.current.to_json()) if self.current is not None else None,
                "protocol": [e.key for e in PROTOCOL],
            },
        }


def statistics_summary(statistics: JSONObject | None) -> JSONObject | None:
    """What the per-exercise table needs of a scope's statistics."""
    if statistics is None:
        return None
    return {k: statistics[k] for k in SUMMARY_KEYS if k in statistics}
