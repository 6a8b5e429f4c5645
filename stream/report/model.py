"""The report of one analysis as typed data: what ``report.json`` holds and ``report.html`` shows.

A :class:`Report` is built from the pipeline's own results (the paper's ``SymptomState``, the
evidence ``Findings``, the frame counts and the ``AnalysisConfig``) by :meth:`Report.build`, for a
video, an AU series CSV and a live session alike. :meth:`Report.to_json` gives the ``report.json``
content (docs/formats.md). ``reading.report_from_dict`` reads a ``report.json`` back (old files,
tolerating missing keys and ``null``); it is the only place that reads the untyped form.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from stream.aus import AU_NAMES
from stream.config import AnalysisConfig
from stream.report.charts import finite as _finite
from stream.symptoms.evidence import Findings
from stream.symptoms.statistics import SymptomState

DIFFERENCE_KEYS = ("right-left|left", "left-right|right")
COOCCURRENCE_KEYS = ("left|left", "left|right", "right|left", "right|right")
JSONValue = Any  # a value json.dumps accepts (str, number, bool, None, list, dict)


@dataclass(frozen=True)
class FrameCounts:
    """The frame counters of an analysis (``counts`` in report.json); None: not recorded."""

    values: Mapping[str, int | float | None]

    def _get(self, key: str) -> float | None:
        return _finite(self.values.get(key))

    def _count(self, key: str) -> int | None:
        n = self._get(key)
        return None if n is None else int(n)

    @property
    def frames(self) -> int | None:
        return self._count("frames")

    @property
    def keyframes(self) -> int | None:
        return self._count("keyframes")

    @property
    def frames_without_face(self) -> int | None:
        return self._count("frames_without_face")

    @property
    def frames_with_several_faces(self) -> int | None:
        return self._count("frames_with_several_faces")

    @property
    def duration_s(self) -> float | None:
        return self._get("duration_s")

    def pose_and_reference(self) -> list[tuple[str, int]]:
        """The frames and keyframes left out for the head's pose or while the neutral reference waited,
        and the references taken, as (what, count): only the counters the analysis recorded, in the
        order a clinician reads them (docs/au_flow.md, step 1; docs/formats.md, ``counts``)."""
        out = []
        for key, words in _POSE_AND_REFERENCE:
            n = self._count(key)
            if n is not None:
                out.append((words, n))
        return out


# Counters the pipeline records only when they happen; (key, the report's words for it).
_POSE_AND_REFERENCE = (
    (
        "frames_before_reference",
        "Frames before the neutral reference (waiting for the face to turn to the camera; not measured)",
    ),
    ("reference_not_frontal", "Neutral references taken with the head turned (no frame faced the camera in time)"),
    ("rereferenced", "New neutral references (the face came back after it was lost, or a rest exercise began)"),
    ("frames_pose_gated", "Frames with the head turned beyond the pose limit (not measured)"),
    ("keyframes_pose_gated", "Keyframes turned too far from the reference's pose (not measured)"),
)


@dataclass(frozen=True)
class SessionInfo:
    """The live session a report comes from (``session`` in report.json)."""

    id: str
    label: str
    created_at: float | None
    ended_at: float | None
    status: str

    def to_json(self) -> dict[str, JSONValue]:
        return {
            "id": self.id,
            "label": self.label,
            "created_at": self.created_at,
            "ended_at": self.ended_at,
            "status": self.status,
        }


@dataclass(frozen=True)
class ExerciseReport:
    """One exercise segment of a live session: its statistics and findings on its own keyframes."""

    segment_id: int
    exercise: str
    start_s: float | None
    end_s: float | None
    statistics: SymptomState
    findings: Findings | None

    @property
    def title(self) -> str:
        return f"{self.exercise.replace('_', ' ')} #{self.segment_id + 1}"

    def to_json(self) -> dict[str, JSONValue]:
        out: dict[str, JSONValue] = {
            "segment_id": self.segment_id,
            "exercise": self.exercise,
            "start_s": self.start_s,
            "end_s": self.end_s,
            "symptoms": self.statistics.to_json(),
        }
        if self.findings is not None:
            out["findings"] = self.findings.to_json()
        return out


@dataclass(frozen=True)
class Report:
    """Everything one analysis reports (docs/formats.md, "report.json")."""

    statistics: SymptomState  # the paper's statistics of all keyframes
    findings: Findings | None  # the verdicts with their evidence; None in files from before them
    counts: FrameCounts
    config: Mapping[str, JSONValue]  # the settings, plus video, created, version, mirrored
    estimator_is_proxy: bool | None = None  # None: not recorded
    mask_recorded: bool = True  # False: an old file without ``cooccurrence_mask``
    model: Mapping[str, JSONValue] | None = None  # the estimator's description (``summary``, ...)
    warnings: tuple[str, ...] = ()
    timings_ms: Mapping[str, JSONValue] | None = None
    session: SessionInfo | None = None
    exercises: tuple[ExerciseReport, ...] = ()
    synkinesis_history: tuple[Mapping[str, JSONValue], ...] | None = None
    extra: Mapping[str, JSONValue] = field(default_factory=dict)  # keys this version does not know, kept

    @classmethod
    def build(
        cls,
        statistics: SymptomState,
        counts: Mapping[str, int | float | None],
        config: AnalysisConfig,
        *,
        source: str,
        estimator_is_proxy: bool,
        findings: Findings | None = None,
        warnings: Sequence[str] = (),
        timings: Mapping[str, JSONValue] | None = None,
        model: Mapping[str, JSONValue] | None = None,
        mirrored: bool | None = None,
        estimator: str | None = None,
        version: str | None = None,
    ) -> Report:
        """The report of an analysis; the findings' own warnings follow ``warnings``."""
        from stream import __version__

        settings: dict[str, JSONValue] = {
            **config.as_dict(),
            "video": source,
            "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "version": version or __version__,
        }
        if mirrored is not None:
            settings["mirrored"] = mirrored
        if estimator is not None:
            settings["estimator"] = estimator
        all_warnings = tuple(warnings) + (tuple(findings.warnings) if findings is not None else ())
        return cls(
            statistics,
            findings,
            FrameCounts(dict(counts)),
            settings,
            estimator_is_proxy,
            model=dict(model) if model else None,
            warnings=all_warnings,
            timings_ms=dict(timings) if timings else None,
        )

    def with_session(
        self,
        session: SessionInfo,
        exercises: Sequence[ExerciseReport],
        synkinesis_history: Sequence[Mapping[str, JSONValue]],
    ) -> Report:
        return replace(self, session=session, exercises=tuple(exercises), synkinesis_history=tuple(synkinesis_history))

    # -- reading --------------------------------------------------------------------------------

    @property
    def aus(self) -> tuple[str, ...]:
        return tuple(AU_NAMES)

    def setting(self, key: str) -> str | None:
        """A recorded setting as text, None when absent or empty."""
        value = self.config.get(key)
        if value is None or value == "":
            return None
        if isinstance(value, (list, tuple)):
            return ", ".join(str(v) for v in value)
        return str(value)

    @property
    def date(self) -> str | None:
        for key in ("created", "date", "created_at", "started_at"):
            if self.setting(key):
                return self.setting(key)
        return None

    @property
    def estimator_text(self) -> str | None:
        """How the report names its AU estimator: the model's summary, else name, checkpoint and helpers."""
        summary = self.model.get("summary") if self.model else None
        if summary:
            return str(summary)
        name = self.setting("estimator")
        if name is None:
            return None
        details = []
        if self.setting("checkpoint"):
            details.append(f"checkpoint {self.setting('checkpoint')}")
        helpers = _finite(self.config.get("helpers"))
        if helpers is not None:
            details.append(f"{int(helpers)} helpers")
        return f"{name} ({', '.join(details)})" if details else name

    @property
    def n_keyframes(self) -> int:
        n = self.counts.keyframes
        return n if n is not None else self.statistics.n_frames

    # -- report.json ----------------------------------------------------------------------------

    def to_json(self) -> dict[str, JSONValue]:
        """The ``report.json`` content (NaN still NaN: the writer turns it into null)."""
        out = self.statistics.to_json()
        if self.findings is not None:
            out["findings"] = self.findings.to_json()
        if self.mask_recorded:
            out["cooccurrence_mask"] = np.asarray(self.statistics.mask).tolist()
        out["counts"] = dict(self.counts.values)
        out["config"] = dict(self.config)
        if self.estimator_is_proxy is not None:
            out["estimator_is_proxy"] = self.estimator_is_proxy
        out["warnings"] = list(self.warnings)
        if self.timings_ms:
            out["timings_ms"] = dict(self.timings_ms)
        if self.model:
            out["model"] = dict(self.model)
        if self.session is not None:
            out["session"] = self.session.to_json()
            out["exercises"] = [e.to_json() for e in self.exercises]
        if self.synkinesis_history is not None:
            out["synkinesis_history"] = [dict(h) for h in self.synkinesis_history]
        for key, value in self.extra.items():
            out.setdefault(key, value)
        return out
