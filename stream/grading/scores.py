"""The part scores of one movement or recording: voluntary 1-5, synkinesis 0-3, resting symmetry 0-20.

Each turns one piece of evidence (a region's verdict, the synkinesis pairs found during a movement,
the ΔAM at rest) into a ``Score`` with the sentence that says how it was reached, or into a ``None``
value with the reason it could not be graded: never a guess. Separate from the session's grade
(stream/grading/session.py), which chooses the segment each part is graded on. Pure, no I/O.
"""

from __future__ import annotations

import math
from typing import Any

from stream.aus import EYE_CLOSURE
from stream.grading.results import ExerciseEvidence, Score, ScoreKind
from stream.grading.scales import SYNKINESIS_WORDS, VOLUNTARY_WORDS, signal_region, synkinesis_severity, voluntary_score
from stream.session.jsonsafe import finite_or_none, finite_pair
from stream.symptoms.evidence import Findings, RegionFinding

SCALES: dict[ScoreKind, str] = {"voluntary": "1-5", "synkinesis": "0-3", "resting": "0-20", "composite": "0-100"}


def not_graded(
    key: str, title: str, kind: ScoreKind, reason: str, basis: str = "", evidence: dict[str, Any] | None = None
) -> Score:
    """A score left without a value on its kind's scale; ``reason`` says why."""
    return Score(
        key, title, kind, None, SCALES[kind], reason, basis=basis, evidence={} if evidence is None else evidence
    )


def score_voluntary(key: str, title: str, finding: RegionFinding | None, basis: str) -> Score:
    key = f"{key}.voluntary"
    if finding is None:
        return not_graded(key, title, "voluntary", "no verdict for this region", basis)
    evidence = {
        "status": finding.status,
        "weaker_side": finding.weaker_side,
        "weaker_percent": finite_or_none(finding.weaker_percent),
        "weaker_percent_interval": finite_pair(finding.weaker_percent_interval),
        "n_moving": finding.n_moving,
        "n_keyframes": finding.n_keyframes,
        "finding": finding.reason,
    }
    if finding.status == "not_enough_keyframes":
        return not_graded(key, title, "voluntary", f"not graded: {finding.reason}", basis, evidence)
    if finding.status == "did_not_move":
        if finding.record_alone:
            words = f"not graded: {finding.reason}"  # it moved, but with the other region (the reason says)
        else:
            words = f"not graded: neither side moved enough ({finding.reason}); was the movement done?"
        return not_graded(key, title, "voluntary", words, basis, evidence)
    percent, interval = finding.weaker_percent, finding.weaker_percent_interval
    if percent is None or interval is None or not math.isfinite(percent):
        return not_graded(
            key,
            title,
            "voluntary",
            "not graded: these rules give no % of the stronger side (the evidence rules do)",
            basis,
            evidence,
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


def score_synkinesis(key: str, title: str, findings: Findings | None, region: str, basis: str) -> Score:
    """Synkinesis during a movement of ``region``: pairs whose trigger is that region."""
    key = f"{key}.synkinesis"
    if findings is None:
        return not_graded(key, title, "synkinesis", "no findings for this movement", basis)
    if findings.rules != "evidence":
        return not_graded(
            key,
            title,
            "synkinesis",
            "not graded: the paper's pairs carry no tested effect (use the evidence rules)",
            basis,
        )
    if region == "eyebrows":
        return not_graded(
            key,
            title,
            "synkinesis",
            "not graded: the evidence rules test eye-mouth synkinesis only, none for the eyebrows (brow raise)",
            basis,
        )
    pairs = [p for p in findings.synkinesis if signal_region(p.trigger) == region]
    evidence: dict[str, Any] = {"n_pairs_tested": findings.n_pairs_tested, "pairs": [p.to_json() for p in pairs]}
    if pairs:
        worst = max(pairs, key=synkinesis_severity)
        value = synkinesis_severity(worst)
        if worst.share_with_trigger is not None:
            what = "share of movement shift"
        elif worst.au == EYE_CLOSURE:
            what = "difference of one-eye closures per trigger keyframe"
        else:
            what = "co-occurrence difference"
        reason = (
            f"{len(pairs)} pair(s) found; strongest: {worst.side} {worst.au} with {worst.trigger}, "
            f"{what} {worst.cross_difference:.2f}, {worst.n_together} of {worst.n_trigger} trigger keyframes, "
            f"corrected p {worst.p_adjusted:.3g} -> {value} ({SYNKINESIS_WORDS[value]})"
        )
        return Score(key, title, "synkinesis", float(value), "0-3", reason, basis=basis, evidence=evidence)
    if findings.n_pairs_tested == 0:
        return not_graded(
            key,
            title,
            "synkinesis",
            "not graded: no pair could be tested (the trigger movement was not seen in enough keyframes)",
            basis,
            evidence,
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


def score_resting(rest: ExerciseEvidence | None, estimator_is_proxy: bool, dead_band: float) -> Score:
    title = "Resting symmetry"
    if rest is None:
        return not_graded("resting", title, "resting", "not graded: no rest exercise was recorded")
    delta = {k: finite_or_none(v) for k, v in rest.delta_am.items()}
    evidence = {"delta_am_at_rest": delta, "dead_band": dead_band, "estimator_is_proxy": estimator_is_proxy}
    basis = f"exercise segment {rest.segment_id} (rest)"
    if estimator_is_proxy:
        return not_graded(
            "resting",
            title,
            "resting",
            "not graded: the flow proxy measures movement from the patient's own first frame, so an "
            "asymmetry already present at rest is part of its reference and cannot be seen",
            basis,
            evidence,
        )
    eye, mouth = delta.get("eyes"), delta.get("mouth")
    if eye is None or mouth is None:
        return not_graded(
            "resting",
            title,
            "resting",
            "not graded: the rest exercise has no ΔAM for the eyes or the mouth",
            basis,
            evidence,
        )
    points = int(abs(eye) > dead_band) + int(abs(mouth) > dead_band)
    value = 5.0 * points
    reason = (
        f"at rest |ΔAM| eyes {abs(eye):.2f}, mouth {abs(mouth):.2f} against the dead band {dead_band}: "
        f"{points} of eye and mouth asymmetric -> {points} x 5 = {value:.0f} (cheek not measured, taken as 0)"
    )
    return Score("resting", title, "resting", value, "0-20", reason, basis=basis, upper_bound=False, evidence=evidence)
