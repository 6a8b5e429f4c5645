"""The Sunnybrook-style scales: which movements are graded and how a measurement maps to a score.

Kept apart from the code that applies them so that docs/grading.md and this file can be read side
by side: every band, every word and every movement of the guided protocol is here, and nowhere
else. Pure, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from stream.symptoms.evidence import EYE_SIGNALS, MOUTH_SIGNALS, SynkinesisFinding

ESTIMATE_LABEL: Final[str] = "estimate, not a clinical grade"


@dataclass(frozen=True)
class Movement:
    key: str  # exercise key of the protocol (stream/session/exercises.py)
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


def voluntary_score(percent: float) -> int:
    """Weaker side's % of the stronger -> 1..5 (``VOLUNTARY_BANDS``)."""
    return 1 + sum(percent >= b for b in VOLUNTARY_BANDS)


def synkinesis_severity(pair: SynkinesisFinding) -> int:
    """1..3 from a found pair's effect (``SYNKINESIS_BANDS_*``)."""
    bands = SYNKINESIS_BANDS_MOVEMENT if pair.share_with_trigger is not None else SYNKINESIS_BANDS_AU
    return 1 + sum(pair.cross_difference >= b for b in bands)


def signal_region(name: str) -> str | None:
    """The region ("eyes", "mouth") a synkinesis trigger signal belongs to; None for any other."""
    if name in EYE_SIGNALS:
        return "eyes"
    if name in MOUTH_SIGNALS:
        return "mouth"
    return None
