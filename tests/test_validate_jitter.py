"""The harness's noise probe: the detector's points moved by a known, seeded amount, nothing else."""

from __future__ import annotations

import numpy as np
import pytest

from stream.decode import VideoFile
from stream.face.mtcnn import MTCNNDetector
from stream.validate.jitter import JitteredDetector


@pytest.fixture(scope="module")
def frame(shared_data) -> np.ndarray:
    with VideoFile(shared_data / "single_face.mp4") as video:
        return next(video.frames()).image


def test_jitter_moves_the_points_by_about_sigma_and_is_repeatable(frame):
    detector = MTCNNDetector()
    plain = detector.detect(frame).face
    moved = [JitteredDetector(detector, 0.5, seed=3).detect(frame).face for _ in range(2)]
    assert np.array_equal(moved[0].landmarks, moved[1].landmarks)  # seeded: the same run twice
    shift = (moved[0].landmarks - plain.landmarks).ravel()
    assert 0 < np.abs(shift).max() < 0.5 * 5  # moved, by a few sigma at most
    assert moved[0].score == plain.score
    other = JitteredDetector(detector, 0.5, seed=4).detect(frame).face
    assert not np.array_equal(other.landmarks, moved[0].landmarks)


def test_no_jitter_is_the_detector_itself(frame):
    detector = MTCNNDetector()
    still = JitteredDetector(detector, 0.0).detect(frame).face
    assert np.array_equal(still.landmarks, detector.detect(frame).face.landmarks)
    with pytest.raises(ValueError, match="jitter"):
        JitteredDetector(detector, -1.0)
