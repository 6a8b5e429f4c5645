"""What a constructed case is: its kind, side, region and kept motion, and when synkinesis happens.

``CaseSpec`` names one construction and refuses what cannot be constructed; ``Episode`` and
``episodes`` give the synthetic synkinesis episodes of a clip, whose envelope is the ground truth
the validation harness scores against. Pure, no frames.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stream.validate.construct.geometry import smoothstep

KINDS = ("freeze", "damp", "synkinesis_eye_on_smile", "synkinesis_mouth_on_eye_closure")
SIDES = ("left", "right")
REGIONS = ("face", "eyebrows", "eyes", "mouth")

# Synkinesis episodes (seconds): three of them at 20 %, 50 % and 80 % of the clip.
EPISODE_CENTRES = (0.2, 0.5, 0.8)
EPISODE_RISE_S, EPISODE_HOLD_S, EPISODE_FALL_S = 0.3, 0.9, 0.3
EPISODE_S = EPISODE_RISE_S + EPISODE_HOLD_S + EPISODE_FALL_S


@dataclass(frozen=True)
class CaseSpec:
    """One constructed case. ``side`` is the patient's side; ``factor`` the fraction of motion kept.

    ``region`` and ``factor`` apply to freeze/damp only (freeze forces factor 0). For synkinesis,
    ``side`` is the eye that closes (``eye_on_smile``) or the mouth corner that rises
    (``mouth_on_eye_closure``).
    """

    kind: str
    side: str
    region: str = "face"
    factor: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"CaseSpec kind {self.kind!r} is not one of {KINDS}")
        if self.side not in SIDES:
            raise ValueError(f"CaseSpec side {self.side!r} is not one of {SIDES} (the patient's side)")
        if self.region not in REGIONS:
            raise ValueError(f"CaseSpec region {self.region!r} is not one of {REGIONS}")
        if not 0.0 <= self.factor <= 1.0:
            raise ValueError(f"CaseSpec factor {self.factor} is outside [0, 1] (the fraction of motion kept)")
        if self.kind == "freeze" and self.factor != 0.0:
            raise ValueError(f"CaseSpec freeze keeps no motion: factor must be 0, got {self.factor} (use kind 'damp')")

    @property
    def is_synkinesis(self) -> bool:
        return self.kind.startswith("synkinesis")

    @property
    def name(self) -> str:
        """Short stable name for file names and tables, e.g. ``damp0.35_left_mouth``."""
        if self.is_synkinesis:
            return f"{self.kind}_{self.side}"
        kind = "freeze" if self.kind == "freeze" else f"damp{self.factor:g}"
        return f"{kind}_{self.side}_{self.region}"


@dataclass(frozen=True)
class Episode:
    """One synkinesis episode (seconds from the clip start): rise, hold, fall."""

    start_s: float
    rise_s: float
    hold_s: float
    fall_s: float

    @property
    def end_s(self) -> float:
        return self.start_s + self.rise_s + self.hold_s + self.fall_s

    def weight(self, time_s: float) -> float:
        t = time_s - self.start_s
        if t <= 0.0 or time_s >= self.end_s:
            return 0.0
        if t < self.rise_s:
            return float(smoothstep(np.float64(t / self.rise_s)))
        t -= self.rise_s
        if t <= self.hold_s:
            return 1.0
        t -= self.hold_s
        return float(smoothstep(np.float64(1.0 - t / self.fall_s)))


def episodes(fps: float, n_frames: int) -> tuple[Episode, ...]:
    """The three episodes of a clip: centred at 20/50/80 % of it, 1.5 s long, shortened below 6 s.

    Below 6 s the episodes scale to a quarter of the clip each, which keeps a gap between them
    (centres are 30 % apart) and leaves time at rest before the first one.
    """
    if fps <= 0 or n_frames <= 0:
        raise ValueError(f"episodes need fps > 0 and n_frames > 0, got fps={fps}, n_frames={n_frames}")
    duration = n_frames / fps
    scale = min(1.0, 0.25 * duration / EPISODE_S)
    length = EPISODE_S * scale
    return tuple(
        Episode(c * duration - length / 2.0, EPISODE_RISE_S * scale, EPISODE_HOLD_S * scale, EPISODE_FALL_S * scale)
        for c in EPISODE_CENTRES
    )
