"""Online keyframe filter (paper section 2, step 2).

The face is anchored at the midpoint of the three points that do not move with expression (both
eyes and the nose tip), a square around that anchor is downsampled to 48x48 with bilinear
interpolation (removing small shake, keeping large expression changes), and the result is compared
with that of the last *kept* frame. The frame is kept when the mean absolute difference, in grey
levels (0..255), is above the threshold. The first frame with a face is always kept.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from stream.types import Face

CROP_SIZE = 48
# Side of the anchored square, in inter-ocular distances: covers brows to chin at frontal pose.
CROP_SCALE = 2.6


@dataclass(frozen=True)
class KeyframeDecision:
    keep: bool
    difference: float  # mean |crop - last keyframe crop| in grey levels; inf for the first frame
    crop: np.ndarray  # (48, 48) float32 grey


def anchored_crop(image: np.ndarray, face: Face, size: int = CROP_SIZE, scale: float = CROP_SCALE) -> np.ndarray:
    """The 48x48 grey crop centred on the eyes-nose midpoint, side ``scale`` x inter-ocular distance."""
    pts = np.asarray(face.landmarks, dtype=np.float64)
    eye_a, eye_b, nose = pts[0], pts[1], pts[2]
    anchor = (eye_a + eye_b + nose) / 3.0
    iod = float(np.linalg.norm(eye_b - eye_a))
    if not np.isfinite(iod) or iod < 1.0:
        raise ValueError(f"degenerate face landmarks (eye distance {iod:.2f} px)")
    side = scale * iod
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
    # Affine map from the square around the anchor to the size x size output; bilinear sampling.
    s = size / side
    m = np.array([[s, 0.0, size / 2.0 - s * anchor[0]], [0.0, s, size / 2.0 - s * anchor[1]]])
    if s < 0.5:
        # Area pre-filter so that the bilinear sampling at 48x48 sees the whole square, not aliased samples.
        pre = max(1, int(1.0 / s) // 2)
        grey = cv2.blur(grey, (pre, pre))
    crop = cv2.warpAffine(grey, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return crop.astype(np.float32)


class KeyframeFilter:
    """Stateful filter: feed it frames with their face, it says which ones are keyframes."""

    def __init__(self, threshold: float = 6.0) -> None:
        if threshold < 0:
            raise ValueError(f"keyframe threshold must be >= 0 grey levels, got {threshold}")
        self.threshold = float(threshold)
        self._last: np.ndarray | None = None

    def offer(self, image: np.ndarray, face: Face) -> KeyframeDecision:
        crop = anchored_crop(image, face)
        if self._last is None:
            self._last = crop
            return KeyframeDecision(True, float("inf"), crop)
        diff = float(np.mean(np.abs(crop - self._last)))
        keep = diff > self.threshold
        if keep:
            self._last = crop
        return KeyframeDecision(keep, diff, crop)

    def reset(self) -> None:
        self._last = None
