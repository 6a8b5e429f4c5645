"""Synthetic synkinesis: a smile with one eye closing, or eye closure with one mouth corner rising.

During three known episodes a bilateral smile is synthesised together with one eye closing
(``synkinesis_eye_on_smile``), or both eyes close together with one mouth corner rising
(``synkinesis_mouth_on_eye_closure``); the synkinetic movement also follows the clip's own smiles
and eye closures (``NaturalTrigger``), as a real synkinesis accompanies every movement of its
trigger. Both movements are backward warps built to never fold. Pure: numpy and OpenCV.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from stream.au.lids import LidAperture
from stream.face.align import align_face, split_halves
from stream.face.headpose import fit_pose
from stream.face.mesh import FaceMesh
from stream.types import Face
from stream.validate.construct.geometry import EYE_INDEX, MOUTH_CORNER_INDEX, FaceGeometry, WorkGrid, smoothstep
from stream.validate.construct.spec import CaseSpec

# Synkinesis warp fields are computed at this IOD (pixels) and resized: their narrowest feature (the
# lid's rise, 0.07 IOD) still spans several samples.
_WARP_IOD_PX = 96.0

# Smile: each mouth corner moves 0.14 IOD at full weight, direction 0.8 outward + 0.6 up (a
# zygomaticus pull), Gaussian falloff of sigma 0.2 IOD. The largest gradient of that field is
# 0.14 / 0.2 * exp(-1/2) = 0.42 < 1, so the warp cannot fold.
SMILE_PULL_IOD = 0.14
SMILE_SIGMA_IOD = 0.2
SMILE_OUT, SMILE_UP = 0.8, 0.6

# Lid closure, relative to the eye landmark (IOD), shaped to each eye. A backward warp that slopes
# faster than 1 folds (the texture repeats mirrored), so a symmetric bump as small as the eye cannot
# close it. The pull therefore rises within a thin band just below the lower lid (which squeezes the
# open eye into a line there) and falls gently over the upper lid up to the brow (which stretches the
# lid skin down over the eye), like a real upper lid descending: at full weight the upper lid margin
# comes down onto the lower one. Without a face mesh the eye is taken as an average open eye.
LID_UPPER_IOD, LID_LOWER_IOD = 0.07, -0.06  # the lid margins above and below the eye landmark
LID_HALF_WIDTH_IOD = 0.23  # from the eye landmark to either corner
LID_OVERLAP_IOD = 0.02  # the upper margin is pulled this far past the lower one: no sliver stays open
LID_SQUEEZE_IOD = 0.02  # the band below the lower lid where the open eye is squeezed into a line
LID_FALL_SLOPE = 0.55  # largest fall of the pull per IOD over the upper lid (x 1.5 at smoothstep's steepest)
LID_CORNER_MARGIN_IOD = 0.06  # the pull fades out this far beyond each corner


@dataclass(frozen=True)
class EyeShape:
    """One eye's open lids in the face frame, relative to its eye landmark (IOD; b up, a across)."""

    upper: float = LID_UPPER_IOD
    lower: float = LID_LOWER_IOD
    half_width: float = LID_HALF_WIDTH_IOD

    @property
    def drop(self) -> float:
        """The pull at full weight: the upper margin onto the lower one, and a little past it."""
        return max(0.0, self.upper - self.lower) + LID_OVERLAP_IOD

    @classmethod
    def from_mesh(cls, points: np.ndarray, g: FaceGeometry, side: str) -> EyeShape:
        """The shape of the patient's ``side`` eye from face-mesh points (image pixels) in frame ``g``."""
        upper, lower, outer, inner = MESH_LIDS[side]
        to_face = g.to_face()
        eye = to_face @ np.append(g.landmarks[EYE_INDEX[side]], 1.0)
        face = points[:, :2] @ to_face[:, :2].T + to_face[:, 2]
        half = 0.5 * float(np.linalg.norm(face[outer] - face[inner]))
        return cls(
            upper=float(face[upper, 1] - eye[1]),
            lower=float(face[lower, 1] - eye[1]),
            half_width=float(np.clip(half, 0.12, 0.35)),
        )


# Face-mesh points (stream/face/mesh.py) of the mouth corners and of each eye's two corners.
MESH_MOUTH_CORNERS = (61, 291)
MESH_EYE_CORNERS = (33, 133, 362, 263)
# Per patient side: the face mesh's upper and lower lid margin at mid-eye, and the outer and inner corner.
MESH_LIDS = {"right": (159, 145, 33, 133), "left": (386, 374, 263, 362)}


class NaturalTrigger:
    """Stateful over one clip: how much the clip's own face makes the trigger movement, frame by frame."""

    def __init__(self, kind: str, mesh: FaceMesh | None = None) -> None:
        """``mesh``: measures the mouth in 3-D with the head's pose taken out (a head turn or nod moves
        the detector's mouth corners in the 2-D face frame by as much as a smile does); None: the
        detector's corners in the 2-D face frame (synthetic textures, faces the mesh cannot see)."""
        self.kind = kind
        self._mesh = mesh
        self._corners0: np.ndarray | None = None  # mouth corners of the first frame (IOD)
        self._mesh0: np.ndarray | None = None  # the first frame's mesh, the pose the mouth is read in
        # The trigger (the ground truth) stays as it was first built, read against the median open eye.
        self._lids = LidAperture(open_quantile=0.5)

    def weight(self, image: np.ndarray, g: FaceGeometry, points: np.ndarray | None = None) -> float:
        """0..1: how much the clip's own face makes the trigger movement in this frame.

        Mouth: the corners' movement from the first frame, with the head's 3-D pose taken out when
        there is a mesh (0.04 inter-ocular distances starts it, 0.12 is full): oral-ocular
        synkinesis follows any deliberate mouth movement, a smile, a pucker, a laugh. Eye closure:
        both eyes' closure from the lid aperture (stream/au/lids.py) on the aligned half-faces, 20 %
        closed starts it, 70 % is full. ``points``: this frame's face mesh (image pixels) when the
        caller has it already; None: run here when needed.
        """
        if self.kind == "synkinesis_eye_on_smile":
            corners = self._mouth_corners(image, g, points)
            if corners is None:  # the mesh found no usable face here: no trigger read in this frame
                return 0.0
            if self._corners0 is None:
                self._corners0 = corners
                return 0.0
            moved = float(np.mean(np.linalg.norm(corners - self._corners0, axis=1)))
            return float(np.clip((moved - 0.04) / 0.08, 0.0, 1.0))
        try:
            aligned = align_face(image, Face(np.zeros(4), g.landmarks, 1.0))
        except ValueError:
            return 0.0
        halves = split_halves(aligned)
        closure, _ = self._lids.measure((halves.left, halves.right))
        return float(np.clip((closure.mean() / 5.0 - 0.2) / 0.5, 0.0, 1.0))

    def _mouth_corners(self, image: np.ndarray, g: FaceGeometry, points: np.ndarray | None) -> np.ndarray | None:
        """(2, 2) mouth corners in inter-ocular distances, in the first frame's head pose (mesh) or in
        this frame's 2-D face frame (detector); None where the mesh's pose cannot be fitted."""
        if self._mesh is None:
            to_face = g.to_face()
            return np.array([to_face @ np.append(g.landmarks[i], 1.0) for i in (3, 4)])
        if points is None:
            points = self._mesh.on_image(image, g.landmarks)
        if not np.all(np.isfinite(points)):
            return None
        if self._mesh0 is None:
            self._mesh0 = points
        # this frame's mesh carried into the first frame's pose, so that only expression moves it
        try:
            posed = fit_pose(points, self._mesh0).apply(points)
        except ValueError:
            return None
        eyes = self._mesh0[list(MESH_EYE_CORNERS)].reshape(2, 2, 3).mean(axis=1)
        iod = float(np.linalg.norm(eyes[0, :2] - eyes[1, :2]))
        return posed[list(MESH_MOUTH_CORNERS), :2] / iod


def synkinesis_frame(
    image: np.ndarray,
    g: FaceGeometry,
    case: CaseSpec,
    trigger: float,
    follow: float,
    eyes_shape: dict[str, EyeShape] | None = None,
) -> np.ndarray:
    """The synthetic trigger at weight ``trigger`` (episodes), the synkinetic movement at ``follow``.

    ``eyes_shape``: each closing eye's open lids in this frame (``EyeShape.from_mesh``); None: an
    average open eye."""
    side = case.side
    other = "left" if side == "right" else "right"
    closing_eyes: tuple[str, ...]
    rising_corners: tuple[str, ...]
    eye_weights: tuple[float, ...]
    corner_weights: tuple[float, ...]
    if case.kind == "synkinesis_eye_on_smile":
        closing_eyes, rising_corners = (side,), (side, other)
        eye_weights, corner_weights = (follow,), (trigger, trigger)
    else:
        closing_eyes, rising_corners = (side, other), (side,)
        eye_weights, corner_weights = (trigger, trigger), (follow,)
    to_face = g.to_face()
    eyes = [to_face @ np.append(g.landmarks[EYE_INDEX[s]], 1.0) for s in closing_eyes]
    shapes = [(eyes_shape or {}).get(s, EyeShape()) for s in closing_eyes]
    corners = [to_face @ np.append(g.landmarks[MOUTH_CORNER_INDEX[s]], 1.0) for s in rising_corners]
    # one box around every displaced pixel: lid profiles and 3 sigma around each corner
    reach = 3.0 * SMILE_SIGMA_IOD + SMILE_PULL_IOD
    extent = [_lid_extent(shape) for shape in shapes]
    a_lo = min([e[0] - x[0] for e, x in zip(eyes, extent)] + [c[0] - reach for c in corners])
    a_hi = max([e[0] + x[0] for e, x in zip(eyes, extent)] + [c[0] + reach for c in corners])
    b_lo = min([e[1] + x[1] for e, x in zip(eyes, extent)] + [c[1] - reach for c in corners])
    b_hi = max([e[1] + x[2] + y.drop for e, x, y in zip(eyes, extent, shapes)] + [c[1] + reach for c in corners])
    box = g.box((a_lo, a_hi), (b_lo, b_hi), image.shape, margin=0.02)
    if box is None:
        return image
    x0, y0, x1, y1 = box
    grid = WorkGrid(g, box, _WARP_IOD_PX)
    a, b = grid.face_coords()
    # backward displacement (IOD, face frame): output(x) = image(x + displacement)
    da = np.zeros_like(a)
    db = np.zeros_like(b)
    for (ea, eb), weight, shape in zip(eyes, eye_weights, shapes):
        # sample from above the eye: the upper lid comes down
        db += weight * shape.drop * lid_profile(a - np.float32(ea), b - np.float32(eb), shape)
    for (ca, cb), corner_side, weight in zip(corners, rising_corners, corner_weights):
        if weight <= 0.0:
            continue
        outward = -1.0 if corner_side == "right" else 1.0  # the patient's right is at a < 0
        # unit direction in pixels, expressed in the (oblique) face frame
        direction_px = SMILE_OUT * outward * g.right_axis + SMILE_UP * g.up
        direction_px /= np.linalg.norm(direction_px)
        pa, pb = (to_face[:, :2] @ direction_px) * g.iod * SMILE_PULL_IOD * weight
        pa, pb = np.float32(pa), np.float32(pb)
        inv_two_sigma2 = np.float32(1.0 / (2.0 * SMILE_SIGMA_IOD**2))
        # backward map of a forward Gaussian pull D: x <- x - D(x - D(x)) (fixed-point inverse);
        # distances in the oblique frame are close enough to isotropic for a falloff
        fa, fb = np.zeros_like(a), np.zeros_like(b)
        for _ in range(2):
            qa, qb = a - fa - np.float32(ca), b - fb - np.float32(cb)
            falloff = np.exp(-(qa * qa + qb * qb) * inv_two_sigma2)
            fa, fb = pa * falloff, pb * falloff
        da -= fa
        db -= fb
    # face-frame displacement to pixels, brought to full resolution; then one remap
    dx = grid.grow(g.iod * (da * np.float32(g.right_axis[0]) + db * np.float32(g.up[0])))
    dy = grid.grow(g.iod * (da * np.float32(g.right_axis[1]) + db * np.float32(g.up[1])))
    map_x = dx + np.arange(x0, x1, dtype=np.float32)[None, :]
    map_y = dy + np.arange(y0, y1, dtype=np.float32)[:, None]
    result = image.copy()
    result[y0:y1, x0:x1] = cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return result


def _lid_extent(shape: EyeShape) -> tuple[float, float, float]:
    """(half width, lowest b, highest b) of the pull around one eye, relative to its landmark (IOD)."""
    low = shape.lower - LID_SQUEEZE_IOD
    top = shape.lower + max(0.29, 1.5 * shape.drop / LID_FALL_SLOPE)
    return shape.half_width + LID_CORNER_MARGIN_IOD, low, top


def lid_profile(a: np.ndarray, b: np.ndarray, shape: EyeShape | None = None) -> np.ndarray:
    """0..1 downward pull around one eye; (a, b) relative to the eye landmark, in IOD.

    Full over the eye's width, fading out beyond its corners; zero below the lower lid, full at its
    margin (after a ``LID_SQUEEZE_IOD`` rise), falling to zero over the upper lid and beyond, slowly
    enough that the backward warp never folds."""
    shape = shape or EyeShape()
    half, low, top = _lid_extent(shape)
    plateau = 0.7 * shape.half_width
    across = smoothstep((half - np.abs(a)) / (half - plateau))
    rise = smoothstep((b - low) / (shape.lower - low))
    fall = smoothstep((top - b) / (top - shape.lower))
    return (across * np.minimum(rise, fall)).astype(np.float32)
