"""How much of a validation figure is noise: the detector's points moved by a tiny random amount.

A verdict near its limit can flip when a landmark moves by a fraction of a pixel (the flow
estimator's stabilising fit picks another inlier set, and each keyframe's value spreads through the
helpers that draw it). ``python -m stream validate --jitter PX`` runs every case with the detector's
points moved by N(0, PX) pixels, seeded, so the figures of such a run against those of a run without
it show how far a figure moves for no reason at all (docs/validity.md).

Pure apart from the detector it wraps: arrays in, arrays out.
"""

from __future__ import annotations

import numpy as np

from stream.face.detect import FaceDetector
from stream.types import Face


class JitteredDetector(FaceDetector):
    """``detector`` with every face's points (and box) moved by N(0, ``sigma_px``), from ``seed``."""

    def __init__(self, detector: FaceDetector, sigma_px: float, seed: int = 0) -> None:
        if not sigma_px >= 0:
            raise ValueError(f"jitter must be >= 0 pixels, got {sigma_px}")
        self.detector = detector
        self.name = f"{detector.name}+jitter"
        self.sigma_px = sigma_px
        self._rng = np.random.default_rng(seed)

    def detect_all(self, image: np.ndarray) -> list[Face]:
        faces = self.detector.detect_all(image)
        return [
            Face(
                box=f.box + self._rng.normal(0.0, self.sigma_px, 4),
                landmarks=f.landmarks + self._rng.normal(0.0, self.sigma_px, f.landmarks.shape),
                score=f.score,
            )
            for f in faces
        ]
