"""The training-free flow estimator on a real aligned face with movements applied by construction."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from stream.au.flow import FlowAUEstimator
from stream.aus import AU_INDEX
from stream.decode import VideoFile
from stream.face.align import align_face, split_halves
from stream.types import Keyframe


@pytest.fixture(scope="module")
def neutral_aligned(shared_data) -> np.ndarray:
    from stream.face.mtcnn import MTCNNDetector

    with VideoFile(shared_data / "single_face.mp4") as video:
        image = next(video.frames()).image
    face = MTCNNDetector().detect(image).face
    assert face is not None
    return align_face(image, face)


def _move(aligned: np.ndarray, box: tuple[int, int, int, int], dx: float, dy: float, image_side: str) -> np.ndarray:
    """Move the content of ``box`` (half-face coords x0, y0, x1, y1) by (dx, dy) on one image half, smoothly."""
    h, w = aligned.shape[:2]
    x0, y0, x1, y1 = box
    if image_side == "left":  # half-face x == image x
        cx0, cx1, sx = x0, x1, 1.0
    else:  # mirrored half: half-face x maps to image x = w - 1 - x
        cx0, cx1, sx = w - 1 - x1, w - 1 - x0, -1.0
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    weight = np.zeros((h, w), np.float32)
    weight[y0:y1, cx0:cx1] = 1.0
    weight = cv2.GaussianBlur(weight, (0, 0), 6)
    map_x = xx - sx * dx * weight
    map_y = yy - dy * weight
    return cv2.remap(aligned, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def _keyframe(aligned: np.ndarray, index: int) -> Keyframe:
    return Keyframe(index, index / 30, split_halves(aligned), aligned)


@pytest.fixture(scope="module")
def face_mesh():
    from stream.face.mesh import FaceMesh

    return FaceMesh()


@pytest.fixture(params=["mesh", "no mesh"])
def make_estimator(request, face_mesh):
    """The estimator as the product builds it (each keyframe first carried into the reference's 3-D head
    pose by the face mesh) and without the mesh (the 2-D alignment and stabilisation alone)."""
    return lambda: FlowAUEstimator(mesh=face_mesh if request.param == "mesh" else None)


def test_brow_raise_on_the_patients_right_reads_as_AU1_AU2_on_the_right_only(neutral_aligned, make_estimator):
    est = make_estimator()
    est.encode(_keyframe(neutral_aligned, 0))  # neutral reference
    # patient's right = image-left half in an unmirrored frame; raise the brows 10 px
    raised = _move(neutral_aligned, (130, 125, 250, 185), 0, -10, image_side="left")
    e = est.estimate(est.encode(_keyframe(raised, 1)), [])
    assert e.right[AU_INDEX["AU1"]] > 1.0 and e.right[AU_INDEX["AU2"]] > 1.0
    assert e.left[AU_INDEX["AU1"]] < 0.3 and e.left[AU_INDEX["AU2"]] < 0.3
    assert e.right[AU_INDEX["AU4"]] == 0.0  # brows up is not a brow lowerer


def test_lip_corner_pulled_up_and_out_on_the_patients_left_reads_as_AU12_left(neutral_aligned, make_estimator):
    est = make_estimator()
    est.encode(_keyframe(neutral_aligned, 0))
    # patient's left = image-right half; move its mouth corner laterally (-x in half coords) and up
    smile = _move(neutral_aligned, (185, 300, 238, 345), -9, -12, image_side="right")
    e = est.estimate(est.encode(_keyframe(smile, 1)), [])
    assert e.left[AU_INDEX["AU12"]] > 1.0
    assert e.right[AU_INDEX["AU12"]] < 0.3
    assert e.left[AU_INDEX["AU15"]] == 0.0  # corner up is not a depressor


def test_dem_helpers_agree_with_the_direct_measurement(neutral_aligned, make_estimator):
    est = make_estimator()
    est.encode(_keyframe(neutral_aligned, 0))
    half = _move(neutral_aligned, (130, 125, 250, 185), 0, -5, image_side="left")
    full = _move(neutral_aligned, (130, 125, 250, 185), 0, -10, image_side="left")
    helper = est.encode(_keyframe(half, 1))
    current = est.encode(_keyframe(full, 2))
    direct = est.estimate(current, [])
    via_helper = est.estimate(current, [helper])
    assert via_helper.n_helpers == 1
    # Y_j + ΔY_ij measures the same brow raise as the reference-to-current flow
    assert via_helper.right[AU_INDEX["AU1"]] == pytest.approx(direct.right[AU_INDEX["AU1"]], abs=0.6)
    assert via_helper.right[AU_INDEX["AU1"]] > 1.0


def test_values_stay_on_the_0_5_scale(neutral_aligned, make_estimator):
    est = make_estimator()
    est.encode(_keyframe(neutral_aligned, 0))
    extreme = _move(neutral_aligned, (130, 125, 250, 185), 0, -40, image_side="left")
    e = est.estimate(est.encode(_keyframe(extreme, 1)), [])
    for values in (e.left, e.right):
        assert values.min() >= 0.0 and values.max() <= 5.0


def test_region_medians_equal_numpys_to_the_bit():
    """The regions' median is taken 60 times a keyframe; the fast path must not move a single value."""
    from stream.au.flow import median_rows

    rng = np.random.default_rng(7)
    for n in [1, 2, 3, 4, 5, 48, 49, 600, 601]:
        for rounded in (False, True):  # ties, as in flat flow fields
            values = (rng.normal(size=(n, 2)) * 6).astype(np.float32)
            values = np.round(values) if rounded else values
            got, want = median_rows(values), np.median(values, axis=0)
            assert got.dtype == want.dtype and np.array_equal(got, want)


@pytest.fixture(scope="module")
def turned_d9(shared_data, face_mesh):
    """d9's first (neutral) frame and the same face rendered 12 degrees turned (its own mesh and depth, no
    expression), with the faces the detector finds on them: (image, face, turned, turned_face)."""
    from stream.face.mtcnn import MTCNNDetector
    from stream.validate.construct.damp import ReferencePose, posed_reference

    with VideoFile(shared_data / "d9.mp4") as video:
        image = next(video.frames()).image
    detector = MTCNNDetector()
    face = detector.detect(image).face
    assert face is not None
    points = face_mesh.on_image(image, face.landmarks)
    yaw = np.radians(12.0)
    rotation = np.array([[np.cos(yaw), 0, np.sin(yaw)], [0, 1, 0], [-np.sin(yaw), 0, np.cos(yaw)]])
    centre = points.mean(axis=0)
    turned_points = (points - centre) @ rotation.T + centre
    h, w = image.shape[:2]
    turned = posed_reference(
        image, ReferencePose.of(face.landmarks, points, image.shape), face.landmarks, turned_points, (0, 0, w, h)
    )
    turned_face = detector.detect(turned).face
    assert turned_face is not None
    return image, face, turned, turned_face


def test_a_head_turn_without_expression_reads_as_no_movement_with_the_mesh(turned_d9, face_mesh):
    """The 2-D alignment pins the nose tip to the midline and reads a 12-degree turn's parallax as
    movement; carried back into the reference's 3-D pose first, the face reads still."""
    image, face, turned, turned_face = turned_d9

    def displacement(est: FlowAUEstimator) -> np.ndarray:
        """Median over the regions of each side of how far they moved, template pixels (before any floor)."""
        est.encode(_keyframe(align_face(image, face), 0))
        code = est.encode(_keyframe(align_face(turned, turned_face), 1))
        return np.median(np.linalg.norm(code.payload.disp, axis=2), axis=1)

    with_mesh, without = displacement(FlowAUEstimator(mesh=face_mesh)), displacement(FlowAUEstimator())
    assert with_mesh.max() < 1.0, with_mesh
    assert without.mean() > 2.5 * with_mesh.mean(), (without, with_mesh)


def test_the_turn_from_the_reference_pose_is_measured_with_the_mesh(turned_d9, face_mesh):
    """The reference reads 0 degrees and the same face turned by 12 degrees reads a turn (about 9: the
    2-D alignment's shear takes up part of a pure turn; on real clips the turn between aligned faces
    follows the frames' own within 15 %); without a mesh the estimator does not measure it (None)."""
    image, face, turned, turned_face = turned_d9
    frames = (_keyframe(align_face(image, face), 0), _keyframe(align_face(turned, turned_face), 1))
    for mesh in (face_mesh, None):
        est = FlowAUEstimator(mesh=mesh)
        turns = [est.estimate(est.encode(kf), []).turn_deg for kf in frames]
        if mesh is None:
            assert turns == [None, None]
        else:
            assert turns[0] == 0.0
            assert turns[1] is not None and 6.0 < turns[1] < 15.0, turns


@pytest.mark.parametrize("limit", [5.0, 20.0])
def test_the_pipeline_leaves_out_a_keyframe_turned_beyond_the_limit(turned_d9, face_mesh, limit):
    """With the limit below the turn, the turned keyframe is counted as gated and kept out of the
    series, the statistics and the helpers; above it, it is measured like any keyframe."""
    from stream.config import AnalysisConfig
    from stream.face.mtcnn import MTCNNDetector
    from stream.pipeline import Pipeline

    image, face, turned, turned_face = turned_d9
    pipeline = Pipeline(
        AnalysisConfig(max_turn_deg=limit), detector=MTCNNDetector(), estimator=FlowAUEstimator(mesh=face_mesh)
    )
    pipeline.analyze(_keyframe(align_face(image, face), 0))
    result = pipeline.analyze(_keyframe(align_face(turned, turned_face), 1))
    gated = limit < 6.0
    assert result.estimate.pose_gated is gated
    assert pipeline.counts.extra.get("keyframes_pose_gated", 0) == int(gated)
    assert len(pipeline.series()) == (1 if gated else 2)
    assert len(pipeline.buffer) == (1 if gated else 2)
    assert pipeline.symptoms().n_frames == len(pipeline.series())
    # a gated keyframe is not measured at all: no flows, no helpers, and its lids do not enter the
    # open-eye reference of either side (one keyframe's apertures in it, or two)
    lids = pipeline.estimator._lids
    assert [int(h.sum()) for h in lids._histograms] == ([1, 1] if gated else [2, 2])
    assert result.estimate.n_helpers == (0 if gated else 1)
