"""Graded exercise scores: Sunnybrook-style *estimates* from the evidence findings. Pure, no I/O.

For each standard movement of the guided protocol (brow raise, gentle and tight eye closure, smile,
snarl, lip pucker) the findings of that exercise's segment (``stream.symptoms.evidence``) give the
weaker side's movement in % of the stronger side's with its 95 % interval; that figure is mapped to
a voluntary-movement score 1-5 in the manner of the Sunnybrook Facial Grading System, and the
synkinesis findings during the movement to a synkinesis score 0-3. The rest exercise gives a
resting-symmetry figure where the estimator can see one, and the three parts give a composite
(voluntary - resting - synkinesis, as Sunnybrook's). docs/grading.md states every mapping.

These are estimates, not clinical grades: a clinician's Sunnybrook grading judges the face; these
numbers judge a proxy's measurement of it. Every score carries the evidence it rests on and the
sentence that says how it was reached; where the evidence is not enough, the value is ``None`` and
the sentence says why, never a guess.

A recording without exercise segments (``analyze`` of a video) is graded per region from the
whole-clip findings (basis ``whole_recording``): the movements were not separated, so there is one
voluntary score per region and no composite.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from stream.symptoms.evidence import EYE_SIGNALS, MOUTH_SIGNALS, Findings, RegionFinding, SynkinesisFinding

ESTIMATE_LABEL: Final[str] = "estimate, not a clinical grade"
ScoreKind = Literal["voluntary", "synkinesis", "resting", "composite"]
Basis = Literal["exercises", "whole_recording"]


@dataclass(frozen=True)
class Movement:
    key: str  # exercise key of the protocol (stream/server/exercises.py)
    title: str
    region: str  # evidence region whose verdict grades it
    sunnybrook: bool  # one of Sunnybrook's five voluntary movements (counts in the composite)


MOVEMENTS: Final[tuple[Movement, ...]] = (
    Movement("brow_raise", "Brow raise", "eyebrows", True),
    Movement("gentle_eye_closure", "Gentle eye closure", "eyes", True),
    Movement("tight_eye_closure", "Tight eye closure", "eyes", False),
    Movement("smile", "Open-mouth smile", "mouth", True),
    Movement("snarl", "Snarl", "mouth", True),
    Movement("lip_pucker", "Lip pucker", "mouth", True),
)
MOVEMENT_KEYS: Final[tuple[str, ...]] = tuple(m.key for m in MOVEMENTS)
REGION_TITLES: Final[dict[str, str]] = {"eyebrows": "Eyebrows", "eyes": "Eyes", "mouth": "Mouth"}
REST: Final[str] = "rest"

# Weaker side's % of the stronger -> voluntary score: below 10 % -> 1, 10-25 -> 2, 25-50 -> 3, 50-75 -> 4,
# from 75 % -> 5. Sunnybrook's words for each score.
VOLUNTARY_BANDS: Final[tuple[float, ...]] = (10.0, 25.0, 50.0, 75.0)
VOLUNTARY_WORDS: Final[dict[int, str]] = {
    1: "unable to initiate movement",
    2: "initiates slight movement",
    3: "initiated movement with mild excursion",
    4: "movement almost complete",
    5: "movement complete",
}
# Synkinesis effect -> score 1 (mild), 2 (moderate), 3 (severe); 0 = none shown. Movement pairs: the
# shift of one side's share of the region's movement, in units of its large movement (finding >= 0.3);
# AU pairs: the cross-side co-occurrence difference (finding > 0.3).
SYNKINESIS_BANDS_MOVEMENT: Final[tuple[float, ...]] = (0.6, 1.0)
SYNKINESIS_BANDS_AU: Final[tuple[float, ...]] = (0.5, 0.7)
SYNKINESIS_WORDS: Final[dict[int, str]] = {0: "none shown", 1: "mild", 2: "moderate", 3: "severe"}


@dataclass(frozen=True)
class Score:
    """One number with how it was reached. ``value`` None: not graded, ``reason`` says why."""

    key: str  # stable id, e.g. "smile.voluntary", "composite"
    title: str
    kind: ScoreKind
    value: float | None
    scale: str  # "1-5", "0-3", "0-20", "0-100"
    reason: str
    low: float | None = None  # the score at either end of the evidence's interval
    high: float | None = None
    basis: str = ""  # what it was computed from, e.g. "exercise segment 3" or "whole recording"
    upper_bound: bool = False  # parts that could not be measured were taken as 0 (composite)
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "title": self.title,
            "kind": self.kind,
            "value": self.value,
            "scale": self.scale,
            "low": self.low,
            "high": self.high,
            "reason": self.reason,
            "basis": self.basis,
            "upper_bound": self.upper_bound,
            "evidence": self.evidence,
            "label": ESTIMATE_LABEL,
        }


@dataclass(frozen=True)
class MovementGrade:
    key: str  # a movement key, or "region:<name>" on a whole recording
    title: str
    region: str
    sunnybrook: bool
    weaker_side: str | None
    weaker_percent: float | None
    weaker_percent_interval: tuple[float, float] | None
    voluntary: Score
    synkinesis: Score

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "title": self.title,
            "region": self.region,
            "sunnybrook": self.sunnybrook,
            "weaker_side": self.weaker_side,
            "weaker_percent": _num(self.weaker_percent),
            "weaker_percent_interval": _pair(self.weaker_percent_interval),
            "voluntary": self.voluntary.to_json(),
            "synkinesis": self.synkinesis.to_json(),
        }


@dataclass(frozen=True)
class RegionAsymmetry:
    """A region's verdict over the whole session (the trend plots' per-region asymmetry)."""

    region: str
    status: str
    weaker_side: str | None
    weaker_percent: float | None
    weaker_percent_interval: tuple[float, float] | None
    asymmetry: float | None  # (S_L - S_R) / (S_L + S_R); > 0: the left moves more
    n_moving: int
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {
            "region": self.region,
            "status": self.status,
            "weaker_side": self.weaker_side,
            "weaker_percent": _num(self.weaker_percent),
            "weaker_percent_interval": _pair(self.weaker_percent_interval),
            "asymmetry": _num(self.asymmetry),
            "n_moving": self.n_moving,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class Grades:
    basis: Basis
    movements: list[MovementGrade]
    regions: dict[str, RegionAsymmetry]
    resting: Score
    composite: Score
    notes: list[str] = field(default_factory=list)

    def scores(self) -> list[Score]:
        """Every score, in a stable order (the export's rows)."""
        out = [s for m in self.movements for s in (m.voluntary, m.synkinesis)]
        return [*out, self.resting, self.composite]

    def to_json(self) -> dict[str, Any]:
        return {
            "label": ESTIMATE_LABEL,
            "basis": self.basis,
            "movements": [m.to_json() for m in self.movements],
            "regions": {k: r.to_json() for k, r in self.regions.items()},
            "resting": self.resting.to_json(),
            "composite": self.composite.to_json(),
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class ExerciseEvidence:
    """One exercise segment: its findings and the paper's ΔAM per region (left minus right, AU units)."""

    exercise: str
    segment_id: int
    findings: Findings
    delta_am: Mapping[str, float | None] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------
# mappings


def voluntary_score(percent: float) -> int:
    """Weaker side's % of the stronger -> 1..5 (``VOLUNTARY_BANDS``)."""
    return 1 + sum(percent >= b for b in VOLUNTARY_BANDS)


def synkinesis_severity(pair: SynkinesisFinding) -> int:
    """1..3 from a found pair's effect (``SYNKINESIS_BANDS_*``)."""
    bands = SYNKINESIS_BANDS_MOVEMENT if pair.share_with_trigger is not None else SYNKINESIS_BANDS_AU
    return 1 + sum(pair.cross_difference >= b for b in bands)


def _signal_region(name: str) -> str | None:
    if name in EYE_SIGNALS:
        return "eyes"
    if name in MOUTH_SIGNALS:
        return "mouth"
    return None


# --------------------------------------------------------------------------------------------
# scores


def _voluntary(key: str, title: str, finding: RegionFinding | None, basis: str) -> Score:
    key = f"{key}.voluntary"
    if finding is None:
        return Score(key, title, "voluntary", None, "1-5", "no verdict for this region", basis=basis)
    evidence = {
        "status": finding.status,
        "weaker_side": finding.weaker_side,
        "weaker_percent": _num(finding.weaker_percent),
        "weaker_percent_interval": _pair(finding.weaker_percent_interval),
        "n_moving": finding.n_moving,
        "n_keyframes": finding.n_keyframes,
        "finding": finding.reason,
    }
    if finding.status == "not_enough_keyframes":
        return Score(
            key, title, "voluntary", None, "1-5", f"not graded: {finding.reason}", basis=basis, evidence=evidence
        )
    if finding.status == "did_not_move":
        return Score(
            key,
            title,
            "voluntary",
            None,
            "1-5",
            f"not graded: neither side moved enough ({finding.reason}); was the movement done?",
            basis=basis,
            evidence=evidence,
        )
    percent, interval = finding.weaker_percent, finding.weaker_percent_interval
    if percent is None or interval is None or not math.isfinite(percent):
        return Score(
            key,
            title,
            "voluntary",
            None,
            "1-5",
            "not graded: these rules give no % of the stronger side (the evidence rules do)",
            basis=basis,
            evidence=evidence,
        )
    lo, hi = voluntary_score(interval[0]), voluntary_score(interval[1])
    measured = f"weaker side at {percent:.0f} % of the stronger (95 % interval {interval[0]:.0f}-{interval[1]:.0f} %)"
    if finding.status == "weaker_side":
        value = voluntary_score(percent)
        reason = (
            f"{finding.weaker_side} side weaker: {measured} -> {value} ({VOLUNTARY_WORDS[value]}); "
            f"the interval spans {lo}-{hi}"
        )
        return Score(key, title, "voluntary", float(value), "1-5", reason, float(lo), float(hi), basis, False, evidence)
    # no clear difference: the evidence shows no weaker side, so the movement counts as complete; the
    # interval's far end says how low it could be.
    reason = (
        f"no weaker side shown ({finding.reason}); {measured} -> 5 ({VOLUNTARY_WORDS[5]}); the interval spans {lo}-5"
    )
    return Score(key, title, "voluntary", 5.0, "1-5", reason, float(lo), 5.0, basis, False, evidence)


def _synkinesis(key: str, title: str, findings: Findings | None, region: str, basis: str) -> Score:
    """Synkinesis during a movement of ``region``: pairs whose trigger is that region."""
    key = f"{key}.synkinesis"
    if findings is None:
        return Score(key, title, "synkinesis", None, "0-3", "no findings for this movement", basis=basis)
    if findings.rules != "evidence":
        return Score(
            key,
            title,
            "synkinesis",
            None,
            "0-3",
            "not graded: the paper's pairs carry no tested effect (use the evidence rules)",
            basis=basis,
        )
    if region == "eyebrows":
        return Score(
            key,
            title,
            "synkinesis",
            None,
            "0-3",
            "not graded: the evidence rules test eye-mouth synkinesis only, none for the eyebrows (brow raise)",
            basis=basis,
        )
    pairs = [p for p in findings.synkinesis if _signal_region(p.trigger) == region]
    evidence: dict[str, Any] = {"n_pairs_tested": findings.n_pairs_tested, "pairs": [p.to_json() for p in pairs]}
    if pairs:
        worst = max(pairs, key=synkinesis_severity)
        value = synkinesis_severity(worst)
        what = "share of movement shift" if worst.share_with_trigger is not None else "co-occurrence difference"
        reason = (
            f"{len(pairs)} pair(s) found; strongest: {worst.side} {worst.au} with {worst.trigger}, "
            f"{what} {worst.cross_difference:.2f}, {worst.n_together} of {worst.n_trigger} trigger keyframes, "
            f"corrected p {worst.p_adjusted:.3g} -> {value} ({SYNKINESIS_WORDS[value]})"
        )
        return Score(key, title, "synkinesis", float(value), "0-3", reason, basis=basis, evidence=evidence)
    if findings.n_pairs_tested == 0:
        return Score(
            key,
            title,
            "synkinesis",
            None,
            "0-3",
            "not graded: no pair could be tested (the trigger movement was not seen in enough keyframes)",
            basis=basis,
            evidence=evidence,
        )
    return Score(
        key,
        title,
        "synkinesis",
        0.0,
        "0-3",
        f"none shown among {findings.n_pairs_tested} pair(s) tested; the test is specific but not "
        "sensitive (docs/validity.md): 'not shown', not 'absent'",
        basis=basis,
        evidence=evidence,
    )


def _resting(rest: ExerciseEvidence | None, estimator_is_proxy: bool, dead_band: float) -> Score:
    title = "Resting symmetry"
    if rest is None:
        return Score("resting", title, "resting", None, "0-20", "not graded: no rest exercise was recorded")
    delta = {k: _num(v) for k, v in rest.delta_am.items()}
    evidence = {"delta_am_at_rest": delta, "dead_band": dead_band, "estimator_is_proxy": estimator_is_proxy}
    basis = f"exercise segment {rest.segment_id} (rest)"
    if estimator_is_proxy:
        return Score(
            "resting",
            title,
            "resting",
            None,
            "0-20",
            "not graded: the flow proxy measures movement from the patient's own first frame, so an "
            "asymmetry already present at rest is part of its reference and cannot be seen",
            basis=basis,
            evidence=evidence,
        )
    eye, mouth = delta.get("eyes"), delta.get("mouth")
    if eye is None or mouth is None:
        return Score(
            "resting",
            title,
            "resting",
            None,
            "0-20",
            "not graded: the rest exercise has no ΔAM for the eyes or the mouth",
            basis=basis,
            evidence=evidence,
        )
    points = int(abs(eye) > dead_band) + int(abs(mouth) > dead_band)
    value = 5.0 * points
    reason = (
        f"at rest |ΔAM| eyes {abs(eye):.2f}, mouth {abs(mouth):.2f} against the dead band {dead_band}: "
        f"{points} of eye and mouth asymmetric -> {points} x 5 = {value:.0f} (cheek not measured, taken as 0)"
    )
    return Score("resting", title, "resting", value, "0-20", reason, basis=basis, upper_bound=False, evidence=evidence)


def _composite(movements: list[MovementGrade], resting: Score) -> Score:
    title = "Composite (Sunnybrook-style)"
    graded = [m for m in movements if m.sunnybrook]
    missing = [m.title for m in graded if m.voluntary.value is None]
    if len(graded) < 5 or missing:
        why = ", ".join(missing) if missing else "the five Sunnybrook movements were not recorded as exercises"
        return Score(
            "composite",
            title,
            "composite",
            None,
            "0-100",
            f"not computed: needs a voluntary score for all five Sunnybrook movements; missing: {why}",
        )
    voluntary = 4.0 * sum(float(m.voluntary.value or 0.0) for m in graded)
    syn_missing = [m.title for m in graded if m.synkinesis.value is None]
    synkinesis = sum(float(m.synkinesis.value or 0.0) for m in graded)
    rest = resting.value or 0.0
    value = voluntary - rest - synkinesis
    parts = [
        f"voluntary 4 x {voluntary / 4:.0f} = {voluntary:.0f}",
        f"resting {rest:.0f}" + (" (not measured, taken as 0)" if resting.value is None else ""),
        f"synkinesis {synkinesis:.0f}" + (f" ({', '.join(syn_missing)} not graded, taken as 0)" if syn_missing else ""),
    ]
    upper = resting.value is None or bool(syn_missing)
    reason = " - ".join(parts) + f" = {value:.0f}" + (": an upper bound, parts could not be measured" if upper else "")
    evidence = {
        "voluntary": voluntary,
        "resting": resting.value,
        "synkinesis": synkinesis,
        "synkinesis_not_graded": syn_missing,
    }
    return Score("composite", title, "composite", value, "0-100", reason, upper_bound=upper, evidence=evidence)


def _region_asymmetry(finding: RegionFinding) -> RegionAsymmetry:
    return RegionAsymmetry(
        finding.region,
        finding.status,
        finding.weaker_side,
        finding.weaker_percent,
        finding.weaker_percent_interval,
        finding.asymmetry,
        finding.n_moving,
        finding.reason,
    )


def grade(
    session: Findings,
    exercises: Sequence[ExerciseEvidence] = (),
    *,
    estimator_is_proxy: bool = True,
    dead_band: float = 0.5,
) -> Grades:
    """Scores of one session from its whole-session findings and its exercise segments' findings.

    A movement done more than once is graded on its latest segment that yields a voluntary score
    (else its latest segment). Without any movement segment the regions are graded from the
    whole-session findings (``whole_recording``).
    """
    regions = {name: _region_asymmetry(f) for name, f in session.regions.items()}
    by_exercise: dict[str, list[ExerciseEvidence]] = {}
    for ex in exercises:
        by_exercise.setdefault(ex.exercise, []).append(ex)
    rest_segments = by_exercise.get(REST, [])
    resting = _resting(rest_segments[-1] if rest_segments else None, estimator_is_proxy, dead_band)
    notes = [f"All scores are an {ESTIMATE_LABEL}: they map this product's measurement to a Sunnybrook-style scale."]
    if session.rules != "evidence":
        notes.append("Graded under the paper's rules: no % of the stronger side, so no voluntary scores.")
    movements: list[MovementGrade] = []
    if any(k in by_exercise for k in MOVEMENT_KEYS):
        basis: Basis = "exercises"
        for m in MOVEMENTS:
            segments = by_exercise.get(m.key, [])
            graded = [
                s
                for s in segments
                if _voluntary(m.key, m.title, s.findings.regions.get(m.region), "").value is not None
            ]
            chosen = graded[-1] if graded else (segments[-1] if segments else None)
            if chosen is None:
                none = "not graded: this exercise was not recorded"
                movements.append(
                    MovementGrade(
                        m.key,
                        m.title,
                        m.region,
                        m.sunnybrook,
                        None,
                        None,
                        None,
                        Score(f"{m.key}.voluntary", m.title, "voluntary", None, "1-5", none),
                        Score(f"{m.key}.synkinesis", m.title, "synkinesis", None, "0-3", none),
                    )
                )
                continue
            where = f"exercise segment {chosen.segment_id}" + (
                f" (of {len(segments)} done)" if len(segments) > 1 else ""
            )
            finding = chosen.findings.regions.get(m.region)
            movements.append(
                MovementGrade(
                    m.key,
                    m.title,
                    m.region,
                    m.sunnybrook,
                    finding.weaker_side if finding else None,
                    finding.weaker_percent if finding else None,
                    finding.weaker_percent_interval if finding else None,
                    _voluntary(m.key, m.title, finding, where),
                    _synkinesis(m.key, m.title, chosen.findings, m.region, where),
                )
            )
        composite = _composite(movements, resting)
    else:
        basis = "whole_recording"
        notes.append(
            "No exercise segments: each region is graded from the whole recording's findings, "
            "not per movement; no composite."
        )
        for name, finding in session.regions.items():
            title = REGION_TITLES.get(name, name)
            movements.append(
                MovementGrade(
                    f"region:{name}",
                    title,
                    name,
                    False,
                    finding.weaker_side,
                    finding.weaker_percent,
                    finding.weaker_percent_interval,
                    _voluntary(f"region:{name}", title, finding, "whole recording"),
                    _synkinesis(f"region:{name}", title, session, name, "whole recording"),
                )
            )
        composite = Score(
            "composite",
            "Composite (Sunnybrook-style)",
            "composite",
            None,
            "0-100",
            "not computed: a whole recording without exercise segments does not separate the five Sunnybrook movements",
        )
    return Grades(basis, movements, regions, resting, composite, notes)


# --------------------------------------------------------------------------------------------
# from report.json


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


# --------------------------------------------------------------------------------------------
# trends


@dataclass(frozen=True)
class Change:
    key: str
    title: str
    latest: float | None
    previous: float | None
    first: float | None
    since_previous: float | None
    since_first: float | None

    def to_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def figures(grades: Grades | Mapping[str, Any]) -> dict[str, tuple[str, float | None]]:
    """key -> (title, value) of every number a trend follows: the scores and each region's weaker %.

    ``grades``: ``Grades`` or its JSON form (as stored).
    """
    data = grades.to_json() if isinstance(grades, Grades) else grades
    out: dict[str, tuple[str, float | None]] = {}
    scores = [s for m in data.get("movements", []) for s in (m["voluntary"], m["synkinesis"])]
    for score in [*scores, data["resting"], data["composite"]]:
        kind = {"voluntary": "voluntary 1-5", "synkinesis": "synkinesis 0-3"}.get(score["kind"])
        out[score["key"]] = (f"{score['title']}: {kind}" if kind else score["title"], score["value"])
    for name, region in (data.get("regions") or {}).items():
        out[f"region:{name}.weaker_percent"] = (
            f"{REGION_TITLES.get(name, name)}: weaker side % of stronger",
            region.get("weaker_percent"),
        )
    return out


def changes(history: Sequence[Grades | Mapping[str, Any]]) -> list[Change]:
    """Change of every figure in the latest session since the previous one and since the first.

    ``history`` in time order. A figure missing in a session (not graded) compares with the nearest
    earlier session that has it; a change needs a value at both ends, else it is None.
    """
    if not history:
        return []
    series = [figures(g) for g in history]
    keys: dict[str, str] = {}
    for f in series:
        for k, (title, _) in f.items():
            keys.setdefault(k, title)
    out = []
    for key, title in keys.items():
        values = [f[key][1] if key in f else None for f in series]
        latest = values[-1]
        previous = next((v for v in reversed(values[:-1]) if v is not None), None)
        first = next((v for v in values if v is not None), None)
        if first is not None and latest is not None and values.index(first) == len(values) - 1:
            first = None  # the latest is the first graded one: nothing to compare with
        out.append(
            Change(
                key,
                title,
                latest,
                previous,
                first,
                None if latest is None or previous is None else latest - previous,
                None if latest is None or first is None else latest - first,
            )
        )
    return out


def _float(value: Any) -> float:
    return float("nan") if value is None else float(value)


def _tuple(values: Any) -> tuple[float, float] | None:
    if values is None or any(v is None for v in values):
        return None
    return float(values[0]), float(values[1])


def _num(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def _pair(values: tuple[float, float] | None) -> list[float | None] | None:
    return None if values is None else [_num(values[0]), _num(values[1])]
