"""Eye closure per side from the lid aperture: how far apart the lids are, against that side's open eye.

Optical flow cannot follow a closing eye well: the iris and sclera do not move down, they disappear
under the lid, and the flow of vanishing texture is noise. The lids themselves are found by a model
that learned them (``stream.face.eyelids``: MediaPipe's iris-landmark model, one eye at a time), and
the aperture is the distance between them over the eye's width. (Before it, this module counted the
dark pixels of the eye's window; lashes, a closed lid's crease and glasses frames stay dark, so a real
closed eye read 1-2.7 of 5: docs/validity.md.)

The aperture is read against the patient's *own* open eye: an upper quantile (``OPEN_QUANTILE``) of
that side's apertures over the session so far (a patient's eyes are open much of the time, so it is
the open eye even if the first keyframe caught a blink, or the eye narrows with most movements of
the mouth). Closure is ``1 - aperture / open`` on 0..5 (5 = closed), and the eye movement is
``|1 - aperture / open|`` (closing or widening) on the same scale.

``LidAperture.update`` is pure (apertures in, readings out); ``measure`` runs the model on the halves.
"""

from __future__ import annotations

import numpy as np

from stream.face.eyelids import EyelidContour

# The running quantile is kept as a histogram of apertures (constant memory over a live session).
HISTOGRAM_STEP = 0.0025  # aperture units (lid distance over eye width); an open eye is about 0.2-0.35
HISTOGRAM_BINS = 321  # 0 .. 0.8
# The open eye is this quantile of a side's apertures, not their median: keyframes are the frames
# that changed, so blinks and expressions fill many of them, and a synkinetic eye that narrows with
# every mouth movement of a talking patient is narrowed in most of them; the median would then be the
# narrowed eye and the narrowing would read as open (docs/validity.md, item 11).
OPEN_QUANTILE = 0.85
MIN_OPEN = 0.08  # an "open" aperture below this is a face with eyes shut from the start: no reading


class LidAperture:
    """Per-side running state: the open eye, an upper quantile of each side's apertures."""

    def __init__(self, contour: EyelidContour | None = None, open_quantile: float = OPEN_QUANTILE) -> None:
        """``contour``: the eyelid model to measure with (None: the packaged one, loaded on first use);
        ``open_quantile``: which quantile of a side's apertures so far is its open eye."""
        if not 0.0 < open_quantile < 1.0:
            raise ValueError(f"LidAperture open_quantile must lie strictly between 0 and 1, got {open_quantile}")
        self._contour = contour
        self._quantile = open_quantile
        self._histograms = np.zeros((2, HISTOGRAM_BINS), dtype=np.int64)

    def reset(self) -> None:
        self._histograms[:] = 0

    def open_aperture(self, side: int) -> float:
        """The open eye of this side so far: the ``open_quantile`` of its apertures."""
        h = self._histograms[side]
        total = int(h.sum())
        if total == 0:
            return 0.0
        rank = min(float(total), max(1.0, self._quantile * (total + 1)))  # the (n + 1) p rank, within 1..n
        return float(np.searchsorted(np.cumsum(h), rank)) * HISTOGRAM_STEP

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
