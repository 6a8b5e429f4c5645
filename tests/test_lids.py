"""The lid aperture: the eyelid model on real blinks and a synthetic closure, the running open eye,
and the side symmetry of the flow estimator on real frames."""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from stream.au.lids import LidAperture
from stream.types import HalfFaces, Keyframe

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


OPEN = 0.28  # an open eye's aperture: the lids' distance over the eye's width


def test_closure_is_read_against_the_open_eye_of_that_side_only():
    lids = LidAperture()
    for _ in range(12):  # eyes open most of the time: the upper quantile is the open eye
        closure, movement = lids.update((OPEN, 0.2))
        assert closure.max() < 0.5 and movement.max() < 0.5
    closure, movement = lids.update((OPEN, 0.02))  # the right eye closes
    assert closure[0] < 0.5 and movement[0] < 0.5
    assert closure[1] > 4.0 and movement[1] > 4.0
    closure, movement = lids.update((0.4, 0.2))  # the left eye widens
    assert closure[0] == 0.0 and movement[0] > 1.5


def test_an_eye_narrowed_in_most_keyframes_is_read_against_its_open_state():
    # a synkinetic eye narrowing with every mouth movement of a talking patient: a median open eye
    # would be the narrowed one, and the narrowing would read as open
    lids = LidAperture()
    for k in range(40):
        closure, _ = lids.update((0.14 if k % 10 < 7 else OPEN, OPEN))
    closure, _ = lids.update((0.14, OPEN))
    assert closure[0] > 2.0 and closure[1] < 0.5
    assert LidAperture(open_quantile=0.5).open_aperture(0) == 0.0  # nothing seen yet: no open eye
    with pytest.raises(ValueError, match="open_quantile"):
        LidAperture(open_quantile=1.0)


def test_a_first_keyframe_with_closed_eyes_does_not_become_the_open_eye():
    lids = LidAperture()
    lids.update((0.03, 0.03))  # the first keyframe caught a blink
    for _ in range(5):
        lids.update((OPEN, OPEN))
    closure, _ = lids.update((OPEN, OPEN))
    assert closure.max() < 0.5
    closure, _ = lids.update((0.03, OPEN))
    assert closure[0] > 4.0 and closure[1] < 0.5


def test_eyes_shut_from_the_start_give_no_reading():
    lids = LidAperture()
    for _ in range(5):
        closure, movement = lids.update((0.02, 0.02))
    assert closure.max() == 0.0 and movement.max() == 0.0


def test_the_eyelid_model_is_checked_before_it_is_loaded(tmp_path):
    from stream.errors import WeightsError
    from stream.face.eyelids import EyelidContour, bundled_model

    EyelidContour()  # the packaged file passes its checksum
    copy = tmp_path / "iris_landmark.tflite"
    copy.write_bytes(bundled_model().read_bytes()[:-1] + b"x")
    with pytest.raises(WeightsError, match="sha256"):
        EyelidContour(copy, sha256=hashlib.sha256(bundled_model().read_bytes()).hexdigest())


@pytest.fixture(scope="module")
def d9_halves(shared_data):
    """Aligned half-faces of d9 frames with the eyes open (0, 100, 200) and in two blinks (307, 364)."""
    from stream.decode import VideoFile
    from stream.face.align import align_face, split_halves
    from stream.face.mtcnn import MTCNNDetector

    wanted = {0: "open", 100: "open", 200: "open", 307: "blink", 364: "blink"}
    detector = MTCNNDetector()
    out = {}
    with VideoFile(shared_data / "d9.mp4") as video:
        for frame in video.frames():
            if frame.index in wanted:
                face = detector.detect(frame.image).face
                assert face is not None
                out[frame.index] = (wanted[frame.index], split_halves(align_face(frame.image, face)))
            if frame.index >= max(wanted):
                break
    return out


def test_the_eyelid_model_reads_real_blinks_through_glasses(d9_halves):
    """d9 wears glasses; the dark-pixel measure before read these blinks as 1-2.7 of 5."""
    from stream.face.eyelids import EyelidContour

    contour = EyelidContour()
    for index, (state, halves) in d9_halves.items():
        for half in (halves.left, halves.right):
            a = contour.aperture(half)
            if state == "open":
                assert 0.18 < a < 0.4, (index, a)
            else:
                assert a < 0.12, (index, a)
    lids = LidAperture(contour)
    for index in (0, 100, 200, 0, 100):
        lids.measure((d9_halves[index][1].left, d9_halves[index][1].right))
    closure, _ = lids.measure((d9_halves[307][1].left, d9_halves[307][1].right))
    assert closure.min() > 3.5


@pytest.mark.parametrize("side", ["left", "right"])
def test_an_eye_drawn_shut_reads_closed_on_its_side_only(shared_data, side):
    """The harness's synthetic lid closure on a real face: the model sees one eye at a time."""
    from stream.decode import VideoFile
    from stream.face.align import align_face, split_halves
    from stream.face.eyelids import EyelidContour
    from stream.face.mtcnn import MTCNNDetector
    from stream.validate.construct.geometry import FaceGeometry
    from stream.validate.construct.spec import CaseSpec
    from stream.validate.construct.synkinesis import synkinesis_frame

    with VideoFile(shared_data / "single_face.mp4") as video:
        image = next(video.frames()).image
    face = MTCNNDetector().detect(image).face
    assert face is not None
    closed = synkinesis_frame(
        image, FaceGeometry(face.landmarks), CaseSpec("synkinesis_eye_on_smile", side), trigger=0.0, follow=1.0
    )
    contour = EyelidContour()
    before = split_halves(align_face(image, face))
    after = split_halves(align_face(closed, face))
    shut, kept = (0, 1) if side == "left" else (1, 0)
    a0 = [contour.aperture(h) for h in (before.left, before.right)]
    a1 = [contour.aperture(h) for h in (after.left, after.right)]
    assert a1[shut] < 0.6 * a0[shut]
    assert abs(a1[kept] - a0[kept]) < 0.05 * a0[kept]


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
