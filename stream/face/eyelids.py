"""The eyelids of one eye: MediaPipe's iris-landmark model, run by OpenCV, on one half-face at a time.

The model (``stream/data/iris_landmark.tflite``, 2.6 MB, from the PyPI wheel mediapipe 0.10.21,
Apache-2.0, see ``stream/data/NOTICE.md``) was trained on crops of single eyes. It places 71 points
around the eye and brow; the first 16 are the lid margins (8 along the lower lid from the outer to the
inner corner, then 8 along the upper lid). Because it sees one eye at a time, one eye closing cannot
pull the other eye's reading with it, as the whole-face mesh does; and because it learned lids, not
dark pixels, lashes, a closed lid's crease and glasses frames do not read as an open eye.

On each aligned half-face (``stream.face.align.split_halves``: 512 x 256, the eye centre at (192, 200),
128 px between the eyes, the left half mirrored so that both look alike) the eye lies in one fixed
window, so both sides go through exactly the same crop. About 3.5 ms per eye on one core of a 2-core
Xeon.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from stream.face.tflite import load_network, packaged

# The packaged file and its checksum (mediapipe-0.10.21 wheel, mediapipe/modules/iris_landmark/).
MODEL_FILE = "iris_landmark.tflite"
MODEL_SHA256 = "d1744d2a09c25f501d39eba4faff47e53ecca8852c5ce19bce8eeac39357521f"
INPUT_SIZE = 64
CONTOUR_OUTPUT = "output_eyes_contours_and_brows"
N_POINTS = 71
# The eye's window on the half-face: about 2.2 eye widths square around the template's eye centre,
# as MediaPipe frames an eye from its corners.
EYE_X, EYE_Y, WINDOW = 192, 200, 128
# Points of the lid margins: the two corners, and the middle five of each lid, paired column by column.
CORNERS = (0, 8)
LOWER_LID = (2, 3, 4, 5, 6)
UPPER_LID = (10, 11, 12, 13, 14)


def bundled_model() -> Path:
    """The packaged model file."""
    return packaged(MODEL_FILE)


class EyelidContour:
    """Lid margins of the eye on a half-face; one OpenCV network, not thread-safe (one per worker)."""

    def __init__(self, model: str | Path | None = None, sha256: str | None = None) -> None:
        """``model``: another copy of iris_landmark.tflite (checked against ``sha256`` when given);
        None: the packaged file, checked against its known checksum."""
        self._net = load_network(MODEL_FILE, MODEL_SHA256, model, sha256, what="eyelid model")

    def contour(self, half: np.ndarray) -> np.ndarray:
        """(16, 2) lid-margin points of the half-face's eye, in half-face pixels (RGB or grey, uint8).

        Input as MediaPipe trained it: RGB scaled to [0, 1], 64 x 64.
        """
        if half.shape[:2] != (512, 256):
            raise ValueError(f"EyelidContour needs a 512x256 half-face (split_halves), got {half.shape}")
        h = WINDOW // 2
        crop = half[EYE_Y - h : EYE_Y + h, EYE_X - h : EYE_X + h]
        if crop.ndim == 2:
            crop = cv2.cvtColor(crop, cv2.COLOR_GRAY2RGB)
        small = cv2.resize(crop, (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_AREA)
        self._net.setInput(cv2.dnn.blobFromImage(small.astype(np.float32) * np.float32(1.0 / 255.0)))
        points = self._net.forward(CONTOUR_OUTPUT).reshape(N_POINTS, 3)[:16, :2].astype(np.float64)
        points *= WINDOW / INPUT_SIZE
        points += (EYE_X - h, EYE_Y - h)
        return points

    def aperture(self, half: np.ndarray) -> float:
        """How open the eye is: the mean distance between the lids over the eye's width (about 0.2-0.35
        for an open eye, near 0 for a closed one; negative values are the model's error on a shut eye)."""
        points = self.contour(half)
        width = float(np.linalg.norm(points[CORNERS[0]] - points[CORNERS[1]]))
        if width < 1.0:
            return 0.0
        return float(np.mean(points[list(LOWER_LID), 1] - points[list(UPPER_LID), 1])) / width
