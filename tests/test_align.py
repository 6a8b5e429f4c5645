"""Alignment and the half-face split: which image side becomes which anatomical side."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from stream.face.align import ALIGNED_SIZE, GREY, HALF_WIDTH, TEMPLATE, align_face, alignment_matrix, split_halves
from stream.types import Face


def _face(points: list[tuple[float, float]]) -> Face:
    pts = np.array(points, dtype=float)
    return Face(
        box=np.array([pts[:, 0].min() - 40, pts[:, 1].min() - 60, pts[:, 0].max() + 40, pts[:, 1].max() + 60]),
        landmarks=pts,
        score=0.99,
    )


# An unmirrored "camera frame": the patient faces the camera, so the patient's RIGHT eye is the
# eye on the image's LEFT (smaller x).
PATIENT_RIGHT_EYE = (250.0, 200.0)  # image-left
PATIENT_LEFT_EYE = (330.0, 198.0)  # image-right
NOSE = (291.0, 245.0)
FACE = _face([PATIENT_RIGHT_EYE, PATIENT_LEFT_EYE, NOSE, (262.0, 290.0), (320.0, 290.0)])


def _frame_with_marks() -> np.ndarray:
    img = np.full((400, 600, 3), 60, np.uint8)
    # red square beside the patient's right eye (lateral, image-left), blue one beside the left eye
    cv2.rectangle(img, (215, 190), (230, 205), (255, 0, 0), -1)
    cv2.rectangle(img, (350, 188), (365, 203), (0, 0, 255), -1)
    return img


def _colour_centroid_x(img: np.ndarray, channel: int) -> float:
    other = [c for c in range(3) if c != channel]
    mask = (img[..., channel] > 200) & (img[..., other[0]] < 60) & (img[..., other[1]] < 60)
    assert mask.any(), "mark not found"
    return float(np.nonzero(mask)[1].mean())


def test_three_points_land_exactly_on_the_template():
    m = alignment_matrix(FACE)
    mapped = cv2.transform(FACE.landmarks[None, :3].astype(np.float32), m)[0]
    np.testing.assert_allclose(mapped, TEMPLATE, atol=1e-3)


def test_unmirrored_frame_patient_right_is_image_left_and_left_half_is_mirrored():
    halves = split_halves(align_face(_frame_with_marks(), FACE))
    assert halves.left.shape == halves.right.shape == (ALIGNED_SIZE, HALF_WIDTH, 3)
    # The red mark (patient's right eye, image-left) is in the right half-face only, the blue in the left.
    assert (halves.right[..., 0] > 200).sum() > 50 and (halves.right[..., 2] > 200).sum() == 0
    assert (halves.left[..., 2] > 200).sum() > 50 and (halves.left[..., 0] > 200).sum() == 0
    # Both halves show the midline on their right edge: each mark, lateral of its eye, sits left of
    # the template eye (x = 192), i.e. on the outer side.
    assert _colour_centroid_x(halves.right, 0) < TEMPLATE[0, 0] - 20
    assert _colour_centroid_x(halves.left, 2) < TEMPLATE[0, 0] - 20


def test_mirrored_frame_swaps_the_sides():
    mirrored_img = _frame_with_marks()[:, ::-1].copy()
    w = mirrored_img.shape[1]
    pts = FACE.landmarks.copy()
    pts[:, 0] = w - 1 - pts[:, 0]
    # a mirrored frame still lists points in image order (image-left first)
    pts = pts[[1, 0, 2, 4, 3]]
    halves = split_halves(align_face(mirrored_img, _face(pts.tolist())), mirrored=True)
    # the red mark belongs to the patient's right eye whatever the mirroring
    assert (halves.right[..., 0] > 200).sum() > 50 and (halves.right[..., 2] > 200).sum() == 0
    assert (halves.left[..., 2] > 200).sum() > 50 and (halves.left[..., 0] > 200).sum() == 0


def test_outside_of_the_image_is_padded_grey():
    img = np.full((300, 300, 3), 10, np.uint8)
    face = _face([(20.0, 40.0), (70.0, 40.0), (45.0, 70.0), (30.0, 95.0), (60.0, 95.0)])  # face at the corner
    aligned = align_face(img, face)
    assert aligned.shape == (ALIGNED_SIZE, ALIGNED_SIZE, 3)
    assert tuple(aligned[5, 5]) == GREY  # top-left of the canvas lies outside the frame
    assert tuple(aligned[200, 200]) == (10, 10, 10)


def test_collinear_points_are_refused():
    face = _face([(10.0, 10.0), (20.0, 10.0), (30.0, 10.0), (10.0, 20.0), (30.0, 20.0)])
    with pytest.raises(ValueError, match="collinear"):
        align_face(np.zeros((50, 50, 3), np.uint8), face)
