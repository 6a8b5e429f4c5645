"""Keyframe filter (paper 2.2) on plain arrays and on a real face."""

from __future__ import annotations

import numpy as np
import pytest

from stream.decode import VideoFile
from stream.keyframes import KeyframeFilter, anchored_crop
from stream.types import Face

rng = np.random.default_rng(0)


def _face(dx: float = 0.0) -> Face:
    pts = np.array([[100, 100], [160, 100], [130, 140], [108, 170], [152, 170]], float) + [dx, 0]
    return Face(box=np.array([70 + dx, 50, 190 + dx, 210]), landmarks=pts, score=1.0)


def _image() -> np.ndarray:
    img = (rng.random((260, 300)) * 255).astype(np.uint8)
    return np.repeat(img[..., None], 3, axis=2)


def test_crop_is_48x48_and_anchored_on_eyes_and_nose():
    img = _image()
    crop = anchored_crop(img, _face())
    assert crop.shape == (48, 48) and crop.dtype == np.float32
    # moving image and landmarks together leaves the crop unchanged: the anchor follows the face
    shifted = np.roll(img, 7, axis=1)
    np.testing.assert_allclose(anchored_crop(shifted, _face(dx=7)), crop, atol=1e-3)


def test_first_frame_is_kept_identical_frames_are_not():
    f, img = KeyframeFilter(threshold=5.0), _image()
    first = f.offer(img, _face())
    assert first.keep and first.difference == float("inf")
    again = f.offer(img, _face())
    assert not again.keep and again.difference == 0.0


def test_difference_is_measured_against_the_last_keyframe_not_the_last_frame():
    base = np.full((260, 300, 3), 100, np.uint8)
    f = KeyframeFilter(threshold=8.0)
    f.offer(base, _face())
    # three small steps of +5 grey: each is under the threshold against its predecessor, but the
    # third is 15 levels away from the last keyframe and must be kept
    decisions = [f.offer(np.full_like(base, 100 + 5 * k), _face()) for k in (1, 2, 3)]
    assert [d.keep for d in decisions] == [False, True, False]
    assert decisions[1].difference == pytest.approx(10.0, abs=0.01)
    assert decisions[2].difference == pytest.approx(5.0, abs=0.01)  # now against the new keyframe


def test_exactly_the_threshold_is_not_a_keyframe():
    base = np.full((260, 300, 3), 100, np.uint8)
    f = KeyframeFilter(threshold=6.0)
    f.offer(base, _face())
    assert not f.offer(np.full_like(base, 106), _face()).keep
    assert f.offer(np.full_like(base, 107), _face()).keep


def test_negative_threshold_is_refused():
    with pytest.raises(ValueError, match="threshold"):
        KeyframeFilter(-1)


def test_real_smile_passes_the_filter_and_a_still_face_does_not(shared_data):
    from stream.face.mtcnn import MTCNNDetector

    with VideoFile(shared_data / "single_face.mp4") as video:
        frames = {f.index: f.image for f in video.frames() if f.index in (0, 1, 45)}
    det = MTCNNDetector()
    faces = {i: det.detect(img).face for i, img in frames.items()}
    f = KeyframeFilter(threshold=6.0)
    f.offer(frames[0], faces[0])
    still = f.offer(frames[1], faces[1])  # next frame, neutral face
    smile = f.offer(frames[45], faces[45])  # broad smile
    assert not still.keep and still.difference < 6.0
    assert smile.keep and smile.difference > 2 * still.difference
