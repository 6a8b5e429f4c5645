"""MediaPipe's 468-point face mesh, run by OpenCV: where each point of the face is, with its depth.

The model file (``stream/data/face_landmark.tflite``, 1.2 MB, from the PyPI wheel mediapipe 0.10.21,
Apache-2.0, see ``stream/data/NOTICE.md``) ships with the package and is checked against its sha256
before it is loaded; ``cv2.dnn.readNetFromTFLite`` runs it, so no new dependency comes with it.
MediaPipe itself cannot be installed beside this project (it pins numpy < 2 and its own OpenCV).

The mesh wants a face that fills a 192x192 crop, upright. The 3-point alignment
(``stream.face.align``) already makes every face upright at a fixed size, so the crop is a fixed
window of the 512x512 aligned face, and the points are mapped back to the image through the inverse
of the alignment. The mesh's depth comes in the same units as x and y (pixels of its input).
About 4 ms per face on one core of a 2-core Xeon.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from stream.face.align import ALIGNED_SIZE, align_face, alignment_matrix
from stream.face.tflite import load_network, packaged
from stream.types import Face

# The packaged file and its checksum (mediapipe-0.10.21 wheel, mediapipe/modules/face_landmark/).
MODEL_FILE = "face_landmark.tflite"
MODEL_SHA256 = "1055cb9d4a9ca8b8c688902a3a5194311138ba256bcc94e336d8373a5f30c814"
N_POINTS = 468
INPUT_SIZE = 192
# The face's outline, in order around it (forehead, the right temple and jaw, the chin, the left jaw
# and temple): the mesh's silhouette, inside which every point is the face's own skin.
FACE_OVAL: tuple[int, ...] = (
    10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377, 152, 148,
    176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109,
)  # fmt: skip
# The crop of the aligned face the mesh sees (eyes at y = 200, 128 px apart; chin near y = 450):
# 3 inter-ocular distances square around the middle of the eyes and the mouth, as MediaPipe's own
# pipeline frames a face.
CROP_X0, CROP_Y0, CROP_SIZE = 64, 73, 384


def bundled_model() -> Path:
    """The packaged model file."""
    return packaged(MODEL_FILE)


class FaceMesh:
    """468 face points (x, y, depth) per face; one OpenCV network, not thread-safe (one per worker)."""

    def __init__(self, model: str | Path | None = None, sha256: str | None = None) -> None:
        """``model``: another copy of face_landmark.tflite (checked against ``sha256`` when given);
        None: the packaged file, checked against its known checksum."""
        self._net = load_network(MODEL_FILE, MODEL_SHA256, model, sha256, what="face mesh model")

    def on_aligned(self, aligned: np.ndarray) -> np.ndarray:
        """(468, 3) points on a 512x512 aligned face (``stream.face.align.align_face``), in its pixels.

        Input as MediaPipe trained it: RGB scaled to [0, 1], 192x192.
        """
        if aligned.shape[:2] != (ALIGNED_SIZE, ALIGNED_SIZE):
            size = f"{ALIGNED_SIZE}x{ALIGNED_SIZE}"
            raise ValueError(f"FaceMesh.on_aligned needs a {size} aligned face (align_face), got {aligned.shape}")
        crop = aligned[CROP_Y0 : CROP_Y0 + CROP_SIZE, CROP_X0 : CROP_X0 + CROP_SIZE]
        if crop.ndim == 2:
            crop = cv2.cvtColor(crop, cv2.COLOR_GRAY2RGB)
        small = cv2.resize(crop, (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_AREA)
        self._net.setInput(cv2.dnn.blobFromImage(small.astype(np.float32) * np.float32(1.0 / 255.0)))
        points = self._net.forward().reshape(N_POINTS, 3).astype(np.float64) * (CROP_SIZE / INPUT_SIZE)
        points[:, 0] += CROP_X0
        points[:, 1] += CROP_Y0
        return points

    def on_image(self, image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """(468, 3) points of the face whose eyes and nose are ``landmarks[:3]``, in image pixels."""
        face = Face(np.zeros(4), np.asarray(landmarks, float), 1.0)
        points = self.on_aligned(align_face(image, face))
        matrix = alignment_matrix(face)
        inverse = cv2.invertAffineTransform(matrix)
        out = np.empty_like(points)
        out[:, :2] = points[:, :2] @ inverse[:, :2].T + inverse[:, 2]
        # depth in image pixels: divided by the alignment's scale (an affine: the geometric mean of the
        # scales of its two axes)
        out[:, 2] = points[:, 2] / np.sqrt(abs(np.linalg.det(matrix[:, :2])))
        return out
