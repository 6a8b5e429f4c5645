"""The 12 facial action units of DISFA/DISFA+ and the paper's facial regions (Table 2).

Sides are always the *patient's* anatomical sides: ``left`` is the patient's left.
"""

from __future__ import annotations

from typing import Final, Literal

AU_NAMES: Final[tuple[str, ...]] = (
    "AU1",
    "AU2",
    "AU4",
    "AU5",
    "AU6",
    "AU9",
    "AU12",
    "AU15",
    "AU17",
    "AU20",
    "AU25",
    "AU26",
)
N_AUS: Final[int] = len(AU_NAMES)
AU_INDEX: Final[dict[str, int]] = {name: i for i, name in enumerate(AU_NAMES)}

Side = Literal["left", "right"]
SIDES: Final[tuple[Side, Side]] = ("left", "right")

# Regions for muscle-function (asymmetry) detection, 10 of the 12 AUs (paper, Table 2).
REGIONS: Final[dict[str, tuple[str, ...]]] = {
    "eyebrows": ("AU1", "AU2", "AU4"),
    "eyes": ("AU5", "AU6"),
    "mouth": ("AU12", "AU15", "AU17", "AU20", "AU25"),
}

MAX_INTENSITY: Final[float] = 5.0

# FACS AU43 "eyes closed": measured per side next to the 12 AUs (the paper's eye region, AU5 and AU6,
# misses the main eye sign of facial palsy, lids that do not close). Same 0..5 scale.
EYE_CLOSURE: Final[str] = "AU43"
