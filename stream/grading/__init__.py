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

The package, one concept a module:

* ``scales``: the movements and the bands that map a measurement to a score;
* ``results``: the score records and their JSON form;
* ``scores``: the part scores (voluntary, synkinesis, resting);
* ``session``: one session's grade and its composite (``grade``);
* ``report``: grading a stored report.json (``grade_report``);
* ``trends``: changes between sessions (``changes``).
"""

from __future__ import annotations

from stream.grading.report import findings_from_json, grade_report
from stream.grading.results import (
    Basis,
    ExerciseEvidence,
    Grades,
    MovementGrade,
    RegionAsymmetry,
    Score,
    ScoreKind,
    region_figure,
    stored_scores,
)
from stream.grading.scales import (
    ESTIMATE_LABEL,
    MOVEMENT_KEYS,
    MOVEMENTS,
    REGION_TITLES,
    REST,
    SYNKINESIS_BANDS_AU,
    SYNKINESIS_BANDS_MOVEMENT,
    SYNKINESIS_WORDS,
    VOLUNTARY_BANDS,
    VOLUNTARY_WORDS,
    Movement,
    synkinesis_severity,
    voluntary_score,
)
from stream.grading.session import grade
from stream.grading.trends import Change, changes, figures

__all__ = [
    "ESTIMATE_LABEL",
    "MOVEMENTS",
    "MOVEMENT_KEYS",
    "REGION_TITLES",
    "REST",
    "SYNKINESIS_BANDS_AU",
    "SYNKINESIS_BANDS_MOVEMENT",
    "SYNKINESIS_WORDS",
    "VOLUNTARY_BANDS",
    "VOLUNTARY_WORDS",
    "Basis",
    "Change",
    "ExerciseEvidence",
    "Grades",
    "Movement",
    "MovementGrade",
    "RegionAsymmetry",
    "Score",
    "ScoreKind",
    "changes",
    "figures",
    "findings_from_json",
    "grade",
    "grade_report",
    "region_figure",
    "stored_scores",
    "synkinesis_severity",
    "voluntary_score",
]
