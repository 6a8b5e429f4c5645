"""Training-free default AU estimator: dense optical flow in anatomical regions of the half-face.

No model trained on AU labels ships in any package this product can install, so the default
measures *movement*: DIS optical flow (OpenCV) between a per-session neutral reference half-face
(the first keyframe, which the pipeline makes the first frame facing the camera) and the current
half-face, averaged in fixed anatomical regions of the aligned template and projected onto each AU's
direction of movement (brow up, lid up, cheek up, lip corner up-and-out, ...), scaled so that a
full-range movement gives 5.

The DEM form of the paper still applies: a helper keyframe j carries its own estimate Y_j (flow from
the reference), and the flow measured directly from j to the current frame i gives ΔY_ij, so the
value Y_j + ΔY_ij is an independent measurement of frame i; averaging over m helpers reduces the
flow noise. It is a *proxy* for AU intensity, labelled as such (``is_proxy``); see docs/au_flow.md.

Coordinates: half-faces are 512x256 with the face midline on the right edge (see align.split_halves),
so +x points toward the midline (medial) and +y down, the same for both sides.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from stream.au.base import AUEstimator, KeyframeCode, register_estimator
from stream.au.lids import LidAperture
from stream.aus import AU_NAMES, N_AUS
from stream.face.headpose import HeadPose, depth_map, fit_pose, target_positions
from stream.face.mesh import FaceMesh
from stream.types import AUEstimate, Keyframe

# Flow is computed at half resolution (256x128) for speed; displacements are reported in pixels
# of the 512x256 half-face (inter-ocular distance 128 px in the template).
SCALE = 2


@dataclass(frozen=True)
class Region:
    x0: int
    y0: int
    x1: int
    y1: int  # half-face pixels (512-high template)


# Regions placed on the template of stream.face.align (eyes at y=200, eye centre x=192, nose tip
# (256, 273), mouth corner at rest near (215, 322), chin near y=400), checked on real faces.
REGIONS: dict[str, Region] = {
    "inner_brow": Region(195, 135, 248, 182),
    "outer_brow": Region(130, 135, 195, 182),
    "upper_lid": Region(168, 180, 216, 197),
    "cheek": Region(150, 228, 215, 285),
    "nose_side": Region(222, 222, 250, 268),
    "mouth_corner": Region(188, 302, 236, 345),
    "upper_lip": Region(232, 300, 256, 318),
    "lower_lip": Region(232, 330, 256, 352),
    "chin": Region(212, 360, 256, 400),
    # Moves least with expression: its displacement is taken as residual alignment error.
    "bridge": Region(222, 195, 256, 235),
}
REGION_NAMES = tuple(REGIONS)
# Where the template expects the mouth corner of a face at rest (half-face px), and how far a detected
# corner may move the mouth-corner region from there.
MOUTH_CORNER_AT_REST = np.array([215.0, 322.0])
MAX_CORNER_SHIFT_PX = 48.0

# Per AU: (region, unit direction (dx, dy) of the movement, displacement in px that reads as 5).
# dy < 0 is up; dx < 0 is away from the midline (lateral).
_AU_RULES: dict[str, tuple[str, tuple[float, float], float]] = {
    "AU1": ("inner_brow", (0.0, -1.0), 18.0),
    "AU2": ("outer_brow", (0.0, -1.0), 18.0),
    "AU4": ("inner_brow", (0.6, 0.8), 12.0),
    "AU5": ("upper_lid", (0.0, -1.0), 8.0),
    "AU6": ("cheek", (0.0, -1.0), 12.0),
    "AU9": ("nose_side", (0.0, -1.0), 10.0),
    "AU12": ("mouth_corner", (-0.6, -0.8), 24.0),
    "AU15": ("mouth_corner", (-0.2, 0.98), 14.0),
    "AU17": ("chin", (0.0, -1.0), 14.0),
    "AU20": ("mouth_corner", (-0.95, 0.31), 20.0),
    "AU25": ("lips_apart", (0.0, 1.0), 20.0),
    "AU26": ("chin", (0.0, 1.0), 40.0),
}
# Eye closure (AU43) is not a flow measurement: the iris vanishes under the lid rather than moving,
# so it comes from the lid aperture (stream/au/lids.py).
assert tuple(_AU_RULES) == AU_NAMES


def _projection_matrix() -> np.ndarray:
    """Linear map from region displacements (R regions x 2, with lips_apart) to the 12 AU values."""
    names = list(REGION_NAMES) + ["lips_apart"]
    w = np.zeros((N_AUS, len(names) * 2))
    for a, au in enumerate(AU_NAMES):
        region, (ux, uy), full = _AU_RULES[au]
        r = names.index(region)
        w[a, 2 * r] = ux * 5.0 / full
        w[a, 2 * r + 1] = uy * 5.0 / full
    return w


_W = _projection_matrix()

# Residual alignment jitter and flow noise on a still face are about 1-2.5 template pixels; a
# movement below NOISE_FLOOR_PX reads as 0 so that a face at rest does not look active.
NOISE_FLOOR_PX = 2.5
NOISE_FLOOR = np.array([5.0 * NOISE_FLOOR_PX / _AU_RULES[au][2] for au in AU_NAMES])


# Movement per face region, direction-free: how far the region's structures moved from the neutral
# reference, whatever the direction. The region verdicts use it because it does not depend on the
# direction a movement is projected on: a residual roll of one degree turns a mouth corner's movement
# toward AU12 on one half-face and toward AU15 on the other (the halves are mirror images), which
# splits signed AU values between the sides of a healthy face but leaves the distance moved alone.
# The eyes' movement is the lid aperture's change (stream/au/lids.py), not a flow: see there.
MOVEMENT_REGIONS: dict[str, tuple[tuple[str, ...], float]] = {
    # region: (flow regions averaged, displacement in template px that reads as 5)
    "eyebrows": (("inner_brow", "outer_brow"), 18.0),
    "mouth": (("mouth_corner",), 24.0),
}


def region_movement(disp: np.ndarray, eyes: float) -> np.ndarray:
    """(R + 1, 2) region displacements of one side and its eye movement -> (3,) brows, eyes, mouth.

    5 is a full-range movement; larger movements read above 5 (unlike the AUs, which stop at 5).
    """
    out = np.zeros(3)
    for k, (names, full) in zip((0, 2), MOVEMENT_REGIONS.values()):
        norm = float(np.mean([np.hypot(*disp[REGION_NAMES.index(n)]) for n in names]))
        # not clipped at 5: a saturated strong side would hide how much less the weak side moves
        out[k] = max(0.0, (norm - NOISE_FLOOR_PX) * 5.0 / (full - NOISE_FLOOR_PX))
    out[1] = eyes
    return out


def apply_noise_floor(values: np.ndarray) -> np.ndarray:
    """Map [floor, 5] linearly onto [0, 5] per AU (values already clipped to [0, 5])."""
    return np.clip((values - NOISE_FLOOR) * 5.0 / (5.0 - NOISE_FLOOR), 0.0, 5.0)


def median_rows(values: np.ndarray) -> np.ndarray:
    """``np.median(values, axis=0)`` to the bit (float32 in, float32 out), without its overhead.

    NumPy's median partitions and then averages the two middle values of an even count in the input
    dtype; this does the same with one ``np.partition``, at under half the cost on region patches,
    where the median ran 60 times per keyframe.
    """
    n = values.shape[0]
    k = n // 2
    if n % 2:
        return np.partition(values, k, axis=0)[k]
    part = np.partition(values, (k - 1, k), axis=0)
    return (part[k - 1] + part[k]) / 2


def region_displacements(flow: np.ndarray, offsets: np.ndarray | None = None) -> np.ndarray:
    """Median (dx, dy) per region in 512-template pixels, relative to the bridge, plus lips apart.

    ``flow``: (H/2, W/2, 2) DIS flow at half resolution. ``offsets``: (R, 2) template pixels by which
    each region is shifted before sampling (the regions of a deformed helper frame j). Returns
    (R + 1, 2): rows in REGION_NAMES order, bridge-relative, then ("lips_apart", (0, dy_lower - dy_upper)).
    """
    h, w = flow.shape[:2]
    out = np.zeros((len(REGION_NAMES) + 1, 2))
    for r, name in enumerate(REGION_NAMES):
        reg = REGIONS[name]
        ox, oy = (0.0, 0.0) if offsets is None else offsets[r]
        # plain-int clamping: np.clip on scalars costs more than the medians themselves
        x0 = min(max(round((reg.x0 + float(ox)) / SCALE), 0), w - 1)
        x1 = min(max(round((reg.x1 + float(ox)) / SCALE), x0 + 1), w)
        y0 = min(max(round((reg.y0 + float(oy)) / SCALE), 0), h - 1)
        y1 = min(max(round((reg.y1 + float(oy)) / SCALE), y0 + 1), h)
        patch = flow[y0:y1, x0:x1].reshape(-1, 2)
        out[r] = median_rows(patch) * SCALE
    bridge = out[REGION_NAMES.index("bridge")].copy()
    out[: len(REGION_NAMES)] -= bridge
    lower, upper = out[REGION_NAMES.index("lower_lip")], out[REGION_NAMES.index("upper_lip")]
    out[-1] = (0.0, lower[1] - upper[1])
    return out


def au_from_displacements(disp: np.ndarray) -> np.ndarray:
    """(R + 1, 2) region displacements -> (12,) AU values (unclipped, 5 = full-range movement)."""
    return _W @ disp.reshape(-1)


@dataclass(frozen=True)
class _FlowPayload:
    grey: np.ndarray  # (2, 256, 128) uint8 stabilised half-faces at half resolution: row 0 left, row 1 right
    disp: np.ndarray  # (2, R + 1, 2) displacement of each region from the reference, template px
    closure: np.ndarray  # (2,) eye closure (AU43) from the lid aperture, 0..5
    eyes: np.ndarray  # (2,) eye movement (aperture change, closing or widening), 0..5
    turn_deg: float | None = None  # 3-D rotation of the head from the reference's pose; None: no mesh
    gated: bool = False  # turned beyond ``turn_limit_deg``: not measured (grey, disp and the eyes are empty)


# The reference face's depth (from the mesh) is smoothed over about 0.06 inter-ocular distances, the
# mesh's point spacing, at the flow's half resolution (64 px between the eyes).
_DEPTH_SIGMA_PX = 4.0

_LK_CRITERIA = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 20, 0.03)


def _track(prev: np.ndarray, nxt: np.ndarray, points: np.ndarray) -> tuple[np.ndarray | None, np.ndarray]:
    """Pyramidal Lucas-Kanade: where ``points`` of ``prev`` lie in ``nxt``, and a status per point (1: found)."""
    # OpenCV's stubs type the output nextPts as required, but None (OpenCV allocates it) is the documented call.
    found, status, _ = cv2.calcOpticalFlowPyrLK(  # type: ignore[call-overload]
        prev, nxt, points, None, winSize=(15, 15), maxLevel=3, criteria=_LK_CRITERIA
    )
    return found, status


class FlowAUEstimator(AUEstimator):
    """Optical-flow proxy for AU intensities (training-free, works offline on any face).

    Before measuring, each keyframe is *stabilised* onto the reference: the 3-point alignment
    follows the eye points, which expressions move (a smile lifts the lower lids and so the detected
    eye centres), turning the whole aligned face by a degree or two. Corner points tracked from the
    reference, with a RANSAC similarity fit, find the rigid motion shared by most of the face
    (forehead, nose, a paralysed side) and undo it, so that only expression movement remains.
    """

    name = "flow"
    is_proxy = True

    def __init__(
        self,
        preset: int = cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
        helper_preset: int = cv2.DISOPTICAL_FLOW_PRESET_FAST,
        mesh: FaceMesh | None = None,
    ) -> None:
        # The own value (reference -> current, the larger movement) gets the finer preset; the m
        # helper differences (neighbouring keyframes, smaller movements) the 3.5x cheaper one.
        self._dis = cv2.DISOpticalFlow.create(preset)
        self._dis_helper = cv2.DISOpticalFlow.create(helper_preset)
        self._reference: np.ndarray | None = None  # (256, 256) uint8 canonical grey face
        self._reference_halves: np.ndarray | None = None  # the same split into (left, right), made once
        self._ref_points: np.ndarray | None = None
        self._offsets = np.zeros((2, len(REGION_NAMES), 2))
        self.unstabilised = 0  # keyframes where the rigid fit failed (measured unstabilised)
        self._lids = LidAperture()
        # With a face mesh, each keyframe is first carried into the reference's 3-D head pose.
        self._mesh = mesh
        self._reference_mesh: np.ndarray | None = None  # (468, 3) at half resolution
        self._reference_depth: np.ndarray | None = None
        self._pixel_grid: tuple[np.ndarray, np.ndarray] | None = None  # (xs, ys) of the face, float32
        self.last_pose: HeadPose | None = None

    @staticmethod
    def _canonical_grey(left: np.ndarray, right: np.ndarray) -> np.ndarray:
        """Half-resolution grey face with the patient's right on the image's left, from the grey halves."""
        face = np.hstack([right, left[:, ::-1]])
        return cv2.resize(face, (face.shape[1] // SCALE, face.shape[0] // SCALE), interpolation=cv2.INTER_AREA)

    @staticmethod
    def _split(face: np.ndarray) -> np.ndarray:
        w = face.shape[1] // 2
        return np.stack([np.ascontiguousarray(face[:, w:][:, ::-1]), np.ascontiguousarray(face[:, :w])])

    def _set_reference(self, face: np.ndarray, mouth_corners: np.ndarray | None = None) -> None:
        # Each side's mouth-corner region follows that side's detected corner in the reference (a few
        # pixels at most on a frontal face; on a turned head the template would put one region on the
        # lips and the other on the cheek, and speech would read as one-sided movement).
        self._offsets = np.zeros((2, len(REGION_NAMES), 2))
        if mouth_corners is not None and np.all(np.isfinite(mouth_corners)):
            shift = np.clip(
                np.asarray(mouth_corners, float) - MOUTH_CORNER_AT_REST, -MAX_CORNER_SHIFT_PX, MAX_CORNER_SHIFT_PX
            )
            self._offsets[:, REGION_NAMES.index("mouth_corner")] = shift
        h, w = face.shape
        mask = np.zeros_like(face)
        # face area of the template (brows to chin, cheek to cheek) at half resolution
        cv2.ellipse(mask, (w // 2, int(0.56 * h)), (int(0.3 * w), int(0.36 * h)), 0, 0, 360, 255, -1)
        self._reference = face
        self._reference_halves = self._split(face)
        self._ref_points = cv2.goodFeaturesToTrack(face, maxCorners=160, qualityLevel=0.005, minDistance=4, mask=mask)

    def _stabilise(self, face: np.ndarray) -> np.ndarray:
        assert self._reference is not None
        pts = self._ref_points
        if pts is None or len(pts) < 12:
            self.unstabilised += 1
            return face
        cur, st = _track(self._reference, face, pts)
        if cur is None:
            self.unstabilised += 1
            return face
        back, st2 = _track(face, self._reference, cur)
        good = (st.ravel() == 1) & (st2.ravel() == 1) & (np.linalg.norm((back - pts).reshape(-1, 2), axis=1) < 1.0)
        if good.sum() < 12:
            self.unstabilised += 1
            return face
        m, inliers = cv2.estimateAffine2D(cur[good], pts[good], method=cv2.RANSAC, ransacReprojThreshold=0.75)
        if m is None or inliers is None or inliers.sum() < 10:
            self.unstabilised += 1
            return face
        return cv2.warpAffine(
            face, m, (face.shape[1], face.shape[0]), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )

    def _head_mesh(self, keyframe: Keyframe) -> np.ndarray | None:
        """The face mesh of the keyframe's canonical face, at the flow's half resolution."""
        if self._mesh is None:
            return None
        face = np.hstack([keyframe.halves.right, keyframe.halves.left[:, ::-1]])
        return self._mesh.on_aligned(face) / SCALE

    def _to_reference_pose(self, face: np.ndarray, mesh: np.ndarray) -> np.ndarray:
        assert self._reference_mesh is not None and self._reference_depth is not None
        assert self._pixel_grid is not None
        self.last_pose = fit_pose(self._reference_mesh, mesh)
        map_x, map_y = target_positions(self.last_pose, self._reference_depth, *self._pixel_grid)
        return cv2.remap(face, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)

    def encode(self, keyframe: Keyframe) -> KeyframeCode:
        # Full-resolution grey halves, converted once, for the flow's face.
        grey_halves = (
            cv2.cvtColor(keyframe.halves.left, cv2.COLOR_RGB2GRAY),
            cv2.cvtColor(keyframe.halves.right, cv2.COLOR_RGB2GRAY),
        )
        face = self._canonical_grey(*grey_halves)
        mesh = self._head_mesh(keyframe)
        turn_deg: float | None = None if mesh is None else 0.0
        if self._reference is None:
            self._set_reference(face, keyframe.mouth_corners)  # the session's first keyframe is its neutral reference
            if mesh is not None:
                self._reference_mesh = mesh
                self._reference_depth = depth_map(mesh, face.shape, _DEPTH_SIGMA_PX)
                ys, xs = np.mgrid[0 : face.shape[0], 0 : face.shape[1]].astype(np.float32)
                self._pixel_grid = (xs, ys)
        else:
            if mesh is not None:
                face = self._to_reference_pose(face, mesh)
                assert self.last_pose is not None
                turn_deg = self.last_pose.angle_deg
                if self.turn_limit_deg is not None and turn_deg > self.turn_limit_deg:
                    # Not measured: its movement would be mostly the carry into the reference's pose,
                    # and its lids must not move the open-eye reference either.
                    return self._gated(keyframe, turn_deg)
            face = self._stabilise(face)
        grey = self._split(face)
        ref = self._reference_halves
        assert ref is not None
        # OpenCV's stubs type the output flow as required; None (OpenCV allocates it, no initial flow) is valid.
        flows = [self._dis.calc(ref[s], grey[s], None) for s in range(2)]  # type: ignore[call-overload]
        disp = np.stack([region_displacements(flows[s], self._offsets[s]) for s in range(2)])
        own = np.stack([au_from_displacements(disp[s]) for s in range(2)])
        closure, eyes = self._lids.measure((keyframe.halves.left, keyframe.halves.right))
        payload = _FlowPayload(grey=grey, disp=disp, closure=closure, eyes=eyes, turn_deg=turn_deg)
        return KeyframeCode(keyframe.frame_index, keyframe.time_s, own, payload, grey.nbytes + disp.nbytes)

    @staticmethod
    def _gated(keyframe: Keyframe, turn_deg: float) -> KeyframeCode:
        """The code of a keyframe turned beyond the limit: its turn, and nothing measured."""
        empty = np.zeros(2)
        payload = _FlowPayload(
            grey=np.zeros((2, 0, 0), np.uint8),
            disp=np.zeros((2, len(REGION_NAMES) + 1, 2)),
            closure=empty,
            eyes=empty,
            turn_deg=turn_deg,
            gated=True,
        )
        return KeyframeCode(keyframe.frame_index, keyframe.time_s, np.zeros((2, N_AUS)), payload, 0)

    def helper_displacements(self, current: KeyframeCode, helpers: Sequence[KeyframeCode]) -> np.ndarray:
        """(m, 2, R + 1, 2): for each helper j, its own displacement plus the flow j -> i sampled in its regions.

        Each row is an independent measurement of the current frame's displacement from the reference
        (the DEM form Y_j + ΔY_ij, on displacements, where it is exact because the AU map is linear).
        """
        cur: _FlowPayload = current.payload
        out = np.zeros((len(helpers), 2, len(REGION_NAMES) + 1, 2))
        for k, helper in enumerate(helpers):
            hp: _FlowPayload = helper.payload
            for s in range(2):
                # Sample j -> i flow where the regions are in frame j (shifted by j's own displacement).
                offsets = self._offsets[s] + hp.disp[s, : len(REGION_NAMES)]
                flow = self._dis_helper.calc(hp.grey[s], cur.grey[s], None)  # type: ignore[call-overload]  # as above
                out[k, s] = hp.disp[s] + region_displacements(flow, offsets)
        return out

    def difference(self, current: KeyframeCode, helpers: Sequence[KeyframeCode]) -> np.ndarray:
        measured = self.helper_displacements(current, helpers)
        out = np.zeros((len(helpers), 2, N_AUS))
        for k, helper in enumerate(helpers):
            hp: _FlowPayload = helper.payload
            for s in range(2):
                out[k, s] = au_from_displacements(measured[k, s] - hp.disp[s])
        return out

    def estimate(self, current: KeyframeCode, helpers: Sequence[KeyframeCode]) -> AUEstimate:
        """The mean of the own measurement and the m helper measurements of the displacement, then AUs.

        Averaging displacements, not AU values, lets the direction-free region movement profit from the
        helpers too; for the AU values it is the DEM mean (eq. 3) with the own value as one more term.
        """
        cur: _FlowPayload = current.payload
        if cur.gated:  # turned beyond the limit: no helper flows, no values; the pipeline leaves it out
            zeros = np.zeros(N_AUS)
            return AUEstimate(
                current.frame_index,
                current.time_s,
                left=zeros,
                right=zeros.copy(),
                n_helpers=0,
                closure=cur.closure.copy(),
                movement=np.zeros((2, 3)),
                turn_deg=cur.turn_deg,
            )
        helpers = list(helpers)
        measured = [cur.disp[None]]
        if helpers:
            measured.append(self.helper_displacements(current, helpers))
        disp = np.concatenate(measured).mean(axis=0)  # (2, R + 1, 2)
        values = np.stack([au_from_displacements(disp[s]) for s in range(2)])
        values = apply_noise_floor(np.clip(values, 0.0, 5.0))
        movement = np.stack([region_movement(disp[s], float(cur.eyes[s])) for s in range(2)])
        return AUEstimate(
            current.frame_index,
            current.time_s,
            left=values[0],
            right=values[1],
            n_helpers=len(helpers),
            closure=cur.closure.copy(),
            movement=movement,
            turn_deg=cur.turn_deg,
        )

    def reset(self) -> None:
        self._reference = None
        self._reference_halves = None
        self._ref_points = None
        self._reference_mesh = None
        self._reference_depth = None
        self._pixel_grid = None
        self._lids.reset()


@register_estimator("flow")
def _build(device: str | None = None) -> AUEstimator:
    # The proxy runs on the CPU (OpenCV); ``device`` is taken because it also places the face detector.
    return FlowAUEstimator(mesh=FaceMesh())
