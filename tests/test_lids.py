"""Lid aperture on drawn half-faces and the side symmetry of the flow estimator on real frames."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from stream.au.lids import LidAperture, aperture, dark_threshold
from stream.types import HalfFaces, Keyframe

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def half_face(open_px: float) -> np.ndarray:
    """Grey 512x256 half-face: skin, a brow, and an eye of the given visible height at the template eye point."""
    img = np.full((512, 256), 170, np.uint8)
    cv2.line(img, (150, 165), (235, 160), 90, 6)  # brow
    cv2.ellipse(img, (192, 200), (30, max(1, int(round(open_px / 2)))), 0, 0, 360, 40, -1)
    return img


def test_aperture_reads_the_visible_eye_height():
    t = dark_threshold(half_face(20))
    assert 60 < t < 160
    assert aperture(half_face(20), t) == pytest.approx(21, abs=2)
    assert aperture(half_face(4), t) == pytest.approx(5, abs=2)


def test_closure_is_read_against_the_open_eye_of_that_side_only():
    lids = LidAperture()
    for _ in range(6):  # eyes open most of the time: the median is the open eye
        closure, movement = lids.measure((half_face(20), half_face(14)))
        assert closure.max() < 0.5 and movement.max() < 0.5
    closure, movement = lids.measure((half_face(20), half_face(2)))  # the right eye closes
    assert closure[0] < 0.5 and movement[0] < 0.5
    assert closure[1] > 3.5 and movement[1] > 3.5
    closure, movement = lids.measure((half_face(28), half_face(14)))  # the left eye widens
    assert closure[0] == 0.0 and movement[0] > 1.5


def test_a_first_keyframe_with_closed_eyes_does_not_become_the_open_eye():
    lids = LidAperture()
    lids.measure((half_face(3), half_face(3)))  # the first keyframe caught a blink
    for _ in range(5):
        lids.measure((half_face(20), half_face(20)))
    closure, _ = lids.measure((half_face(20), half_face(20)))
    assert closure.max() < 0.5
    closure, _ = lids.measure((half_face(3), half_face(20)))
    assert closure[0] > 3.5 and closure[1] < 0.5


@pytest.mark.slow
@pytest.mark.skipif(not (DATA / "d9.mp4").exists(), reason="needs ../shared/data/d9.mp4")
def test_flow_estimator_treats_both_sides_with_the_same_geometry_on_real_frames():
    """Swapping the half-faces of real keyframes swaps every output: one geometry for both sides."""
    from stream.au.flow import FlowAUEstimator
    from stream.decode import VideoFile
    from stream.pipeline import Pipeline

    pipeline = Pipeline()
    keyframes = []
    with VideoFile(DATA / "d9.mp4") as video:
        for frame in video.frames():
            result = pipeline.ingest(frame)
            if result.keyframe is not None and frame.index % 2 == 0:
                keyframes.append(result.keyframe)
            if len(keyframes) >= 24:
                break
    swapped = [
        Keyframe(
            k.frame_index,
            k.time_s,
            HalfFaces(left=k.halves.right, right=k.halves.left),
            k.aligned[:, ::-1],
            mouth_corners=k.mouth_corners[::-1],
        )
        for k in keyframes
    ]
    a, b = FlowAUEstimator(), FlowAUEstimator()
    cv2.setRNGSeed(0)  # RANSAC's draws: the same whatever ran before in this process
    out_a = [a.estimate(a.encode(k), []) for k in keyframes]
    cv2.setRNGSeed(0)
    out_b = [b.estimate(b.encode(k), []) for k in swapped]
    closure_a = np.array([e.closure for e in out_a])
    closure_b = np.array([e.closure for e in out_b])
    np.testing.assert_array_equal(closure_a, closure_b[:, ::-1])  # per side, pure: exactly equal
    move_a = np.array([e.movement for e in out_a])
    move_b = np.array([e.movement for e in out_b])[:, ::-1]
    # the rigid stabilisation's RANSAC draws differ on a mirrored face: small differences only,
    # next to movements of up to several units
    assert np.abs(move_a - move_b).mean() < 0.25
    au_a = np.array([np.stack([e.left, e.right]) for e in out_a])
    au_b = np.array([np.stack([e.right, e.left]) for e in out_b])
    assert np.abs(au_a - au_b).mean() < 0.15
