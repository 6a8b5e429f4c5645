"""The report of one analysis as typed data: what ``report.json`` holds and ``report.html`` shows.

A :class:`Report` is built from the pipeline's own results (the paper's ``SymptomState``, the
evidence ``Findings``, the frame counts and the ``AnalysisConfig``) by :meth:`Report.build`, for a
video, an AU series CSV and a live session alike. :meth:`Report.to_json` gives the ``report.json``
content (docs/formats.md). :meth:`Report.from_dict` reads a ``report.json`` back, tolerating
missing keys, ``null`` and old files; it is the only place that reads the untyped form.
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

import numpy as np

from stream.aus import AU_NAMES, N_AUS, REGIONS
from stream.config import AnalysisConfig
from stream.symptoms.evidence import Findings, RegionFinding, SynkinesisFinding
from stream.symptoms.statistics import RegionAsymmetry, SymptomState, SynkinesisPair

DIFFERENCE_KEYS = ("right-left|left", "left-right|right")
COOCCURRENCE_KEYS = ("left|left", "left|right", "right|left", "right|right")
JSONValue = Any  # a value json.dumps accepts (str, number, bool, None, list, dict)


@dataclass(frozen=True)
class FrameCounts:
    """The frame counters of an analysis (``counts`` in report.json); None: not recorded."""

    values: Mapping[str, int | float | None]

    def _get(self, key: str) -> float | None:
        value = self.values.get(key)
        return _finite(value)

    @property
    def frames(self) -> int | None:
        n = self._get("frames")
        return None if n is None else int(n)

    @property
    def keyframes(self) -> int | None:
        n = self._get("keyframes")
        return None if n is None else int(n)

    @property
    def frames_without_face(self) -> int | None:
        n = self._get("frames_without_face")
        return None if n is None else int(n)

    @property
    def frames_with_several_faces(self) -> int | None:
        n = self._get("frames_with_several_faces")
        return None if n is None else int(n)

    @property
    def duration_s(self) -> float | None:
        return self._get("duration_s")


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

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Report:
        """Read a ``report.json`` (any version): missing keys, nulls and NaN become undefined values."""
        config = _mapping(data.get("config"))
        statistics = _statistics_from_json(data, _mapping(data.get("counts")))
        mask_recorded = _bool_matrix(data.get("cooccurrence_mask")) is not None
        findings = _findings_from_json(data.get("findings"))
        session = None
        exercises: list[ExerciseReport] = []
        if isinstance(data.get("session"), Mapping):
            s = data["session"]
            session = SessionInfo(
                str(s.get("id", "")),
                str(s.get("label") or ""),
                _finite(s.get("created_at")),
                _finite(s.get("ended_at")),
                str(s.get("status") or ""),
            )
        for number, item in enumerate(_list(data.get("exercises"))):
            item = _mapping(item)
            symptoms = _mapping(item.get("symptoms"))
            segment = _finite(item.get("segment_id"))
            exercises.append(
                ExerciseReport(
                    int(segment) if segment is not None else number,
                    str(item.get("exercise") or "exercise"),
                    _finite(item.get("start_s")),
                    _finite(item.get("end_s")),
                    _statistics_from_json(symptoms, {}),
                    _findings_from_json(item.get("findings")),
                )
            )
        if exercises and session is None:
            session = SessionInfo("", "", None, None, "")
        history = data.get("synkinesis_history")
        known = {
            "aus",
            "n_keyframes",
            "active_threshold",
            "asymmetry_threshold",
            "cooccurrence_threshold",
            "normal_threshold",
            "active_mean",
            "delta_am",
            "regions",
            "cooccurrence",
            "cooccurrence_difference",
            "synkinesis",
            "findings",
            "cooccurrence_mask",
            "counts",
            "config",
            "estimator_is_proxy",
            "warnings",
            "timings_ms",
            "model",
            "session",
            "exercises",
            "synkinesis_history",
        }
        proxy = data.get("estimator_is_proxy")
        return cls(
            statistics=statistics,
            findings=findings,
            counts=FrameCounts({str(k): v for k, v in _mapping(data.get("counts")).items()}),
            config=dict(config),
            estimator_is_proxy=bool(proxy) if proxy is not None else None,
            mask_recorded=mask_recorded,
            model=dict(data["model"]) if isinstance(data.get("model"), Mapping) else None,
            warnings=tuple(str(w) for w in _list(data.get("warnings"))),
            timings_ms=dict(data["timings_ms"]) if isinstance(data.get("timings_ms"), Mapping) else None,
            session=session,
            exercises=tuple(exercises),
            synkinesis_history=tuple(_mapping(h) for h in _list(history)) if isinstance(history, list) else None,
            extra={k: v for k, v in data.items() if k not in known},
        )


# --------------------------------------------------------------------------------------------
# tolerant readers (old files only)


def _finite(value: Any) -> float | None:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _nan(value: Any) -> float:
    number = _finite(value)
    return math.nan if number is None else number


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple)) else []


def _by_au(value: Any) -> np.ndarray:
    values = _mapping(value)
    return np.array([_nan(values.get(au)) for au in AU_NAMES])


def _matrix(value: Any) -> np.ndarray:
    """A 12x12 float matrix, NaN for null and anything malformed."""
    out = np.full((N_AUS, N_AUS), math.nan)
    for i, row in enumerate(_list(value)[:N_AUS]):
        for j, v in enumerate(_list(row)[:N_AUS]):
            out[i, j] = _nan(v)
    return out


def _bool_matrix(value: Any) -> np.ndarray | None:
    rows = _list(value)
    if len(rows) != N_AUS or any(len(_list(row)) != N_AUS for row in rows):
        return None
    return np.array([[bool(v) for v in row] for row in rows])


def _au_name(value: Any, aus: list[str]) -> str | None:
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool) and 0 <= int(value) < len(aus):
        return aus[int(value)]
    if isinstance(value, str) and value in aus:
        return value
    return None


def _statistics_from_json(data: Mapping[str, Any], counts: Mapping[str, Any]) -> SymptomState:
    aus = [str(a) for a in _list(data.get("aus"))]
    if len(aus) != N_AUS:
        aus = list(AU_NAMES)
    active = _mapping(data.get("active_mean"))
    regions = _mapping(data.get("regions"))
    names = [r for r in REGIONS if r in regions] + [str(r) for r in regions if r not in REGIONS]
    region_states = {}
    for name in names:
        info = _mapping(regions.get(name))
        side = info.get("weaker_side")
        region_states[name] = RegionAsymmetry(_nan(info.get("delta_am")), side if side in ("left", "right") else None)
    mask = _bool_matrix(data.get("cooccurrence_mask"))
    if mask is None:
        mask = ~np.eye(N_AUS, dtype=bool)
    pairs = []
    for pair in _list(_mapping(data.get("synkinesis")).get("pairs")):
        pair = _mapping(pair)
        row, col = _au_name(pair.get("row"), aus), _au_name(pair.get("col"), aus)
        if row is not None and col is not None:
            pairs.append(SynkinesisPair(str(pair.get("matrix", "")), row, col, _nan(pair.get("value"))))
    n = _finite(data.get("n_keyframes"))
    if n is None:
        n = _finite(counts.get("keyframes"))
    differences = _mapping(data.get("cooccurrence_difference"))
    cooccurrence = _mapping(data.get("cooccurrence"))
    return SymptomState(
        n_frames=int(n or 0),
        active_threshold=_nan(data.get("active_threshold")),
        active_mean_left=_by_au(active.get("left")),
        active_mean_right=_by_au(active.get("right")),
        delta_am=_by_au(data.get("delta_am")),
        regions=region_states,
        cooccurrence={key: _matrix(cooccurrence.get(key)) for key in COOCCURRENCE_KEYS if key in cooccurrence},
        cooccurrence_difference={key: _matrix(differences.get(key)) for key in DIFFERENCE_KEYS},
        mask=mask,
        synkinesis_pairs=pairs,
        asymmetry_threshold=_nan(data.get("asymmetry_threshold")),
        cooccurrence_threshold=_nan(data.get("cooccurrence_threshold")),
        normal_threshold=_nan(data.get("normal_threshold")),
    )


def _from_fields(cls: type, data: Mapping[str, Any], **fixed: Any) -> Any:
    """An instance of a findings dataclass from its JSON, intervals as tuples, missing fields None."""
    values = {}
    for f in fields(cls):
        value = fixed[f.name] if f.name in fixed else data.get(f.name)
        if isinstance(value, list):
            value = tuple(value) if len(value) == 2 and all(_finite(v) is not None for v in value) else None
        values[f.name] = value
    return cls(**values)


def _findings_from_json(value: Any) -> Findings | None:
    if not isinstance(value, Mapping):
        return None
    regions = {
        str(name): _from_fields(RegionFinding, _mapping(info), region=str(name))
        for name, info in _mapping(value.get("regions")).items()
    }
    syn = _mapping(value.get("synkinesis"))
    pairs = [_from_fields(SynkinesisFinding, _mapping(p)) for p in _list(syn.get("pairs"))]
    tested = _finite(syn.get("n_pairs_tested"))
    return Findings(
        str(value.get("rules") or "evidence"),
        regions,
        pairs,
        int(tested or 0),
        [str(w) for w in _list(value.get("warnings"))],
        dict(_mapping(value.get("settings"))),
    )
