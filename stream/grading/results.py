"""What grading produces: scores that carry their evidence and the sentence that explains them.

Typed frozen records shared by the part scores, the session grade, the trends and the exports
(stream/export.py), each with the JSON form that is stored and reported. A separate module because
every other grading module builds or reads them. Pure, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from stream.grading.scales import ESTIMATE_LABEL, REGION_TITLES
from stream.session.jsonsafe import finite_or_none, finite_pair
from stream.symptoms.evidence import Findings

ScoreKind = Literal["voluntary", "synkinesis", "resting", "composite"]
Basis = Literal["exercises", "whole_recording"]


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
            "weaker_percent": finite_or_none(self.weaker_percent),
            "weaker_percent_interval": finite_pair(self.weaker_percent_interval),
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
            "weaker_percent": finite_or_none(self.weaker_percent),
            "weaker_percent_interval": finite_pair(self.weaker_percent_interval),
            "asymmetry": finite_or_none(self.asymmetry),
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
        """Every score, in a stable order (the export's rows; ``stored_scores`` for the JSON form)."""
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


def stored_scores(grades: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The score objects of a stored ``Grades.to_json()``, in the order of ``Grades.scores()``."""
    scores = [s for m in grades.get("movements", []) for s in (m["voluntary"], m["synkinesis"])]
    return [*scores, grades["resting"], grades["composite"]]


def region_figure(name: str) -> tuple[str, str]:
    """Key and title of a region's weaker-side % among a session's figures (trends and exports)."""
    return f"region:{name}.weaker_percent", f"{REGION_TITLES.get(name, name)}: weaker side % of stronger"


@dataclass(frozen=True)
class ExerciseEvidence:
    """One exercise segment: its findings and the paper's ΔAM per region (left minus right, AU units)."""

    exercise: str
    segment_id: int
    findings: Findings
    delta_am: Mapping[str, float | None] = field(default_factory=dict)
