"""Head pose: the yaw index, the gate on a head turned away, a turn's sideways slide removed, mouth corners per half."""

from __future__ import annotations

import numpy as np
import pytest

from stream.config import AnalysisConfig
from stream.face.align import half_face_mouth_corners, yaw_index
from stream.face.detect import FaceDetector
from stream.pipeline import Pipeline
from stream.types import Face, Frame

FRONTAL = np.array([[200.0, 200.0], [264.0, 200.0], [232.0, 236.0], [208.0, 262.0], [256.0, 262.0]])


def turned(yaw: float) -> np.ndarray:
    """Frontal landmarks with the nose tip moved sideways by ``yaw`` inter-ocular distances."""
    lm = FRONTAL.copy()
    lm[2, 0] += yaw * 64.0
    return lm


def test_yaw_index_is_the_nose_offset_in_inter_ocular_distances():
    assert yaw_index(FRONTAL) == pytest.approx(0.0)
    assert yaw_index(turned(0.2)) == pytest.approx(0.2)
    assert yaw_index(turned(-0.1)) == pytest.approx(-0.1)
    mirrored = FRONTAL.copy()
    mirrored[:, 0] = 500 - mirrored[:, 0]
    mirrored = mirrored[[1, 0, 2, 4, 3]]  # image order after a flip
    assert yaw_index(mirrored) == pytest.approx(-yaw_index(FRONTAL))


def test_mouth_corners_land_in_each_side_own_half_face():
    face = Face(np.array([150, 150, 320, 320.0]), FRONTAL, 1.0)
    corners = half_face_mouth_corners(face)
    assert corners.shape == (2, 2)
    # symmetric face: both corners at the same place of their half-face, left of the midline (x < 256)
    np.testing.assert_allclose(corners[0], corners[1], atol=1e-6)
    assert corners[0, 0] < 256
    assert np.allclose(half_face_mouth_corners(face, mirrored=True), corners[::-1])


class ScriptedDetector(FaceDetector):
    """A detector that reports the landmarks the test scripts for each frame (the pose is the input)."""

    def __init__(self, script: list[np.ndarray]) -> None:
        self.script = script
        self.frame = 0

    def detect_all(self, image: np.ndarray) -> list[Face]:
        lm = self.script[min(self.frame, len(self.script) - 1)]
        self.frame += 1
        return [Face(np.array([150, 150, 320, 330.0]), lm, 0.99)]


def run(script: list[np.ndarray], fps: float = 30.0) -> Pipeline:
    rng = np.random.default_rng(0)
    detector = ScriptedDetector(script)
    pipeline = Pipeline(AnalysisConfig(detect_every=1, keyframe_threshold=0.0), detector=detector)
    for i in range(len(script)):
        image = rng.integers(0, 255, (480, 480, 3), dtype=np.uint8)  # every frame differs: a keyframe each
        pipeline.ingest(Frame(i, i / fps, image))
    return pipeline


def test_frames_turned_beyond_the_gate_are_counted_not_measured():
    pipeline = run([FRONTAL] * 5 + [turned(0.3)] * 5 + [FRONTAL] * 5)
    assert pipeline.counts.extra["frames_pose_gated"] == 5
    assert pipeline.counts.keyframes == 10
