"""Graded scores (stream/grading/) and exports (stream/export.py): pure, on findings from plain arrays.

The FHIR output is checked by a compact structural validator of the R4 JSON rules for the elements
we write (``check_fhir_observation``/``check_fhir_bundle``, shared with the end-to-end test).
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from typing import Any

import numpy as np
import pytest

from stream.export import SessionResult, observations, patient_csv, patient_fhir_bundle, patient_json
from stream.grading import (
    ESTIMATE_LABEL,
    ExerciseEvidence,
    changes,
    findings_from_json,
    grade,
    grade_report,
    synkinesis_severity,
    voluntary_score,
)
from stream.symptoms.evidence import Findings, SynkinesisFinding, assess

NORMAL = np.zeros((12, 12))


def _movement(n: int, region: int, left: float, right: float, episodes: int = 3) -> np.ndarray:
    """(n, 2, 3) movement: ``region`` moves in ``episodes`` bursts, each side scaled."""
    m = np.zeros((n, 2, 3))
    burst = np.zeros(n)
    width = n // (2 * episodes)
    for e in range(episodes):
        start = (2 * e + 1) * width
        burst[start : start + width] = 4.0 + np.sin(np.arange(width))  # 3..5, never still within a burst
    m[:, 0, region] = left * burst
    m[:, 1, region] = right * burst
    return m


def _findings(movement: np.ndarray) -> Findings:
    n = len(movement)
    return assess(np.zeros((n, 12)), np.zeros((n, 12)), NORMAL, movement=movement)


def test_voluntary_bands() -> None:
    assert [voluntary_score(p) for p in (0, 9.9, 10, 24.9, 25, 49.9, 50, 74.9, 75, 100)] == [
        1,
        1,
        2,
        2,
        3,
        3,
        4,
        4,
        5,
        5,
    ]


def test_weaker_side_maps_to_a_low_score_with_its_range() -> None:
    mouth = _findings(_movement(90, 2, 1.0, 0.2))
    assert mouth.regions["mouth"].status == "weaker_side"
    g = grade(mouth, [ExerciseEvidence("smile", 4, mouth)])
    smile = next(m for m in g.movements if m.key == "smile")
    assert smile.weaker_side == "right"
    p = smile.weaker_percent
    assert 10 < p < 30
    assert smile.voluntary.value == voluntary_score(p)
    assert smile.voluntary.low <= smile.voluntary.value <= smile.voluntary.high
    assert "right side weaker" in smile.voluntary.reason and f"{p:.0f} %" in smile.voluntary.reason
    assert smile.voluntary.basis == "exercise segment 4"
    # a movement without its exercise is not graded, and says so
    brow = next(m for m in g.movements if m.key == "brow_raise")
    assert brow.voluntary.value is None and "not recorded" in brow.voluntary.reason
    # no composite without all five movements
    assert g.composite.value is None and "Brow raise" in g.composite.reason
    assert g.to_json()["label"] == ESTIMATE_LABEL


def test_even_movement_is_complete_and_no_movement_is_not_graded() -> None:
    even = _findings(_movement(90, 0, 1.0, 1.0))
    still = _findings(np.zeros((90, 2, 3)))
    g = grade(even, [ExerciseEvidence("brow_raise", 1, even), ExerciseEvidence("smile", 2, still)])
    brow = next(m for m in g.movements if m.key == "brow_raise")
    assert brow.voluntary.value == 5.0 and "no weaker side shown" in brow.voluntary.reason
    smile = next(m for m in g.movements if m.key == "smile")
    assert smile.voluntary.value is None and "neither side moved" in smile.voluntary.reason
    assert brow.synkinesis.value is None and "brow raise" in brow.synkinesis.reason


def test_eyes_closed_only_while_smiling_are_not_graded_and_the_patient_is_told_what_to_redo() -> None:
    m = _movement(90, 1, 3.0, 3.0)
    m[:, :, 2] = m[:, :, 1]  # the mouth moves exactly when the eyes close
    found = _findings(m)
    g = grade(found, [ExerciseEvidence("gentle_eye_closure", 1, found)])
    closure = next(x for x in g.movements if x.key == "gentle_eye_closure")
    assert closure.voluntary.value is None
    assert "neither side moved" not in closure.voluntary.reason
    assert "close the eyes with the mouth at rest" in closure.voluntary.reason
    # the reason survives the stored form
    stored = findings_from_json(found.to_json()).regions["eyes"]
    assert stored.n_moving_not_judged == found.regions["eyes"].n_moving_not_judged > 0
    assert stored.record_alone and found.regions["eyes"].record_alone
    # two closures with a smile are counted, but too few to judge even together: "neither side moved"
    few = np.zeros((90, 2, 3))
    few[20:23, :, 1:] = 3.0
    few[60:63, :, 1:] = 3.0
    found = _findings(few)
    assert found.regions["eyes"].n_moving_not_judged > 0 and not found.regions["eyes"].record_alone
    g = grade(found, [ExerciseEvidence("gentle_eye_closure", 1, found)])
    closure = next(x for x in g.movements if x.key == "gentle_eye_closure")
    assert closure.voluntary.value is None and "neither side moved" in closure.voluntary.reason


def test_repeated_exercise_uses_the_latest_graded_segment() -> None:
    weak = _findings(_movement(90, 2, 1.0, 0.2))
    still = _findings(np.zeros((90, 2, 3)))
    g = grade(weak, [ExerciseEvidence("snarl", 1, weak), ExerciseEvidence("snarl", 2, still)])
    snarl = next(m for m in g.movements if m.key == "snarl")
    assert snarl.voluntary.value is not None and snarl.voluntary.basis.startswith("exercise segment 1 (of 2")


def _pair(shift: float, movement: bool = True) -> SynkinesisFinding:
    return SynkinesisFinding(
        "left",
        "eyes",
        "mouth",
        20,
        12,
        2,
        3,
        shift,
        float("nan"),
        0.001,
        0.004,
        share_with_trigger=0.8 if movement else None,
        share_without_trigger=0.5 if movement else None,
    )


def test_synkinesis_severity_and_composite() -> None:
    assert [synkinesis_severity(_pair(s)) for s in (0.35, 0.6, 0.99, 1.0, 2.0)] == [1, 2, 2, 3, 3]
    assert [synkinesis_severity(_pair(s, movement=False)) for s in (0.31, 0.5, 0.7)] == [1, 2, 3]
    even = _findings(_movement(90, 0, 1.0, 1.0))
    eyes = _findings(_movement(90, 1, 1.0, 1.0))
    mouth = _findings(_movement(90, 2, 1.0, 1.0))
    syn = Findings("evidence", mouth.regions, [_pair(0.7)], 4)
    tested_none = Findings("evidence", mouth.regions, [], 4)
    ex = [
        ExerciseEvidence("rest", 0, even, {"eyebrows": 0.0, "eyes": 0.1, "mouth": 0.9}),
        ExerciseEvidence("brow_raise", 1, even),
        ExerciseEvidence("gentle_eye_closure", 2, eyes),
        ExerciseEvidence("smile", 3, syn),
        ExerciseEvidence("snarl", 4, tested_none),
        ExerciseEvidence("lip_pucker", 5, mouth),
    ]
    g = grade(even, ex, estimator_is_proxy=True)
    smile = next(m for m in g.movements if m.key == "smile")
    assert smile.synkinesis.value == 2.0 and "left eyes with mouth" in smile.synkinesis.reason
    snarl = next(m for m in g.movements if m.key == "snarl")
    assert snarl.synkinesis.value == 0.0 and "not 'absent'" in snarl.synkinesis.reason
    # proxy estimator: resting symmetry is not graded, and the composite is an upper bound saying so
    assert g.resting.value is None and "first frame" in g.resting.reason
    assert g.composite.value == 4 * 25 - 2 and g.composite.upper_bound
    assert "resting 0 (not measured, taken as 0)" in g.composite.reason
    # an estimator of absolute intensities: the mouth beyond the dead band at rest counts 5
    g2 = grade(even, ex, estimator_is_proxy=False, dead_band=0.5)
    assert g2.resting.value == 5.0 and g2.composite.value == 100 - 5 - 2


def test_whole_recording_grades_regions_without_composite() -> None:
    m = _movement(90, 2, 1.0, 0.2) + _movement(90, 0, 1.0, 1.0)
    g = grade(_findings(m))
    assert g.basis == "whole_recording"
    keys = [x.key for x in g.movements]
    assert keys == ["region:eyebrows", "region:eyes", "region:mouth"]
    assert g.movements[2].voluntary.value <= 3 and g.movements[0].voluntary.value == 5
    assert g.composite.value is None and any("whole recording" in n for n in g.notes)


def test_report_round_trip_and_changes() -> None:
    weak, better = _findings(_movement(90, 2, 1.0, 0.1)), _findings(_movement(90, 2, 1.0, 0.9))
    reports = [
        {"findings": f.to_json(), "exercises": [], "estimator_is_proxy": True, "config": {}} for f in (weak, better)
    ]
    assert findings_from_json(weak.to_json()).to_json() == weak.to_json()
    history = [grade_report(r) for r in reports]
    by_key = {c.key: c for c in changes(history)}
    mouth = by_key["region:mouth.voluntary"]
    assert mouth.latest == 5.0 and mouth.previous < 5.0 and mouth.since_first == 5.0 - mouth.first
    pct = by_key["region:mouth.weaker_percent"]
    assert pct.since_previous > 40
    assert by_key["composite"].latest is None and by_key["composite"].since_previous is None


# ----------------------------------------------------------------------------------------------
# FHIR R4 structural validation (the JSON rules of the elements written; hl7.org/fhir/R4/json.html)

_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})")
_OBS_STATUS = {"registered", "preliminary", "final", "amended", "corrected", "cancelled", "entered-in-error", "unknown"}
_BUNDLE_TYPES = {
    "document",
    "message",
    "transaction",
    "transaction-response",
    "batch",
    "batch-response",
    "history",
    "searchset",
    "collection",
}
_VALUE_X = {
    "valueQuantity",
    "valueCodeableConcept",
    "valueString",
    "valueBoolean",
    "valueInteger",
    "valueRange",
    "valueRatio",
    "valueSampledData",
    "valueTime",
    "valueDateTime",
    "valuePeriod",
}
_OBS_FIELDS = {
    "resourceType",
    "id",
    "meta",
    "implicitRules",
    "language",
    "text",
    "contained",
    "extension",
    "modifierExtension",
    "identifier",
    "basedOn",
    "partOf",
    "status",
    "category",
    "code",
    "subject",
    "focus",
    "encounter",
    "effectiveDateTime",
    "effectivePeriod",
    "effectiveTiming",
    "effectiveInstant",
    "issued",
    "performer",
    "dataAbsentReason",
    "interpretation",
    "note",
    "bodySite",
    "method",
    "specimen",
    "device",
    "referenceRange",
    "hasMember",
    "derivedFrom",
    "component",
} | _VALUE_X


def _no_empty(node: Any, path: str) -> None:
    """FHIR JSON: no null, no empty string, object or array anywhere; numbers finite."""
    assert node is not None and node != "" and node != [] and node != {}, f"empty value at {path}"
    if isinstance(node, dict):
        for k, v in node.items():
            _no_empty(v, f"{path}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            _no_empty(v, f"{path}[{i}]")
    elif isinstance(node, float):
        assert math.isfinite(node), path


def _coding(c: dict[str, Any], path: str) -> None:
    assert set(c) <= {"system", "version", "code", "display", "userSelected"}, path
    assert isinstance(c.get("system"), str) and ":" in c["system"], f"{path}.system must be a URI"
    assert isinstance(c.get("code"), str) and not re.search(r"^\s|\s$|\s\s", c["code"]), f"{path}.code"


def _concept(cc: dict[str, Any], path: str, need_coding: bool = True) -> None:
    assert set(cc) <= {"coding", "text"}, path
    if need_coding:
        assert isinstance(cc.get("coding"), list) and cc["coding"], f"{path}.coding"
    for i, c in enumerate(cc.get("coding", [])):
        _coding(c, f"{path}.coding[{i}]")


def _quantity(q: dict[str, Any], path: str) -> None:
    assert set(q) <= {"value", "comparator", "unit", "system", "code"}, path
    assert isinstance(q["value"], (int, float)) and not isinstance(q["value"], bool), f"{path}.value"
    if "code" in q:  # qty-3: a code needs a system
        assert q.get("system") == "http://unitsofmeasure.org", f"{path}.system"


def check_fhir_observation(obs: dict[str, Any]) -> None:
    _no_empty(obs, "Observation")
    assert obs["resourceType"] == "Observation"
    assert set(obs) <= _OBS_FIELDS, set(obs) - _OBS_FIELDS
    assert _ID.fullmatch(obs["id"])
    assert obs["status"] in _OBS_STATUS
    _concept(obs["code"], "code")
    for i, c in enumerate(obs.get("category", [])):
        _concept(c, f"category[{i}]")
    subject = obs["subject"]
    assert set(subject) <= {"reference", "type", "identifier", "display"}
    assert re.fullmatch(r"Patient/[A-Za-z0-9\-.]{1,64}", subject["reference"])
    assert _DATETIME.fullmatch(obs["effectiveDateTime"])
    values = [k for k in obs if k in _VALUE_X]
    assert len(values) <= 1
    assert not (values and "dataAbsentReason" in obs), "obs-6: dataAbsentReason only without a value"
    assert values or "dataAbsentReason" in obs
    if "valueQuantity" in obs:
        _quantity(obs["valueQuantity"], "valueQuantity")
    if "dataAbsentReason" in obs:
        _concept(obs["dataAbsentReason"], "dataAbsentReason")
    _concept(obs["method"], "method", need_coding=False)
    for note in obs.get("note", []):
        assert isinstance(note["text"], str)
    for r in obs.get("referenceRange", []):
        assert "low" in r or "high" in r or "text" in r  # obs-3
        for end in ("low", "high"):
            if end in r:
                _quantity(r[end], f"referenceRange.{end}")
    for i, comp in enumerate(obs.get("component", [])):
        _concept(comp["code"], f"component[{i}].code")
        assert [k for k in comp if k.startswith("value")] == ["valueQuantity"]
        _quantity(comp["valueQuantity"], f"component[{i}].valueQuantity")


def check_fhir_bundle(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    _no_empty(bundle, "Bundle")
    assert bundle["resourceType"] == "Bundle" and bundle["type"] in _BUNDLE_TYPES
    assert set(bundle) <= {
        "resourceType",
        "id",
        "meta",
        "implicitRules",
        "language",
        "identifier",
        "type",
        "timestamp",
        "total",
        "link",
        "entry",
        "signature",
    }
    assert _DATETIME.fullmatch(bundle["timestamp"])
    urls = [e["fullUrl"] for e in bundle["entry"]]
    assert len(set(urls)) == len(urls), "bdl-7: fullUrl unique"
    out = []
    for e in bundle["entry"]:
        assert set(e) <= {"link", "fullUrl", "resource", "search", "request", "response"}
        assert re.fullmatch(r"urn:uuid:[0-9a-f\-]{36}", e["fullUrl"])
        check_fhir_observation(e["resource"])
        out.append(e["resource"])
    return out


def test_exports_json_csv_fhir() -> None:
    weak = _findings(_movement(90, 2, 1.0, 0.2))
    g = grade(weak, [ExerciseEvidence("smile", 3, weak)]).to_json()
    results = [
        SessionResult("abc_DEF-123", "", "live", "ended", 1_790_000_000.0, 90, g),
        SessionResult("x2", "", "recorded", "live", 1_790_100_000.0, 90, g),
    ]
    data = json.loads(patient_json("P-0042", results))
    assert data["patient"] == "P-0042" and len(data["sessions"]) == 2 and data["label"] == ESTIMATE_LABEL
    rows = list(csv.DictReader(io.StringIO(patient_csv("P-0042", results).decode())))
    smile = [r for r in rows if r["key"] == "smile.voluntary"]
    assert len(smile) == 2 and float(smile[0]["value"]) == g["movements"][3]["voluntary"]["value"]
    assert smile[0]["session_time"].startswith("2026-") and smile[0]["unit"] == "{score}"
    assert any(r["key"] == "region:mouth.weaker_percent" and r["unit"] == "%" for r in rows)
    bundle = json.loads(patient_fhir_bundle("P-0042", results, now=1_790_200_000.0))
    resources = check_fhir_bundle(bundle)
    assert len(resources) == len(rows)
    assert {r["status"] for r in resources} == {"final", "preliminary"}
    smile_obs = [r for r in resources if r["code"]["coding"][0]["code"] == "smile.voluntary"]
    assert (
        smile_obs[0]["valueQuantity"]["code"] == "{score}" and smile_obs[0]["subject"]["reference"] == "Patient/P-0042"
    )
    assert smile_obs[0]["effectiveDateTime"] == "2026-09-21T14:13:20+00:00"
    absent = [r for r in resources if r["code"]["coding"][0]["code"] == "brow_raise.voluntary"][0]
    assert "valueQuantity" not in absent and "not recorded" in absent["dataAbsentReason"]["text"]
    # stable ids: the same session exports the same resource ids
    assert [o["id"] for o in observations("P-0042", results)] == [r["id"] for r in resources]


def test_validator_rejects_broken_observations() -> None:
    weak = _findings(_movement(90, 2, 1.0, 0.2))
    g = grade(weak, [ExerciseEvidence("smile", 3, weak)]).to_json()
    obs = observations("P1", [SessionResult("s", "", "live", "ended", 1.0, 90, g)])
    good = next(o for o in obs if "valueQuantity" in o)
    check_fhir_observation(good)
    for broken in (
        {**good, "status": "done"},
        {**good, "code": {"text": "x"}},
        {**good, "dataAbsentReason": good["code"]},
        {**good, "valueQuantity": {"value": "3"}},
        {**good, "effectiveDateTime": "2026-01-01 10:00"},
        {k: v for k, v in good.items() if k != "subject"},
        {**good, "note": []},
    ):
        with pytest.raises((AssertionError, KeyError)):
            check_fhir_observation(broken)
