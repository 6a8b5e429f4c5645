"""Three-point affine alignment and the split into the patient's half-faces (paper section 2, step 3).

The eyes and the nose tip are mapped onto a fixed template in a 512x512 canvas; what falls outside
the image is padded with grey. The aligned face is split at the vertical midline into two 512x256
halves. Sides are the *patient's* anatomical sides:

* unmirrored camera frame (the default): the image's left half shows the patient's right side, the
  image's right half (mirrored horizontally) the patient's left side;
* mirrored frame (a selfie preview that was flipped before it reached us): the other way round.

Both halves come out the same way round (midline on the half's right edge), so one AU model serves
both sides.
"""

from __future__ import annotations

import cv2
import numpy as np

from stream.types import Face, HalfFaces

ALIGNED_SIZE = 512
HALF_WIDTH = ALIGNED_SIZE // 2
GREY = (128, 128, 128)

# Template positions in the 512x512 canvas of: eye on the image's left, eye on the image's right,
# nose tip. Inter-ocular distance 128 px; nose 0.57 IOD below the eyes (mean frontal face), which
# leaves room for the forehead (brows ~155 px) and the chin (~450 px).
# The x positions are symmetric about 255.5, the axis of the split (column c of the right half is
# column 511 - c of its mirrored half-face), so both sides get exactly the same geometry.
TEMPLATE = np.array([[191.5, 200.0], [319.5, 200.0], [255.5, 273.0]], dtype=np.float32)
TEMPLATE_IOD = float(TEMPLATE[1, 0] - TEMPLATE[0, 0])


def yaw_index(landmarks: np.ndarray) -> float:
    """How far the head is turned: the nose tip's offset from the eye midpoint along the eye line, in IODs.

    0 for a frontal face, about 0.55 sin(yaw); the sign says which way (+: toward the image's right).
    Uses only the eyes and the nose, which expressions barely move.
    """
    pts = np.asarray(landmarks, dtype=float)
    axis = pts[1] - pts[0]
    iod = float(np.hypot(*axis))
    if not np.isfinite(iod) or iod < 1e-6:
        return 0.0
    return float(np.dot(pts[2] - (pts[0] + pts[1]) / 2.0, axis / iod) / iod)


def alignment_matrix(face: Face) -> np.ndarray:
    """2x3 affine matrix taking image pixels to the 512x512 template (exact on the 3 points)."""
    src = np.asarray(face.landmarks, dtype=np.float32)[:3]
    if not np.all(np.isfinite(src)):
        raise ValueError("face landmarks contain NaN/inf")
    # Collinear points give no affine transform.
    (ax, ay), (bx, by) = src[1] - src[0], src[2] - src[0]
    area = abs(float(ax * by - ay * bx))
    if area < 1.0:
        raise ValueError(f"eyes and nose are (nearly) collinear (triangle area {area:.2f} px^2): cannot align")
    return cv2.getAffineTransform(src, TEMPLATE)


def align_face(image: np.ndarray, face: Face) -> np.ndarray:
    """The face warped onto the 512x512 template, grey outside the image."""
    m = alignment_matrix(face)
    return cv2.warpAffine(
        image,
        m,
        (ALIGNED_SIZE, ALIGNED_SIZE),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=GREY,
    )


def half_face_mouth_corners(face: Face, mirrored: bool = False) -> np.ndarray:
    """(2, 2) position of each side's mouth corner in its own half-face (row 0 left, row 1 right).

    Half-face coordinates as ``split_halves`` makes them (midline on the right edge, x < 256). The
    alignment puts the nose tip on the midline; on a turned head the mouth is not centred on it, so
    a region placed by the template alone would sit nearer the lips on one side than on the other.
    """
    pts = np.asarray(face.landmarks, dtype=np.float64)[3:5]
    m = alignment_matrix(face)
    t = pts @ m[:, :2].T + m[:, 2]  # row 0: corner on the image's left, row 1: on the image's right
    image_left = t[0]
    image_right = np.array([ALIGNED_SIZE - 1 - t[1, 0], t[1, 1]])  # mirrored into its half
    if mirrored:
        return np.stack([image_left, image_right])
    return np.stack([image_right, image_left])


def split_halves(aligned: np.ndarray, mirrored: bool = False) -> HalfFaces:
    """Split an aligned face into the patient's left and right half-faces (512x256 each).

    ``mirrored``: True when the frame is a mirror image of the patient (selfie view).
    """
    if aligned.shape[:2] != (ALIGNED_SIZE, ALIGNED_SIZE):
        raise ValueError(f"expected a {ALIGNED_SIZE}x{ALIGNED_SIZE} aligned face, got {aligned.shape[:2]}")
    image_left = aligned[:, :HALF_WIDTH]
    image_right_flipped = aligned[:, HALF_WIDTH:][:, ::-1]
    if mirrored:
        return HalfFaces(left=np.ascontiguousarray(image_left), right=np.ascontiguousarray(image_right_flipped))
    return HalfFaces(left=np.ascontiguousarray(image_right_flipped), right=np.ascontiguousarray(image_left))
