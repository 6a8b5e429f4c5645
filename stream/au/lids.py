"""Eye closure per side from the lid aperture: how much of the eye opening is still visible.

Optical flow cannot follow a closing eye well: the iris and sclera do not move down, they disappear
under the lid, and the flow of vanishing texture is noise. What does change reliably is how tall the
dark band of the open eye (iris, pupil, lash line) is. On each aligned half-face the eye centre sits
at the template's eye point, so one fixed window serves every face and both sides: per column, the
number of pixels darker than a threshold set between the eye's darkest pixels and the skin below it,
and the median over the columns, is the aperture in template pixels.

The aperture is read against the patient's *own* open eye: the running median of that side's
apertures over the session so far (a patient's eyes are open most of the time, so the median is the
open eye even if the first keyframe caught a blink). Closure is ``1 - aperture / open`` on 0..5 (5 =
closed), and the eye movement is ``|1 - aperture / open|`` (closing or widening) on the same scale.

Pure: arrays in, arrays out.
"""

from __future__ import annotations

import numpy as np

# Windows in half-face template pixels (512 x 256, eye centre at (192, 200), midline on the right edge).
BAND_Y = (180, 222)  # from above the open upper lid to below the lower lid
BAND_X = (170, 215)  # the central part of the eye opening (corners excluded: lashes and shadows)
DARK_Y = (185, 218)
DARK_X = (168, 218)
SKIN_Y = (222, 232)  # the lower-lid skin, the eye's bright reference
SKIN_X = (160, 225)
MIN_OPEN_PX = 4.0  # an "open" aperture below this is a face with eyes shut from the start: no reading
HISTOGRAM_BINS = BAND_Y[1] - BAND_Y[0] + 1


def dark_threshold(grey_half: np.ndarray) -> float:
    """Grey level halfway between the eye's darkest pixels and the skin below it."""
    band = grey_half[DARK_Y[0] : DARK_Y[1], DARK_X[0] : DARK_X[1]]
    skin = grey_half[SKIN_Y[0] : SKIN_Y[1], SKIN_X[0] : SKIN_X[1]]
    return 0.5 * (float(np.percentile(band, 5)) + float(np.median(skin)))


def aperture(grey_half: np.ndarray, threshold: float) -> float:
    """Median over the eye's columns of the number of dark pixels: the visible eye opening, template px."""
    band = grey_half[BAND_Y[0] : BAND_Y[1], BAND_X[0] : BAND_X[1]]
    return float(np.median((band < threshold).sum(axis=0)))


class LidAperture:
    """Per-side running state: the dark threshold (set on the first keyframe) and the open-eye median."""

    def __init__(self) -> None:
        self.thresholds: list[float] | None = None
        self._histograms = np.zeros((2, HISTOGRAM_BINS), dtype=np.int64)

    def reset(self) -> None:
        self.thresholds = None
        self._histograms[:] = 0

    def open_aperture(self, side: int) -> float:
        """Median aperture of this side so far (template px)."""
        h = self._histograms[side]
        total = int(h.sum())
        if total == 0:
            return 0.0
        return float(np.searchsorted(np.cumsum(h), (total + 1) / 2))

    def measure(self, grey_halves: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """(closure, movement) per side (left, right), both (2,) on 0..5, for one keyframe's halves."""
        if self.thresholds is None:
            self.thresholds = [dark_threshold(g) for g in grey_halves]
        closure, movement = np.zeros(2), np.zeros(2)
        for s, g in enumerate(grey_halves):
            a = aperture(g, self.thresholds[s])
            self._histograms[s, min(HISTOGRAM_BINS - 1, int(round(a)))] += 1
            open_px = self.open_aperture(s)
            if open_px < MIN_OPEN_PX:
                continue
            ratio = a / open_px
            closure[s] = 5.0 * min(1.0, max(0.0, 1.0 - ratio))
            movement[s] = 5.0 * min(1.0, abs(1.0 - ratio))
        return closure, movement
