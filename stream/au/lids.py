"""Eye closure per side from the lid aperture: how far apart the lids are, against that side's open eye.

Optical flow cannot follow a closing eye well: the iris and sclera do not move down, they disappear
under the lid, and the flow of vanishing texture is noise. The lids themselves are found by a model
that learned them (``stream.face.eyelids``: MediaPipe's iris-landmark model, one eye at a time), and
the aperture is the distance between them over the eye's width. (Before it, this module counted the
dark pixels of the eye's window; lashes, a closed lid's crease and glasses frames stay dark, so a real
closed eye read 1-2.7 of 5: docs/validity.md.)

The aperture is read against the patient's *own* open eye: the running median of that side's
apertures over the session so far (a patient's eyes are open most of the time, so the median is the
open eye even if the first keyframe caught a blink). Closure is ``1 - aperture / open`` on 0..5 (5 =
closed), and the eye movement is ``|1 - aperture / open|`` (closing or widening) on the same scale.

``LidAperture.update`` is pure (apertures in, readings out); ``measure`` runs the model on the halves.
"""

from __future__ import annotations

import numpy as np

from stream.face.eyelids import EyelidContour

# The running median is kept as a histogram of apertures (constant memory over a live session).
HISTOGRAM_STEP = 0.0025  # aperture units (lid distance over eye width); an open eye is about 0.2-0.35
HISTOGRAM_BINS = 321  # 0 .. 0.8
MIN_OPEN = 0.08  # an "open" aperture below this is a face with eyes shut from the start: no reading


class LidAperture:
    """Per-side running state: the open-eye median of each side's apertures."""

    def __init__(self, contour: EyelidContour | None = None) -> None:
        """``contour``: the eyelid model to measure with (None: the packaged one, loaded on first use)."""
        self._contour = contour
        self._histograms = np.zeros((2, HISTOGRAM_BINS), dtype=np.int64)

    def reset(self) -> None:
        self._histograms[:] = 0

    def open_aperture(self, side: int) -> float:
        """Median aperture of this side so far."""
        h = self._histograms[side]
        total = int(h.sum())
        if total == 0:
            return 0.0
        return float(np.searchsorted(np.cumsum(h), (total + 1) / 2)) * HISTOGRAM_STEP

    def update(self, apertures: tuple[float, float] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(closure, movement) per side (left, right), both (2,) on 0..5, from one keyframe's apertures."""
        closure, movement = np.zeros(2), np.zeros(2)
        for s, a in enumerate(apertures):
            a = float(a)
            self._histograms[s, int(np.clip(round(a / HISTOGRAM_STEP), 0, HISTOGRAM_BINS - 1))] += 1
            open_ap = self.open_aperture(s)
            if open_ap < MIN_OPEN:
                continue
            ratio = max(0.0, a) / open_ap
            closure[s] = 5.0 * min(1.0, max(0.0, 1.0 - ratio))
            movement[s] = 5.0 * min(1.0, abs(1.0 - ratio))
        return closure, movement

    def measure(self, halves: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """(closure, movement) per side for one keyframe's aligned half-faces (left, right; RGB or grey)."""
        if self._contour is None:
            self._contour = EyelidContour()
        return self.update((self._contour.aperture(halves[0]), self._contour.aperture(halves[1])))
