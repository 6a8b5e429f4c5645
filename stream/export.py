"""A patient's graded results as JSON, CSV and HL7 FHIR R4 (Observation resources in a Bundle). Pure.

Every figure the history page shows becomes one row (CSV) and one ``Observation`` (FHIR): each
voluntary and synkinesis score, the resting symmetry, the composite, and each region's weaker-side
% of the stronger. An Observation carries the session time (``effectiveDateTime``), the patient by
the clinic's pseudonymous code (``subject``: ``Patient/<code>`` with the code as identifier), the
value with its UCUM unit (``{score}`` or ``%``; a score that was not graded has no value but a
``dataAbsentReason`` with the reason), the interval ends as components, and how it was reached
(``method.text``, ``note``). docs/formats.md describes the files.
"""

from __future__ import annotations

import csv
import datetime as _dt
import io
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from stream.grading import ESTIMATE_LABEL, region_figure, stored_scores

FORMAT: Final[str] = "stream-patient-results/1"
UCUM: Final[str] = "http://unitsofmeasure.org"
CODE_SYSTEM: Final[str] = "urn:stream:grading"  # this product's codes for its figures
PATIENT_SYSTEM: Final[str] = "urn:stream:patient-code"  # the clinic's pseudonymous codes
OBSERVATION_CATEGORY: Final[str] = "http://terminology.hl7.org/CodeSystem/observation-category"
DATA_ABSENT: Final[str] = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
_NAMESPACE: Final[uuid.UUID] = uuid.UUID("5b0c7f8e-3d55-4a36-9a55-1f2d8c3e6a10")  # stable resource ids
METHOD: Final[str] = (
    "Video analysis of facial movement per side (stream, docs/grading.md): the weaker side's movement in % "
    "of the stronger side's with a 95 % block-bootstrap interval, from the evidence findings of the exercise "
    "(or the whole recording), mapped to a Sunnybrook-style scale. " + ESTIMATE_LABEL.capitalize() + "."
)
CSV_COLUMNS: Final[tuple[str, ...]] = (
    "patient",
    "session_id",
    "session_time",
    "session_kind",
    "session_status",
    "basis",
    "key",
    "title",
    "kind",
    "value",
    "unit",
    "low",
    "high",
    "scale",
    "upper_bound",
    "reason",
)


@dataclass(frozen=True)
class SessionResult:
    session_id: str
    label: str
    kind: str  # live | recorded
    status: str
    created_at: float  # wall clock, the session's time
    n_keyframes: int
    grades: dict[str, Any] | None  # Grades.to_json(); None: nothing measured yet

    def to_json(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "label": self.label,
            "kind": self.kind,
            "status": self.status,
            "created_at": self.created_at,
            "time": iso_time(self.created_at),
            "n_keyframes": self.n_keyframes,
            "grades": self.grades,
        }


def iso_time(t: float) -> str:
    return _dt.datetime.fromtimestamp(t, _dt.UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Figure:
    """One exported number of one session."""

    key: str
    title: str
    kind: str  # voluntary | synkinesis | resting | composite | region
    value: float | None
    unit: str  # UCUM: "{score}" or "%"
    low: float | None
    high: float | None
    scale: str
    upper_bound: bool
    reason: str


def session_figures(grades: dict[str, Any] | None) -> list[Figure]:
    out: list[Figure] = []
    if grades is None:
        return out
    for s in stored_scores(grades):
        out.append(
            Figure(
                s["key"],
                s["title"],
                s["kind"],
                s["value"],
                "{score}",
                s.get("low"),
                s.get("high"),
                s["scale"],
                bool(s.get("upper_bound")),
                s["reason"],
            )
        )
    for name, r in (grades.get("regions") or {}).items():
        interval = r.get("weaker_percent_interval") or [None, None]
        side = f"{r['weaker_side']} side weaker; " if r.get("weaker_side") else ""
        key, title = region_figure(name)
        out.append(
            Figure(
                key,
                title,
                "region",
                r.get("weaker_percent"),
                "%",
                interval[0],
                interval[1],
                "0-100",
                False,
                f"{side}{r.get('reason', '')}",
            )
        )
    return out


# --------------------------------------------------------------------------------------------
# JSON and CSV


def patient_json(code: str, results: Sequence[SessionResult]) -> bytes:
    return json.dumps(
        {"format": FORMAT, "label": ESTIMATE_LABEL, "patient": code, "sessions": [r.to_json() for r in results]},
        indent=1,
    ).encode("utf-8")


def patient_csv(code: str, results: Sequence[SessionResult]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for r in results:
        for f in session_figures(r.grades):
            writer.writerow(
                [
                    code,
                    r.session_id,
                    iso_time(r.created_at),
                    r.kind,
                    r.status,
                    (r.grades or {}).get("basis", ""),
                    f.key,
                    f.title,
                    f.kind,
                    _cell(f.value),
                    f.unit,
                    _cell(f.low),
                    _cell(f.high),
                    f.scale,
                    int(f.upper_bound),
                    f.reason,
                ]
            )
    return buffer.getvalue().encode("utf-8")


def _cell(value: float | None) -> str:
    return "" if value is None else f"{value:.6g}"


# --------------------------------------------------------------------------------------------
# FHIR R4


def _quantity(value: float, unit: str) -> dict[str, Any]:
    return {"value": round(float(value), 6), "unit": unit, "system": UCUM, "code": unit}


def observation(code: str, result: SessionResult, figure: Figure) -> dict[str, Any]:
    """One FHIR R4 Observation of one figure of one session."""
    obs_id = str(uuid.uuid5(_NAMESPACE, f"{result.session_id}/{figure.key}"))
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "id": obs_id,
        "identifier": [{"system": "urn:stream:observation", "value": f"{result.session_id}/{figure.key}"}],
        "status": "final" if result.status == "ended" else "preliminary",
        "category": [{"coding": [{"system": OBSERVATION_CATEGORY, "code": "exam", "display": "Exam"}]}],
        "code": {
            "coding": [{"system": CODE_SYSTEM, "code": figure.key, "display": figure.title}],
            "text": f"{figure.title} ({ESTIMATE_LABEL})",
        },
        "subject": {"reference": f"Patient/{code}", "identifier": {"system": PATIENT_SYSTEM, "value": code}},
        "effectiveDateTime": iso_time(result.created_at),
        "method": {"text": METHOD},
        "note": [
            {
                "text": f"{ESTIMATE_LABEL.capitalize()}. How it was reached: {figure.reason}"
                + (" (an upper bound: parts not measured were taken as 0)" if figure.upper_bound else "")
            }
        ],
    }
    if figure.value is None:
        resource["dataAbsentReason"] = {
            "coding": [{"system": DATA_ABSENT, "code": "unknown", "display": "Unknown"}],
            "text": figure.reason,
        }
    else:
        resource["valueQuantity"] = _quantity(figure.value, figure.unit)
    lo, hi = _scale(figure.scale)
    if lo is not None and hi is not None:
        resource["referenceRange"] = [
            {"low": _quantity(lo, figure.unit), "high": _quantity(hi, figure.unit), "text": f"scale {figure.scale}"}
        ]
    components = []
    for end, value in (("low", figure.low), ("high", figure.high)):
        if value is not None and figure.value is not None:
            components.append(
                {
                    "code": {
                        "coding": [
                            {
                                "system": CODE_SYSTEM,
                                "code": f"interval-{end}",
                                "display": f"{end} end of the 95 % interval",
                            }
                        ]
                    },
                    "valueQuantity": _quantity(value, figure.unit),
                }
            )
    if components:
        resource["component"] = components
    return resource


def _scale(scale: str) -> tuple[float | None, float | None]:
    try:
        lo, hi = scale.split("-")
        return float(lo), float(hi)
    except ValueError:
        return None, None


def observations(code: str, results: Sequence[SessionResult]) -> list[dict[str, Any]]:
    return [observation(code, r, f) for r in results for f in session_figures(r.grades)]


def patient_fhir_bundle(code: str, results: Sequence[SessionResult], *, now: float | None = None) -> bytes:
    """A FHIR R4 Bundle (type ``collection``) of every Observation of the sessions given."""
    import time

    entries = [{"fullUrl": f"urn:uuid:{obs['id']}", "resource": obs} for obs in observations(code, results)]
    bundle_id = str(uuid.uuid5(_NAMESPACE, code + "|" + ",".join(r.session_id for r in results)))
    bundle = {
        "resourceType": "Bundle",
        "id": bundle_id,
        "type": "collection",
        "timestamp": iso_time(time.time() if now is None else now),
        "entry": entries,
    }
    return json.dumps(bundle, indent=1).encode("utf-8")
