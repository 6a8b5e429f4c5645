"""3-D head pose from a face mesh: the fit, the depth, and the warp that carries a face into another pose.

Plain arrays with known answers, then the real mesh model on real faces.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from stream.face.headpose import STABLE_POINTS, HeadPose, depth_map, fit_pose, source_positions


def _rotation(yaw_deg: float, pitch_deg: float = 0.0, roll_deg: float = 0.0) -> np.ndarray:
    y, p, r = (math.radians(v) for v in (yaw_deg, pitch_deg, roll_deg))
    ry = np.array([[math.cos(y), 0, math.sin(y)], [0, 1, 0], [-math.sin(y), 0, math.cos(y)]])
    rx = np.array([[1, 0, 0], [0, math.cos(p), -math.sin(p)], [0, math.sin(p), math.cos(p)]])
    rz = np.array([[math.cos(r), -math.sin(r), 0], [math.sin(r), math.cos(r), 0], [0, 0, 1]])
    return rz @ rx @ ry


def _face_like_points(seed: int = 0) -> np.ndarray:
    """468 points over an ellipse of a 256-px face, with a nose-like bump in depth."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(60, 196, 468)
    y = rng.uniform(40, 220, 468)
    z = -30.0 * np.exp(-((x - 128) ** 2 + (y - 140) ** 2) / (2 * 25.0**2)) + rng.normal(0, 0.5, 468)
    return np.stack([x, y, z], axis=1)


def test_fit_pose_recovers_a_turn_and_ignores_points_an_expression_moved() -> None:
    source = _face_like_points()
    truth = HeadPose(1.07, _rotation(12.0, -4.0, 3.0), np.array([5.0, -8.0, 2.0]), 0.0)
    target = truth.apply(source)
    moved = list(STABLE_POINTS[:5])  # an expression drags five of the fitted points by 15 px
    target[moved, 1] -= 15.0
    pose = fit_pose(source, target)
    np.testing.assert_allclose(pose.rotation, truth.rotation, atol=1e-6)
    assert pose.scale == pytest.approx(1.07, abs=1e-6)
    yaw, pitch, roll = pose.angles_deg
    assert (yaw, pitch, roll) == pytest.approx((12.0, -4.0, 3.0), abs=1e-4)
    assert pose.residual < 1e-6
    # a plain least-squares fit, the moved points kept, would have been pulled by them
    plain = fit_pose(source, target, points=tuple(p for p in STABLE_POINTS if p not in moved))
    np.testing.assert_allclose(plain.rotation, pose.rotation, atol=1e-9)


def test_the_angle_of_a_pose_is_the_whole_rotation_about_its_axis() -> None:
    """A pure turn, nod or tilt gives its own angle; a rotation by 20 degrees about any axis gives 20."""
    for angles in ((12.0, 0.0, 0.0), (0.0, -7.0, 0.0), (0.0, 0.0, 3.0)):
        pose = HeadPose(1.0, _rotation(*angles), np.zeros(3), 0.0)
        assert pose.angle_deg == pytest.approx(max(map(abs, angles)), abs=1e-6)
    axis = np.array([1.0, 2.0, -0.5]) / np.linalg.norm([1.0, 2.0, -0.5])
    rotation, _ = cv2.Rodrigues(axis * math.radians(20.0))
    assert HeadPose(0.9, rotation, np.ones(3), 0.0).angle_deg == pytest.approx(20.0, abs=1e-6)
    assert HeadPose(1.0, np.eye(3), np.zeros(3), 0.0).angle_deg == 0.0


def test_fit_pose_refuses_what_it_cannot_fit() -> None:
    with pytest.raises(ValueError, match="same size"):
        fit_pose(np.zeros((468, 3)), np.zeros((400, 3)))
    bad = _face_like_points()
    bad[STABLE_POINTS[0]] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        fit_pose(bad, _face_like_points())


def test_depth_map_follows_the_points_inside_and_stays_finite_outside() -> None:
    rng = np.random.default_rng(1)
    x, y = rng.uniform(40, 200, 2000), rng.uniform(40, 200, 2000)
    z = 0.1 * x - 0.05 * y + 7.0  # a tilted plane
    depth = depth_map(np.stack([x, y, z], axis=1), (256, 256), sigma=4.0)
    assert depth.shape == (256, 256) and depth.dtype == np.float32
    inner = np.s_[60:180, 60:180]
    ys, xs = np.mgrid[0:256, 0:256]
    np.testing.assert_allclose(depth[inner], (0.1 * xs - 0.05 * ys + 7.0)[inner], atol=0.6)
    assert np.all(np.isfinite(depth))
    with pytest.raises(ValueError, match="inside"):
        depth_map(np.array([[500.0, 500.0, 1.0]]), (256, 256), 4.0)


def test_source_positions_invert_the_pose_with_each_pixels_depth() -> None:
    # a face-like depth (a nose bump) on a grid twice the source pixels
    ys, xs = np.mgrid[0:512, 0:512].astype(np.float32)
    depth = (-30.0 * np.exp(-((xs / 2 - 128) ** 2 + (ys / 2 - 140) ** 2) / (2 * 25.0**2))).astype(np.float32)
    pose = HeadPose(0.95, _rotation(15.0, 5.0, -2.0), np.array([12.0, -6.0, 0.0]), 0.0)
    rng = np.random.default_rng(2)
    src = np.stack([rng.uniform(80, 180, 200), rng.uniform(90, 190, 200)], axis=1)
    grid_x, grid_y = (src[:, 0] * 2).astype(np.float32)[None], (src[:, 1] * 2).astype(np.float32)[None]
    z = cv2.remap(depth, grid_x, grid_y, cv2.INTER_LINEAR)[0]
    target = pose.apply(np.column_stack([src, z])).astype(np.float32)
    sx, sy = source_positions(pose, depth, 2.0, target[None, :, 0], target[None, :, 1])
    np.testing.assert_allclose(np.stack([sx[0], sy[0]], axis=1), src, atol=0.05)  # remap's 1/32-px grid
    # the depth matters: the 2-D part of the pose alone misses the nose by pixels on a 15-degree turn
    flat_x, flat_y = source_positions(pose, np.zeros_like(depth), 2.0, target[None, :, 0], target[None, :, 1])
    assert np.abs(np.stack([flat_x[0], flat_y[0]], axis=1) - src).max() > 3.0


# -- the real mesh model on real faces ----------------------------------------------------------------
@pytest.fixture(scope="module")
def d9_face(shared_data):
    """Frame 0 of d9.mp4 (a frontal neutral face) and its MTCNN landmarks."""
    from stream.decode import VideoFile
    from stream.face.detect import build_detector

    path = shared_data / "d9.mp4"
    if not path.exists():
        pytest.skip(f"{path} not found")
    with VideoFile(path) as video:
        image = next(iter(video.frames())).image
    face = build_detector("mtcnn").detect(image).face
    assert face is not None, "no face in d9.mp4 frame 0"
    return image, np.asarray(face.landmarks, float)


def test_the_mesh_lands_on_the_face_the_detector_found(d9_face) -> None:
    from stream.face.mesh import FaceMesh

    image, landmarks = d9_face
    points = FaceMesh().on_image(image, landmarks)
    assert points.shape == (468, 3) and np.all(np.isfinite(points))
    iod = float(np.linalg.norm(landmarks[1] - landmarks[0]))
    # MediaPipe's indices: eye corners 33/133 (image-left eye) and 362/263, nose tip 1, mouth corners 61/291
    mesh_five = np.array(
        [
            (points[33, :2] + points[133, :2]) / 2,
            (points[362, :2] + points[263, :2]) / 2,
            points[1, :2],
            points[61, :2],
            points[291, :2],
        ]
    )
    assert np.linalg.norm(mesh_five - landmarks, axis=1).max() < 0.15 * iod
    # the nose tip stands out toward the camera (smaller depth) from the cheeks' outline
    assert points[1, 2] < min(points[234, 2], points[454, 2]) - 0.3 * iod


def test_a_shifted_face_gives_a_pure_shift_and_a_wrong_model_file_is_refused(d9_face, tmp_path) -> None:
    from stream.errors import WeightsError
    from stream.face.mesh import MODEL_SHA256, FaceMesh, bundled_model

    image, landmarks = d9_face
    mesh = FaceMesh()
    shift = np.float32([[1, 0, 9], [0, 1, -6]])
    moved = cv2.warpAffine(image, shift, (image.shape[1], image.shape[0]), borderMode=cv2.BORDER_REPLICATE)
    before = mesh.on_image(image, landmarks)
    pose = fit_pose(before, mesh.on_image(moved, landmarks + [9.0, -6.0]))
    # every point of the face moves by the shift, within the mesh's own jitter
    displacement = (pose.apply(before) - before)[:, :2]
    np.testing.assert_allclose(displacement, np.broadcast_to([9.0, -6.0], displacement.shape), atol=1.0)
    assert max(abs(a) for a in pose.angles_deg) < 1.0 and pose.scale == pytest.approx(1.0, abs=0.01)
    broken = tmp_path / "face_landmark.tflite"
    data = bytearray(bundled_model().read_bytes())
    data[len(data) // 2] ^= 0xFF
    broken.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="sha256"):
        FaceMesh(broken, sha256=MODEL_SHA256)
