"""What a verdict looks like, whichever rules reached it: per region a weaker side or the reason there
is none, per synkinesis pair its counts and p-values.

The evidence rules (``evidence.assess``) and the paper's rules (``paper_findings``, converted from a
``SymptomState``) both end in ``Findings``, so the report, the grading and the validation scorer read
one shape. Every field a clinician sees carries its evidence; ``to_json`` writes NaN as null.

Pure: frozen dataclasses; no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from stream.aus import Side
from stream.session.jsonsafe import finite_or_none, finite_pair

RegionStatus = Literal["weaker_side", "no_clear_difference", "did_not_move", "not_enough_keyframes"]


@dataclass(frozen=True)
class RegionFinding:
    region: str
    status: RegionStatus
    weaker_side: Side | None
    n_keyframes: int
    n_moving: int  # keyframes where the region moved on at least one side
    asymmetry: float | None  # (S_L - S_R) / (S_L + S_R) over moving keyframes; > 0: the left moves more
    asymmetry_interval: tuple[float, float] | None
    weaker_percent: float | None  # the weaker side's movement in % of the stronger side's
    weaker_percent_interval: tuple[float, float] | None
    delta_am: float | None  # mean left-minus-right region activity over moving keyframes (AU units)
    delta_am_interval: tuple[float, float] | None
    reason: str
    # keyframes where the region moved but was not judged: the eyes while the mouth moved too, and the
    # mouth while the eyes moved (a weak side cannot be told from a synkinesis there)
    n_moving_not_judged: int = 0
    # the decision on those keyframes: the region moved enough to be judged, but only with the other
    # region, so it "did not move" on its own and the patient is asked to record it alone
    record_alone: bool = False
    # what the verdict was judged on: "movement" (the region's activity), or "blinks" (the eyes' closure
    # in the keyframes where one eye closed: evidence._in_blinks; n_moving then counts those keyframes)
    basis: Literal["movement", "blinks"] = "movement"

    def to_json(self) -> dict[str, Any]:
        return {
            "region": self.region,
            "status": self.status,
            "weaker_side": self.weaker_side,
            "n_keyframes": self.n_keyframes,
            "n_moving": self.n_moving,
            "asymmetry": finite_or_none(self.asymmetry),
            "asymmetry_interval": finite_pair(self.asymmetry_interval),
            "weaker_percent": finite_or_none(self.weaker_percent),
            "weaker_percent_interval": finite_pair(self.weaker_percent_interval),
            "delta_am": finite_or_none(self.delta_am),
            "delta_am_interval": finite_pair(self.delta_am_interval),
            "reason": self.reason,
            "n_moving_not_judged": self.n_moving_not_judged,
            "record_alone": self.record_alone,
            "basis": self.basis,
        }


@dataclass(frozen=True)
class SynkinesisFinding:
    """AU ``au`` on ``side`` moves with ``trigger`` (active on the other side, or on both)."""

    side: Side
    au: str
    trigger: str
    n_trigger: int  # keyframes with the trigger active on the other side
    n_together: int  # ... of which ``au`` was active on ``side``
    n_other_side: int  # ... of which ``au`` was active on the other side
    episodes: int  # separate runs of keyframes where ``au`` on ``side`` and the trigger were active
    cross_difference: float  # P(au_side | trigger_other) - P(au_other | trigger_other), paper eq. 8-9
    same_side_difference: float  # P(au_side | trigger_side) - P(au_other | trigger_other)
    p_value: float  # one-sided, before the Holm correction (exact McNemar, or bootstrap for movement)
    p_adjusted: float
    # Movement pairs: this side's share of the co-moving region's movement (0..1, 0.5 = even) in the
    # keyframes where the trigger moves, and where it is still; None for AU pairs.
    share_with_trigger: float | None = None
    share_without_trigger: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "side": self.side,
            "au": self.au,
            "trigger": self.trigger,
            "n_trigger": self.n_trigger,
            "n_together": self.n_together,
            "n_other_side": self.n_other_side,
            "episodes": self.episodes,
            "cross_difference": finite_or_none(self.cross_difference),
            "same_side_difference": finite_or_none(self.same_side_difference),
            "share_with_trigger": finite_or_none(self.share_with_trigger),
            "share_without_trigger": finite_or_none(self.share_without_trigger),
            "p_value": finite_or_none(self.p_value),
            "p_adjusted": finite_or_none(self.p_adjusted),
        }


@dataclass(frozen=True)
class Findings:
    rules: str
    regions: dict[str, RegionFinding]
    synkinesis: list[SynkinesisFinding]
    n_pairs_tested: int
    warnings: list[str] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def synkinesis_detected(self) -> bool:
        return bool(self.synkinesis)

    def to_json(self) -> dict[str, Any]:
        return {
            "rules": self.rules,
            "regions": {name: r.to_json() for name, r in self.regions.items()},
            "synkinesis": {
                "detected": self.synkinesis_detected,
                "n_pairs_tested": self.n_pairs_tested,
                "pairs": [s.to_json() for s in self.synkinesis],
            },
            "warnings": list(self.warnings),
            "settings": dict(self.settings),
        }


def paper_findings(state: Any) -> Findings:
    """The paper's verdicts (dead band on ΔAM, |difference| > threshold) in the findings shape."""
    regions = {}
    for name, region in state.regions.items():
        status: RegionStatus = "weaker_side" if region.weaker_side else "no_clear_difference"
        reason = (
            f"|ΔAM| = {abs(region.delta_am):.2f} "
            f"{'>' if region.weaker_side else '<='} {state.asymmetry_threshold} (paper's dead band)"
        )
        regions[name] = RegionFinding(
            name,
            status,
            region.weaker_side,
            state.n_frames,
            state.n_frames,
            None,
            None,
            None,
            None,
            region.delta_am,
            None,
            reason,
        )
    pairs = []
    for pair in state.synkinesis_pairs:
        side: Side = "right" if pair.matrix.startswith("right") else "left"
        pairs.append(
            SynkinesisFinding(
                side, pair.row, pair.col, 0, 0, 0, 0, pair.value, float("nan"), float("nan"), float("nan")
            )
        )
    return Findings(
        "paper",
        regions,
        pairs,
        int(np.asarray(state.mask).sum()) * 2,
        [],
        {
            "asymmetry_threshold": state.asymmetry_threshold,
            "cooccurrence_threshold": state.cooccurrence_threshold,
            "normal_threshold": state.normal_threshold,
        },
    )
