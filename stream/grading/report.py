"""Grading a report.json: its stored findings back into ``Findings``, then the session's grade.

The stored and reported form is what a patient's history holds (stream/server/patients.py grades
every stored session from it), so grading must be possible from JSON alone, long after the video is
gone. Pure, no I/O: the caller reads the file.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from stream.grading.results import ExerciseEvidence, Grades
from stream.grading.session import grade
from stream.symptoms.evidence import Findings, RegionFinding, SynkinesisFinding


def findings_from_json(data: Mapping[str, Any]) -> Findings:
    """``Findings.to_json()`` back into ``Findings`` (the stored and reported form)."""
    regions = {}
    for name, r in (data.get("regions") or {}).items():
        regions[name] = RegionFinding(
            region=r.get("region", name),
            status=r["status"],
            weaker_side=r.get("weaker_side"),
            n_keyframes=int(r.get("n_keyframes") or 0),
            n_moving=int(r.get("n_moving") or 0),
            asymmetry=r.get("asymmetry"),
            asymmetry_interval=_tuple(r.get("asymmetry_interval")),
            weaker_percent=r.get("weaker_percent"),
            weaker_percent_interval=_tuple(r.get("weaker_percent_interval")),
            delta_am=r.get("delta_am"),
            delta_am_interval=_tuple(r.get("delta_am_interval")),
            reason=r.get("reason", ""),
            n_moving_not_judged=int(r.get("n_moving_not_judged") or 0),
            record_alone=bool(r.get("record_alone") or False),
            basis="blinks" if r.get("basis") == "blinks" else "movement",
        )
    syn = data.get("synkinesis") or {}
    pairs = []
    for p in syn.get("pairs") or []:
        pairs.append(
            SynkinesisFinding(
                side=p["side"],
                au=p["au"],
                trigger=p["trigger"],
                n_trigger=int(p.get("n_trigger") or 0),
                n_together=int(p.get("n_together") or 0),
                n_other_side=int(p.get("n_other_side") or 0),
                episodes=int(p.get("episodes") or 0),
                cross_difference=_float(p.get("cross_difference")),
                same_side_difference=_float(p.get("same_side_difference")),
                p_value=_float(p.get("p_value")),
                p_adjusted=_float(p.get("p_adjusted")),
                share_with_trigger=p.get("share_with_trigger"),
                share_without_trigger=p.get("share_without_trigger"),
            )
        )
    return Findings(
        str(data.get("rules", "evidence")),
        regions,
        pairs,
        int(syn.get("n_pairs_tested") or 0),
        list(data.get("warnings") or []),
        dict(data.get("settings") or {}),
    )


def grade_report(report: Mapping[str, Any]) -> Grades:
    """Scores of a report.json (``analyze``, or a stored session's ``session_report``)."""
    session = findings_from_json(report.get("findings") or {})
    exercises = []
    for ex in report.get("exercises") or []:
        if not ex.get("findings"):
            continue
        delta = {name: r.get("delta_am") for name, r in ((ex.get("symptoms") or {}).get("regions") or {}).items()}
        exercises.append(
            ExerciseEvidence(
                str(ex["exercise"]), int(ex.get("segment_id", -1)), findings_from_json(ex["findings"]), delta
            )
        )
    dead_band = float((report.get("config") or {}).get("asymmetry_threshold", 0.5))
    return grade(
        session, exercises, estimator_is_proxy=bool(report.get("estimator_is_proxy", True)), dead_band=dead_band
    )


def _float(value: Any) -> float:
    return float("nan") if value is None else float(value)


def _tuple(values: Any) -> tuple[float, float] | None:
    if values is None or any(v is None for v in values):
        return None
    return float(values[0]), float(values[1])
