"""The thresholds of the evidence rules and the signals they group, in one place.

Region verdicts (``regions``), synkinesis tests (``synkinesis``), material warnings (``material``)
and the configuration all read the same ``EvidenceRules``; keeping them apart from the code that
applies them lets each of those modules import them without importing one another. The defaults
are measured with the validation harness (docs/validity.md).

Pure: constants and a frozen dataclass; no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from stream.aus import EYE_CLOSURE, REGIONS

RULES: Final[tuple[str, ...]] = ("evidence", "paper")

# facial palsy that matters most: the weak side's lids do not close).
EVIDENCE_REGIONS: Final[dict[str, tuple[str, ...]]] = {
    "eyebrows": REGIONS["eyebrows"],
    "eyes": (*REGIONS["eyes"], EYE_CLOSURE),
    "mouth": REGIONS["mouth"],
}
EVIDENCE_REGION_NAMES: Final[tuple[str, ...]] = tuple(EVIDENCE_REGIONS)
# Synkinesis groups: eye AUs and mouth AUs (oral-ocular and ocular-oral synkinesis). Lips apart, jaw
# drop and chin raise move midline structures: they can trigger a synkinesis but cannot be the
# one-sided movement itself (their per-side values differ only by measurement error).
EYE_SIGNALS: Final[tuple[str, ...]] = ("AU5", "AU6", EYE_CLOSURE, "eyes")
MOUTH_SIGNALS: Final[tuple[str, ...]] = ("AU9", "AU12", "AU15", "AU20", "AU17", "AU25", "AU26", "mouth")
MIDLINE_SIGNALS: Final[tuple[str, ...]] = ("AU17", "AU25", "AU26")


@dataclass(frozen=True)
class EvidenceRules:
    """Thresholds of the evidence rules; defaults measured with the validation harness (docs/validity.md)."""

    # Running median over this many keyframes before any decision: one keyframe's flow error (a blink
    # half-caught, a glasses reflection) must not count as a movement or a co-activation.
    smooth: int = 3
    min_keyframes: int = 10  # fewer keyframes in the whole analysis: no verdict at all
    min_moving: int = 10  # fewer keyframes where the region moved: "did not move"
    move_threshold: float = 1.5  # region activity (movement or AU sum, stronger side) that counts as moving
    healthy_asymmetry: float = 0.4  # |asymmetry index| healthy faces stay within (weaker side >= 43 %)
    confidence: float = 0.95
    n_boot: int = 1000
    seed: int = 0
    active_threshold: float = 0.5  # an AU is active above this (paper eq. 4-5)
    cooccurrence_threshold: float = 0.3  # minimum co-occurrence difference (paper eq. 8-9)
    normal_threshold: float = 0.5  # pairs co-occurring above this in normal faces are not tested
    min_cooccurrences: int = 4  # keyframes with both AUs active
    min_episodes: int = 2  # separate runs of movement (a region) or of co-activation (a synkinesis pair)
    # Movement pairs: how much more one side moves than the other with the trigger than without it,
    # in units of the region's large movement (its 90th percentile): 0.3 is a third of it.
    synkinesis_shift: float = 0.3
    # The same for the mouth corner's lift (AU12) while the eyes close (docs/validity.md, item 13).
    corner_shift: float = 0.2
    # A trigger is a deliberate movement (a broad smile, a firm eye closure), as in the exercises where
    # clinicians grade synkinesis; talking and blinking stay below it.
    trigger_threshold: float = 2.5
    closure_trigger: float = 3.0  # eye closure (AU43, 0..5) on both sides that makes an eye-closure trigger
    # Eye closure (0..5) where the lids meet: a keyframe where one eye closes this far is a blink, in
    # which the eyes are judged when their movement names no side; an eye that closes this far in
    # ``min_episodes`` separate blinks is not named the weaker eye (a weak eye's lids do not meet;
    # docs/validity.md, item 11).
    complete_closure: float = 4.0
    # Eye closure with the mouth (the synkinesis test of stream/symptoms/synkinesis.py): an eye counts
    # as closing from ``eye_closed`` (half shut) and the other as open up to ``eye_open``.
    eye_closed: float = 2.5
    eye_open: float = 1.0
    alpha: float = 0.05  # family-wise error over all pairs tested (Holm)
