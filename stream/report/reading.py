"""Reading a ``report.json`` back into a :class:`~stream.report.model.Report`, whatever its version.

Only for files already written (``report.html`` of an old analysis, a stored report): an analysis
builds its ``Report`` with ``Report.build`` from typed results. Missing keys, ``null``, NaN and
malformed values become undefined values (NaN in arrays, None elsewhere); AU pairs given as 0-based
indices into ``aus`` are read as AU names.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import fields
from typing import Any

import numpy as np

from stream.aus import AU_NAMES, N_AUS, REGIONS
from stream.report.charts import finite as _finite
from stream.report.model import (
    COOCCURRENCE_KEYS,
    DIFFERENCE_KEYS,
    ExerciseReport,
    FrameCounts,
    Report,
    SessionInfo,
)
from stream.symptoms.evidence import Findings, RegionFinding, SynkinesisFinding
from stream.symptoms.statistics import RegionAsymmetry, SymptomState, SynkinesisPair


def report_from_dict(data: Mapping[str, Any]) -> Report:
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
    return Report(
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
# tolerant readers


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
