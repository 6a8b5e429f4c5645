"""Findings a clinician can believe: each verdict carries its evidence or says why there is none.

The paper's rules (a dead band on ΔAM, |co-occurrence difference| > 0.3) were written for a trained
AU model on long clinical recordings. On a proxy estimator and a one-minute clip they name a weaker
side and dozens of synkinesis pairs on healthy faces (docs/validity.md has the figures), so the
default rules ("evidence") ask more of the data before stating a finding:

* **Muscle function, per region.** Only keyframes where the region moved on at least one side count.
  The asymmetry index ``(S_L - S_R) / (S_L + S_R)`` of the summed region activity over those
  keyframes is symmetric under a left-right swap (a mirrored video gives exactly the opposite
  number) and does not depend on how strongly a patient moves; ``1 - |index|`` over ``1 + |index|`` is
  the weaker side's movement in % of the stronger side's, the way clinicians grade. A moving-block
  bootstrap over time gives its interval. A weaker side is named only when the interval excludes 0
  and the index exceeds what healthy faces show (``healthy_asymmetry``, measured with
  ``python -m stream validate``); otherwise the verdict says which of "did not move", "not enough
  keyframes" or "no clear difference" holds.
* **Synkinesis, per pair.** The clinically graded patterns join the eye and the mouth (eye narrowing or
  closing while the mouth moves, the mouth corner moving while the eyes close), so pairs are taken
  between those regions only, minus pairs that co-occur in healthy faces (the normal matrix). A
  pair "AU_i on side S moves with AU_j" needs all of: the paper's cross-side difference
  ``P(i_S | j_S') - P(i_S' | j_S')`` above the threshold; the same contrast within each side
  ``P(i_S | j_S) - P(i_S' | j_S')`` above it too (a weak side scales both of its AUs down together and
  does not pass this, a synkinetic side does); enough co-activations in at least two separate
  episodes; and an exact McNemar test on the discordant keyframes that stays significant after a
  Holm correction over every pair tested. Every pair carries its counts.

This module applies them (``assess``); ``rules`` holds the thresholds, ``regions`` the muscle-function
verdicts, ``synkinesis`` the pair tests, ``findings`` the result types (and the paper's verdicts in
that shape), ``material`` the warnings about the recording. The names callers use are importable
from here.

Pure: arrays in, frozen dataclasses out; no I/O.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from stream.aus import AU_INDEX, AU_NAMES, EYE_CLOSURE
from stream.symptoms.findings import Findings, RegionFinding, RegionStatus, SynkinesisFinding, paper_findings
from stream.symptoms.material import material_warnings
from stream.symptoms.regions import moved, region_from_aus, region_verdict, voluntary_rows
from stream.symptoms.rules import (
    EVIDENCE_REGION_NAMES,
    EVIDENCE_REGIONS,
    EYE_SIGNALS,
    MIDLINE_SIGNALS,
    MOUTH_SIGNALS,
    RULES,
    EvidenceRules,
)
from stream.symptoms.series import count_episodes, running_median
from stream.symptoms.synkinesis import au_synkinesis, movement_synkinesis

__all__ = [
    "EVIDENCE_REGIONS",
    "EVIDENCE_REGION_NAMES",
    "EYE_SIGNALS",
    "MIDLINE_SIGNALS",
    "MOUTH_SIGNALS",
    "RULES",
    "EvidenceRules",
    "Findings",
    "RegionFinding",
    "RegionStatus",
    "SynkinesisFinding",
    "assess",
    "material_warnings",
    "paper_findings",
    "running_median",
    "signals",
]


def signals(
    left: np.ndarray, right: np.ndarray, closure: np.ndarray | None
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Per side, name -> (n,) series: the 12 AUs and, when measured, eye closure (``closure``: (n, 2) left, right)."""
    out: tuple[dict[str, np.ndarray], dict[str, np.ndarray]] = ({}, {})
    for s, values in enumerate((np.asarray(left, float), np.asarray(right, float))):
        for name in AU_NAMES:
            out[s][name] = values[:, AU_INDEX[name]]
        if closure is not None:
            out[s][EYE_CLOSURE] = np.asarray(closure, float)[:, s]
    return out


def assess(
    left: np.ndarray,
    right: np.ndarray,
    normal: np.ndarray,
    *,
    closure: np.ndarray | None = None,
    movement: np.ndarray | None = None,
    context: np.ndarray | None = None,
    rules: EvidenceRules | None = None,
) -> Findings:
    """Region verdicts and synkinesis findings under the evidence rules.

    ``left``/``right``: (n, 12) AU series in ``AU_NAMES`` order; ``closure``: (n, 2) eye closure
    (left, right) on the same 0..5 scale, or None where not measured; ``movement``: (n, 2, 3)
    direction-free movement of brows, eyes and mouth (left, right), which the region verdicts use
    instead of the AU sums when the estimator measures it; ``normal``: 12x12 normal
    co-occurrence matrix; ``context``: (n,) exercise name per keyframe (None/"" unknown), which
    restricts eye-given-mouth pairs to mouth exercises and mouth-given-eye pairs to eye closures.
    """
    rules = rules or EvidenceRules()
    raw_left = np.asarray(left, float).reshape(-1, len(AU_NAMES))
    raw_right = np.asarray(right, float).reshape(-1, len(AU_NAMES))
    # each side's mouth corner lift, unsmoothed like the movement the synkinesis tests read
    corner_lift = np.stack([raw_left[:, AU_INDEX["AU12"]], raw_right[:, AU_INDEX["AU12"]]], axis=1)
    left = running_median(raw_left, rules.smooth)
    right = running_median(raw_right, rules.smooth)
    n = len(left)
    raw_closure = raw_movement = None
    if closure is not None:
        raw_closure = np.asarray(closure, float).reshape(n, 2)
        closure = running_median(raw_closure, rules.smooth)
    sig_l, sig_r = signals(left, right, closure)
    if movement is not None:
        raw_movement = np.asarray(movement, float).reshape(n, 2, len(EVIDENCE_REGIONS))
        movement = running_median(raw_movement, rules.smooth)
        regions = {}
        for k, name in enumerate(EVIDENCE_REGIONS):
            rows = voluntary_rows(movement, k, rules)
            note = "" if rows.all() else _GATE[k][0]
            found = region_verdict(name, movement[rows, 0, k], movement[rows, 1, k], n, rules, note, rows)
            regions[name] = _with_unjudged(found, movement, k, rows, rules)
    else:
        regions = {name: region_from_aus(name, aus, sig_l, sig_r, n, rules) for name, aus in EVIDENCE_REGIONS.items()}
    if raw_closure is not None and "eyes" in regions:
        regions["eyes"] = _unless_lids_meet(_in_blinks(regions["eyes"], raw_closure, n, rules), raw_closure, rules)
    synkinesis: list[SynkinesisFinding] = []
    tested = 0
    if n >= rules.min_keyframes and raw_movement is not None:
        # Unsmoothed: a held eye closure may span only two or three keyframes (the keyframe filter keeps
        # changes, not stillness), which a running median would erase; the effect is a mean over the
        # trigger keyframes, so one keyframe's error weighs little there.
        synkinesis, tested = movement_synkinesis(raw_movement, context, rules, regions, raw_closure, corner_lift)
    elif n >= rules.min_keyframes:
        synkinesis, tested = au_synkinesis(sig_l, sig_r, normal, context, rules, rules.active_threshold, regions)
    settings = {k: getattr(rules, k) for k in rules.__dataclass_fields__}
    return Findings("evidence", regions, synkinesis, tested, [], settings)


# The gate of ``regions.voluntary_rows`` in words, per gated region (eyes 1, mouth 2): the keyframes it
# judges, the ones it leaves out, and what a patient can record so that the verdict has its movement alone.
_GATE = {
    1: (" while the mouth was still", "the mouth moved too", "close the eyes with the mouth at rest"),
    2: (" while the eyes were still", "the eyes moved too", "smile with the eyes open"),
}


def _in_blinks(found: RegionFinding, closure: np.ndarray, n: int, rules: EvidenceRules) -> RegionFinding:
    """The eyes' verdict from the blinks, where the movement names no weaker eye.

    In a blink (a keyframe where one eye closes to ``complete_closure`` or more) a healthy face
    closes both eyes; a palsied eye closes less or not at all. Blinks need no still mouth (a
    synkinesis makes an eye close *more*, and an eye that itself closes completely is not named:
    ``_unless_lids_meet``), so they judge the eyes of a patient who talks all the time. The same
    rules as any region (10 blink keyframes in 2 episodes, the interval, the healthy limit) on the
    unsmoothed closure (n, 2): a blink spans one to three keyframes.
    """
    if found.weaker_side is not None:
        return found
    blinks = closure.max(axis=1) >= rules.complete_closure
    if not blinks.any():
        return found
    c = closure[blinks]
    by_blinks = region_verdict("eyes", c[:, 0], c[:, 1], n, rules, " in blinks", blinks)
    if by_blinks.weaker_side is None:
        if found.status == "no_clear_difference" or by_blinks.status != "no_clear_difference":
            return found
        # the eyes hardly moved with the mouth still, but they were judged in the blinks
        reason = f"in {by_blinks.n_moving} blink keyframes: {by_blinks.reason}"
        return replace(by_blinks, reason=reason, n_moving_not_judged=found.n_moving_not_judged, basis="blinks")
    lo, hi = by_blinks.weaker_percent_interval or (float("nan"), float("nan"))
    reason = (
        f"the {by_blinks.weaker_side} eye's lids do not meet: in {by_blinks.n_moving} keyframes where the other "
        f"eye closed, it closed {by_blinks.weaker_percent:.0f} % as far ({rules.confidence:.0%} interval "
        f"{lo:.0f}-{hi:.0f} %)"
    )
    return replace(by_blinks, reason=reason, n_moving_not_judged=found.n_moving_not_judged, basis="blinks")


def _unless_lids_meet(found: RegionFinding, closure: np.ndarray, rules: EvidenceRules) -> RegionFinding:
    """The eyes' verdict, unless the eye it names weaker closes completely in separate blinks.

    The weak eye of a facial palsy is the one whose lids do not meet (the risk to the cornea). An eye
    that closes completely, again and again, moves less than the other only in partial narrowing, and
    that difference is as much the other eye narrowing with the mouth (a synkinesis, tested next) as
    this eye's weakness: the lid aperture cannot tell the two apart, so no side is named. Unsmoothed
    ``closure`` (n, 2): a blink spans one to three keyframes, which a running median would erase.
    """
    if found.weaker_side is None:
        return found
    s = 0 if found.weaker_side == "left" else 1
    blinks = count_episodes(closure[:, s] >= rules.complete_closure)
    if blinks < rules.min_episodes:
        return found
    reason = (
        f"the {found.weaker_side} eye moved less ({found.weaker_percent:.0f} % of the other), but its lids met "
        f"in {blinks} separate blinks, which a weak eye's cannot: the difference is in partial narrowing, where "
        "a weak side cannot be told from the other eye narrowing with the mouth (see synkinesis)"
    )
    return replace(found, status="no_clear_difference", weaker_side=None, reason=reason)


def _with_unjudged(
    found: RegionFinding, movement: np.ndarray, k: int, rows: np.ndarray, rules: EvidenceRules
) -> RegionFinding:
    """The finding with the keyframes where the region moved outside ``rows`` counted and, where those
    would have been enough to judge, the reason saying what to record instead of "did not move"."""
    if k not in _GATE:
        return found
    outside = moved(movement[~rows, 0, k], movement[~rows, 1, k], rules)
    unjudged = int(outside.sum())
    if unjudged == 0:
        return found
    record_alone = found.status == "did_not_move" and found.n_moving + unjudged >= rules.min_moving
    reason = found.reason
    if record_alone:
        _, while_other, ask = _GATE[k]
        reason = (
            f"{reason}; it moved in {unjudged} more while {while_other}, where a weak side cannot be told from "
            f"a synkinesis: record it alone ({ask})"
        )
    return replace(found, reason=reason, n_moving_not_judged=unjudged, record_alone=record_alone)
