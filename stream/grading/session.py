"""One session's grade: the movements of its exercise segments, the composite, or per-region grades.

Chooses, for every movement of the protocol, the exercise segment it is graded on, puts the part
scores (stream/grading/scores.py) together and computes the Sunnybrook-style composite (voluntary -
resting - synkinesis), flagged as an upper bound where parts could not be measured. A recording
without exercise segments (``analyze`` of a video) is graded per region from the whole-clip findings
(basis ``whole_recording``): the movements were not separated, so there is no composite. Pure, no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence

from stream.grading.results import Basis, ExerciseEvidence, Grades, MovementGrade, RegionAsymmetry, Score
from stream.grading.scales import ESTIMATE_LABEL, MOVEMENT_KEYS, MOVEMENTS, REGION_TITLES, REST
from stream.grading.scores import not_graded, score_resting, score_synkinesis, score_voluntary
from stream.symptoms.evidence import Findings, RegionFinding


def _composite(movements: list[MovementGrade], resting: Score) -> Score:
    title = "Composite (Sunnybrook-style)"
    graded = [m for m in movements if m.sunnybrook]
    missing = [m.title for m in graded if m.voluntary.value is None]
    if len(graded) < 5 or missing:
        why = ", ".join(missing) if missing else "the five Sunnybrook movements were not recorded as exercises"
        return not_graded(
            "composite",
            title,
            "composite",
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


def _movement(
    key: str,
    title: str,
    region: str,
    sunnybrook: bool,
    finding: RegionFinding | None,
    voluntary: Score,
    synkinesis: Score,
) -> MovementGrade:
    """One movement's grade: its scores and the region finding (if any) they were read from."""
    return MovementGrade(
        key,
        title,
        region,
        sunnybrook,
        finding.weaker_side if finding else None,
        finding.weaker_percent if finding else None,
        finding.weaker_percent_interval if finding else None,
        voluntary,
        synkinesis,
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
    resting = score_resting(rest_segments[-1] if rest_segments else None, estimator_is_proxy, dead_band)
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
                if score_voluntary(m.key, m.title, s.findings.regions.get(m.region), "").value is not None
            ]
            chosen = graded[-1] if graded else (segments[-1] if segments else None)
            if chosen is None:
                none = "not graded: this exercise was not recorded"
                finding = None
                voluntary = not_graded(f"{m.key}.voluntary", m.title, "voluntary", none)
                synkinesis = not_graded(f"{m.key}.synkinesis", m.title, "synkinesis", none)
            else:
                where = f"exercise segment {chosen.segment_id}" + (
                    f" (of {len(segments)} done)" if len(segments) > 1 else ""
                )
                finding = chosen.findings.regions.get(m.region)
                voluntary = score_voluntary(m.key, m.title, finding, where)
                synkinesis = score_synkinesis(m.key, m.title, chosen.findings, m.region, where)
            movements.append(_movement(m.key, m.title, m.region, m.sunnybrook, finding, voluntary, synkinesis))
        composite = _composite(movements, resting)
    else:
        basis = "whole_recording"
        notes.append(
            "No exercise segments: each region is graded from the whole recording's findings, "
            "not per movement; no composite."
        )
        for name, finding in session.regions.items():
            title = REGION_TITLES.get(name, name)
            key = f"region:{name}"
            voluntary = score_voluntary(key, title, finding, "whole recording")
            synkinesis = score_synkinesis(key, title, session, name, "whole recording")
            movements.append(_movement(key, title, name, False, finding, voluntary, synkinesis))
        composite = not_graded(
            "composite",
            "Composite (Sunnybrook-style)",
            "composite",
            "not computed: a whole recording without exercise segments does not separate the five Sunnybrook movements",
        )
    return Grades(basis, movements, regions, resting, composite, notes)
