"""Constructed palsy and synkinesis: what changes, on which side, and when.

Sides are the patient's: in an unmirrored frame the patient's right is the image's left
(landmarks 0 and 3), so "right" cases must change pixels at a < 0 (image-left of the midline).
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from stream.validate.construct import (
    CaseSpec,
    Constructor,
    FaceGeometry,
    episodes,
    side_region_mask,
)

# A synthetic upright face, IOD 100 px: eyes, nose, mouth corners in image order.
LANDMARKS = np.array([[270.0, 200.0], [370.0, 200.0], [320.0, 260.0], [280.0, 310.0], [360.0, 310.0]])


def _texture(seed: int = 0, shape: tuple[int, int] = (480, 640)) -> np.ndarray:
    """Smooth random texture (something for optical flow to hold on to), uint8 RGB."""
    rng = np.random.default_rng(seed)
    noise = rng.uniform(70, 230, (shape[0] // 8, shape[1] // 8, 3)).astype(np.float32)  # blobs stay darkest
    return np.clip(cv2.resize(noise, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC), 0, 255).astype(np.uint8)


def _with_corner_blobs(image: np.ndarray, shift: tuple[float, float]) -> np.ndarray:
    """Dark blobs at both mouth corners, each moved outward by shift[0] and up by shift[1] px (a smile)."""
    out = image.copy()
    for (x, y), outward in ((LANDMARKS[3], -1.0), (LANDMARKS[4], 1.0)):
        centre = (int(round(x + outward * shift[0])), int(round(y - shift[1])))
        cv2.circle(out, centre, 9, (10, 10, 10), -1, lineType=cv2.LINE_AA)
    return out


def _blob_centroid(image: np.ndarray, x_range: tuple[int, int]) -> np.ndarray:
    patch = image[250:370, x_range[0] : x_range[1]].min(axis=2)
    ys, xs = np.nonzero(patch < 40)
    assert len(xs) > 50, "blob not found"
    return np.array([xs.mean() + x_range[0], ys.mean() + 250])


def _face_coords(landmarks: np.ndarray, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    g = FaceGeometry(landmarks)
    return g.face_coords(np.arange(shape[1]), np.arange(shape[0]))


def _run(
    case: CaseSpec,
    frames: list[np.ndarray],
    landmarks: list[np.ndarray | None],
    fps: float = 30.0,
    n_frames: int | None = None,
) -> list[np.ndarray]:
    c = Constructor(case, fps, n_frames or len(frames))
    return [c.frame(i, f, lm) for i, (f, lm) in enumerate(zip(frames, landmarks))]


# -- cases and geometry ---------------------------------------------------------------------------
def test_case_spec_rejects_what_it_cannot_construct() -> None:
    with pytest.raises(ValueError, match="kind"):
        CaseSpec("wink", "left")
    with pytest.raises(ValueError, match="patient"):
        CaseSpec("freeze", "image-left")
    with pytest.raises(ValueError, match="region"):
        CaseSpec("damp", "left", "nose", 0.35)
    with pytest.raises(ValueError, match="factor"):
        CaseSpec("damp", "left", "face", 1.5)
    with pytest.raises(ValueError, match="damp"):
        CaseSpec("freeze", "left", "face", 0.35)
    assert CaseSpec("damp", "left", "mouth", 0.35).name == "damp0.35_left_mouth"


def test_face_frame_follows_head_roll() -> None:
    # roll the synthetic face by 30 degrees about the eye midpoint: the patient's right mouth corner
    # region must still be inside the right-side mouth mask, and the left one outside
    rot = cv2.getRotationMatrix2D((320.0, 200.0), 30.0, 1.0)
    rolled = np.hstack([LANDMARKS, np.ones((5, 1))]) @ rot.T
    g = FaceGeometry(rolled)
    a, b = g.face_coords(np.arange(640), np.arange(480))
    mask = side_region_mask(a, b, "right", "mouth")
    right_corner, left_corner = np.round(rolled[3]).astype(int), np.round(rolled[4]).astype(int)
    inward = np.round(g.to_image(-0.25, -1.1)).astype(int)  # patient's right cheek beside the mouth
    assert mask[inward[1], inward[0]] > 0.99
    assert mask[right_corner[1], right_corner[0]] > 0.99
    assert mask[left_corner[1], left_corner[0]] == 0.0
    assert abs(g.iod - 100.0) < 1e-6 and g.up[1] < 0  # up points up the image for a small roll


# -- freeze / damp on synthetic frames ------------------------------------------------------------
def test_freeze_right_holds_the_image_left_corner_and_leaves_the_other_side_alone() -> None:
    base = _texture()
    reference, smiling = _with_corner_blobs(base, (0, 0)), _with_corner_blobs(base, (7, 5))
    out = _run(CaseSpec("freeze", "right"), [reference, smiling], [LANDMARKS, LANDMARKS])[1]
    # the patient's right corner (image left) stays where the reference had it ...
    held = _blob_centroid(out, (240, 320))
    assert np.linalg.norm(held - _blob_centroid(reference, (240, 320))) < 1.5
    # ... while the patient's left corner (image right) smiles, bit for bit as in the frame
    a, _ = _face_coords(LANDMARKS, out.shape)
    np.testing.assert_array_equal(out[a > 0], smiling[a > 0])
    assert np.linalg.norm(_blob_centroid(out, (320, 400)) - _blob_centroid(smiling, (320, 400))) < 0.5


def test_damp_keeps_a_fraction_of_the_motion() -> None:
    base = _texture(1)
    reference, smiling = _with_corner_blobs(base, (0, 0)), _with_corner_blobs(base, (10, 0))
    out = _run(CaseSpec("damp", "left", "mouth", 0.35), [reference, smiling], [LANDMARKS, LANDMARKS])[1]
    moved = _blob_centroid(out, (320, 420))[0] - _blob_centroid(reference, (320, 420))[0]
    assert 1.8 < moved < 5.0  # about 35 % of 10 px
    a, _ = _face_coords(LANDMARKS, out.shape)
    np.testing.assert_array_equal(out[a < 0], smiling[a < 0])


def test_factor_one_changes_nothing_and_missing_landmarks_pass_through() -> None:
    base = _texture(2)
    frames = [_with_corner_blobs(base, (s, s / 2)) for s in (0, 4, 8)]
    c = Constructor(CaseSpec("damp", "right", "face", 1.0), 30.0, 3)
    outs = [c.frame(i, f, LANDMARKS) for i, f in enumerate(frames)]
    for f, o in zip(frames, outs):
        assert np.abs(o.astype(int) - f.astype(int)).max() <= 2
    assert c.frame(3, frames[2], None) is frames[2]


def test_frames_at_other_resolutions_and_a_face_at_the_border() -> None:
    base = _texture(3, (2160, 3840))
    lm = LANDMARKS * 4.0 + [1500.0, 600.0]
    out = _run(CaseSpec("freeze", "left"), [base, np.roll(base, 3, axis=0)], [lm, lm])[1]
    assert out.shape == base.shape and out.dtype == np.uint8
    # a face half outside the picture still works
    small = _texture(4, (300, 340))
    lm_edge = LANDMARKS - [0.0, 120.0]
    out = _run(CaseSpec("freeze", "right"), [small, np.roll(small, 2, axis=1)], [lm_edge, lm_edge])[1]
    assert out.shape == small.shape


# -- synkinesis on synthetic frames ---------------------------------------------------------------
def test_episodes_are_three_and_placed_at_20_50_80_percent() -> None:
    eps = episodes(30.0, 600)  # 20 s
    assert [round((e.start_s + e.end_s) / 2, 6) for e in eps] == [4.0, 10.0, 16.0]
    assert all(abs(e.end_s - e.start_s - 1.5) < 1e-9 for e in eps)
    c = Constructor(CaseSpec("synkinesis_eye_on_smile", "right"), 30.0, 600)
    weights = np.array([c.episode_weight(i) for i in range(600)])
    assert weights[120] == weights[300] == weights[480] == 1.0
    assert weights[0] == weights[200] == weights[400] == weights[599] == 0.0
    assert ((weights > 0).sum() / 30.0) == pytest.approx(3 * 1.5, abs=0.15)
    assert np.all(np.abs(np.diff(weights)) < 0.2)  # smooth rise and fall
    # a 4 s clip: shorter episodes that still do not touch
    short = [e for e in episodes(25.0, 100)]
    assert all(a.end_s < b.start_s for a, b in zip(short, short[1:]))
    assert short[0].start_s > 0 and short[-1].end_s < 4.0


def _region_change(
    out: np.ndarray,
    frame: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    a_range: tuple[float, float],
    b_range: tuple[float, float],
) -> float:
    sel = (a > a_range[0]) & (a < a_range[1]) & (b > b_range[0]) & (b < b_range[1])
    return float(np.abs(out.astype(int) - frame.astype(int))[sel].mean())


EYE_BAND = (-0.12, 0.3)
MOUTH_BAND = (-1.4, -0.8)


def test_eye_on_smile_closes_the_chosen_eye_only_inside_episodes() -> None:
    frame = _texture(5)
    a, b = _face_coords(LANDMARKS, frame.shape)
    c = Constructor(CaseSpec("synkinesis_eye_on_smile", "right"), 30.0, 600)
    assert c.frame(200, frame, LANDMARKS) is frame  # between episodes
    out = c.frame(300, frame, LANDMARKS)  # middle of the second episode
    right_eye = _region_change(out, frame, a, b, (-0.7, -0.3), EYE_BAND)  # patient's right = image left
    left_eye = _region_change(out, frame, a, b, (0.3, 0.7), EYE_BAND)
    assert right_eye > 10.0 and left_eye == 0.0
    for corner in ((-0.7, -0.2), (0.2, 0.7)):  # a bilateral smile
        assert _region_change(out, frame, a, b, corner, MOUTH_BAND) > 5.0


def test_mouth_on_eye_closure_lifts_the_chosen_corner_and_closes_both_eyes() -> None:
    frame = _texture(6)
    a, b = _face_coords(LANDMARKS, frame.shape)
    c = Constructor(CaseSpec("synkinesis_mouth_on_eye_closure", "left"), 30.0, 600)
    out = c.frame(120, frame, LANDMARKS)
    for eye in ((-0.7, -0.3), (0.3, 0.7)):
        assert _region_change(out, frame, a, b, eye, EYE_BAND) > 10.0
    assert _region_change(out, frame, a, b, (0.2, 0.7), MOUTH_BAND) > 5.0  # patient's left = image right
    assert _region_change(out, frame, a, b, (-0.7, -0.2), MOUTH_BAND) < 0.5


def test_lid_drop_brings_the_upper_texture_down_over_the_eye() -> None:
    # horizontal stripes: above the eye bright, below dark; closing the eye spreads bright downward
    frame = np.full((480, 640, 3), 40, np.uint8)
    frame[:200] = 220
    c = Constructor(CaseSpec("synkinesis_eye_on_smile", "left"), 30.0, 600)
    out = c.frame(300, frame, LANDMARKS)
    column_left_eye, column_right_eye = 370, 270  # image right = patient's left
    assert out[205, column_left_eye].mean() > 200  # 0.05 IOD below the eye line is now lid
    assert out[205, column_right_eye].mean() < 50


@pytest.mark.parametrize("upper, lower", [(0.0, -0.05), (0.07, -0.06), (0.13, -0.07), (0.2, -0.1)])
def test_lid_pull_never_folds_and_brings_the_upper_margin_onto_the_lower(upper: float, lower: float) -> None:
    """From a narrow to a wide-open eye: the backward warp stays monotonic down every column (a fold
    would mirror the texture), and at full weight the lower margin shows what was at the upper one."""
    from stream.validate.construct import EyeShape, lid_profile

    shape = EyeShape(upper=upper, lower=lower)
    b = np.linspace(-0.4, 0.9, 2601, dtype=np.float32)
    for a in (0.0, 0.1, 0.2, 0.25):
        sample = b + shape.drop * lid_profile(np.full_like(b, a), b, shape)
        assert np.all(np.diff(sample) > 0), a
    at_lower = lower + shape.drop * float(lid_profile(np.float32(0.0), np.float32(lower), shape))
    assert at_lower >= upper


# -- real frames --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def d9_frames(shared_data):
    """Frames 0 (neutral) and 350 (broad smile) of d9.mp4 with MTCNN landmarks."""
    path = shared_data / "d9.mp4"
    if not path.exists():
        pytest.skip(f"{path} not found")
    from stream.decode import VideoFile
    from stream.face.detect import build_detector

    wanted = {0: None, 350: None}
    with VideoFile(path) as video:
        for frame in video.frames():
            if frame.index in wanted:
                wanted[frame.index] = frame.image
            if frame.index >= max(wanted):
                break
    detector = build_detector("mtcnn")
    out = []
    for index in sorted(wanted):
        detection = detector.detect(wanted[index])
        assert detection.face is not None, f"no face in d9.mp4 frame {index}"
        out.append((wanted[index], detection.face.landmarks))
    return out


def test_real_freeze_right_shows_the_reference_in_the_current_pose(d9_frames) -> None:
    (ref, ref_lm), (smile, smile_lm) = d9_frames
    out = _run(CaseSpec("freeze", "right"), [ref, smile], [ref_lm, smile_lm])[1]
    pose = cv2.getAffineTransform(ref_lm[:3].astype(np.float32), smile_lm[:3].astype(np.float32))
    warped_ref = cv2.warpAffine(
        ref, pose, (ref.shape[1], ref.shape[0]), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    a, b = _face_coords(smile_lm, smile.shape)
    frozen = side_region_mask(a, b, "right", "face") > 0.999
    assert frozen.sum() > 5000
    diff = np.abs(out.astype(int) - warped_ref.astype(int))[frozen]
    assert np.percentile(diff, 99) <= 2
    # the smile really was removed there, and nothing moved on the patient's left
    assert np.abs(smile.astype(int) - out.astype(int))[frozen].mean() > 5.0
    np.testing.assert_array_equal(out[a > 0], smile[a > 0])


def test_real_freeze_with_the_mesh_turns_the_reference_in_3d(d9_frames) -> None:
    from stream.face.mesh import FaceMesh
    from stream.validate.construct.damp import ReferencePose, inside_outline, posed_reference

    (ref, ref_lm), (smile, smile_lm) = d9_frames
    mesh = FaceMesh()
    c = Constructor(CaseSpec("freeze", "right"), 30.0, 2, mesh=mesh)
    out = [c.frame(i, f, lm) for i, (f, lm) in enumerate([(ref, ref_lm), (smile, smile_lm)])][1]
    ref_mesh, smile_mesh = mesh.on_image(ref, ref_lm), mesh.on_image(smile, smile_lm)
    box = (0, 0, ref.shape[1], ref.shape[0])
    reference = ReferencePose.of(ref_lm, ref_mesh, ref.shape)
    posed = posed_reference(ref, reference, smile_lm, smile_mesh, box)
    flat = posed_reference(ref, ReferencePose.of(ref_lm, None, ref.shape), smile_lm, None, box)
    a, b = _face_coords(smile_lm, smile.shape)
    # the frozen half within the face's outline in both frames (beyond it the frame is kept: see below)
    assert reference.outline is not None
    iod = float(np.linalg.norm(smile_lm[1] - smile_lm[0]))
    face = inside_outline(smile_mesh, box, iod) * posed_reference(
        reference.outline, reference, smile_lm, smile_mesh, box
    )
    frozen = (side_region_mask(a, b, "right", "face") > 0.999) & (face > 0.999)
    # the frozen half is the reference in the mesh's 3-D pose, not in the eyes-and-nose affine ...
    assert np.percentile(np.abs(out.astype(int) - posed.astype(int))[frozen], 99) <= 2
    assert np.abs(posed.astype(int) - flat.astype(int))[frozen].mean() > 1.0
    # ... the smile is gone there, and the patient's left is the frame itself
    assert np.abs(smile.astype(int) - out.astype(int))[frozen].mean() > 5.0
    np.testing.assert_array_equal(out[a > 0], smile[a > 0])


def test_real_damp_changes_only_the_chosen_band(d9_frames) -> None:
    (ref, ref_lm), (smile, smile_lm) = d9_frames
    out = _run(CaseSpec("damp", "left", "mouth", 0.35), [ref, smile], [ref_lm, smile_lm])[1]
    a, b = _face_coords(smile_lm, smile.shape)
    changed = np.abs(out.astype(int) - smile.astype(int)).max(axis=2)
    assert changed[(a < 0)].max() == 0
    assert changed[b > -0.55 + 0.06 + 0.02].max() == 0  # above the mouth band, its feather and a grid step
    assert changed[(a > 0.3) & (b < -0.8) & (b > -1.3)].mean() > 3.0


def test_real_factor_one_is_the_frame(d9_frames) -> None:
    (ref, ref_lm), (smile, smile_lm) = d9_frames
    out = _run(CaseSpec("damp", "right", "face", 1.0), [ref, smile], [ref_lm, smile_lm])[1]
    assert np.abs(out.astype(int) - smile.astype(int)).max() <= 2


def test_natural_mouth_trigger_with_the_mesh_reads_the_smile_not_the_head(d9_frames) -> None:
    from stream.face.mesh import FaceMesh
    from stream.validate.construct import FaceGeometry, NaturalTrigger

    (ref, ref_lm), (smile, smile_lm) = d9_frames
    trigger = NaturalTrigger("synkinesis_eye_on_smile", FaceMesh())
    assert trigger.weight(ref, FaceGeometry(ref_lm)) == 0.0  # the first frame is the neutral
    # the neutral face tilted by 8 degrees and 10 % closer to the camera: the head moved, the mouth did not
    centre = tuple(float(v) for v in ref_lm[2])
    m = cv2.getRotationMatrix2D(centre, 8.0, 1.1)
    tilted = cv2.warpAffine(
        ref, m, (ref.shape[1], ref.shape[0]), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    tilted_lm = ref_lm @ m[:, :2].T + m[:, 2]
    assert trigger.weight(tilted, FaceGeometry(tilted_lm)) < 0.2
    # the broad smile of frame 350 is a full trigger
    assert trigger.weight(smile, FaceGeometry(smile_lm)) > 0.8


def test_real_freeze_with_the_mesh_stays_inside_the_face_outline(d9_frames) -> None:
    from stream.face.mesh import FaceMesh
    from stream.validate.construct.damp import inside_outline

    (ref, ref_lm), (smile, smile_lm) = d9_frames
    mesh = FaceMesh()
    c = Constructor(CaseSpec("freeze", "right"), 30.0, 2, mesh=mesh)
    out = [c.frame(i, f, lm) for i, (f, lm) in enumerate([(ref, ref_lm), (smile, smile_lm)])][1]
    iod = float(np.linalg.norm(smile_lm[1] - smile_lm[0]))
    inside = inside_outline(mesh.on_image(smile, smile_lm), (0, 0, smile.shape[1], smile.shape[0]), iod)
    a, b = _face_coords(smile_lm, smile.shape)
    mask = side_region_mask(a, b, "right", "face")
    changed = np.abs(out.astype(int) - smile.astype(int)).max(axis=2)
    # hair, ears and background beside the frozen cheek are the frame's own (3 px from the outline's
    # feather: the mask is computed on a coarser grid and resized) ...
    near_face = cv2.dilate((inside > 1e-3).astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
    beyond = (mask > 0.5) & ~near_face
    assert beyond.sum() > 500
    assert changed[beyond].max() == 0
    # ... while the face within the outline is the frozen reference
    assert changed[(mask > 0.999) & (inside > 0.999)].mean() > 5.0


def test_freeze_holds_the_frame_the_product_takes_as_its_reference() -> None:
    from stream.face.align import yaw_index
    from stream.validate.construct import ReferenceRule

    # the first frame's nose stands off the eyes' midpoint (a head turned by about 10 degrees), the
    # second faces the camera: the pipeline's reference is the second, so the freeze holds that one
    turned = LANDMARKS + np.array([[0.0, 0.0], [0.0, 0.0], [9.0, 0.0], [0.0, 0.0], [0.0, 0.0]])
    assert abs(yaw_index(turned)) > 0.06 >= abs(yaw_index(LANDMARKS))
    base = _texture(5)
    frames = [_with_corner_blobs(base, (s, 0)) for s in (2, 5, 10)]
    rule = ReferenceRule(max_yaw=0.06, wait_s=2.0)
    c = Constructor(CaseSpec("freeze", "left"), 30.0, 3, reference=rule)
    outs = [c.frame(i, f, lm) for i, (f, lm) in enumerate(zip(frames, [turned, LANDMARKS, LANDMARKS]))]
    assert outs[0] is frames[0] and outs[1] is frames[1]  # not measured, then the reference itself
    assert c.reference is not None and np.array_equal(c.reference, frames[1])
    held = _blob_centroid(outs[2], (320, 420))[0] - _blob_centroid(frames[1], (320, 420))[0]
    assert abs(held) < 1.0  # the patient's left corner stays where the reference had it (5 px out)

    # no frame faces the camera: the first one after the wait is taken, as the pipeline does
    c = Constructor(CaseSpec("freeze", "left"), 1.0, 4, reference=rule)
    outs = [c.frame(i, f, turned) for i, f in enumerate([frames[0], frames[1], frames[2]])]
    assert c.reference is not None and np.array_equal(c.reference, frames[2])

    # a frame turned beyond the pipeline's pose gate is not measured at all: it neither starts the
    # wait nor becomes the reference, however long the wait has run
    away = LANDMARKS + np.array([[0.0, 0.0], [0.0, 0.0], [40.0, 0.0], [0.0, 0.0], [0.0, 0.0]])
    assert abs(yaw_index(away)) > 0.25
    gated = ReferenceRule(max_yaw=0.06, wait_s=2.0, gate_yaw=0.25)
    c = Constructor(CaseSpec("freeze", "left"), 1.0, 6, reference=gated)
    sequence = [(frames[0], away)] * 3 + [(frames[1], turned)] * 2 + [(frames[2], turned)]
    outs = [c.frame(i, f, lm) for i, (f, lm) in enumerate(sequence)]
    assert all(o is f for o, (f, _) in zip(outs, sequence))  # left alone up to the reference itself
    # the wait began at frame 3 (3 s), so the reference is frame 5, not frame 2
    assert c.reference is not None and np.array_equal(c.reference, frames[2])
