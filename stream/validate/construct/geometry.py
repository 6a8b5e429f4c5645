"""The face frame of a video frame and the soft masks of a side and region of the face.

Every construction measures in frame t's own face frame, in inter-ocular distances (IOD): ``a``
along the eye line (positive towards the image's right), ``b`` along the mouth-to-eyes axis
(positive above the eye line), so it is independent of resolution and follows head roll. This
module holds that frame (``FaceGeometry``), where each part of the face lies in it, the masks built
on it, and the small working grid on which smooth fields are computed. Pure: numpy and OpenCV.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

# Landmark rows of each patient side in an unmirrored frame (the patient's right is the image's left).
EYE_INDEX = {"right": 0, "left": 1}
MOUTH_CORNER_INDEX = {"right": 3, "left": 4}

# Face ellipse (IOD): half-width 1.1, from 1.0 above the eye line to 1.9 below it: brows to chin,
# cheeks included, hair and neck left alone.
ELLIPSE_CENTRE_B = (1.0 - 1.9) / 2.0
ELLIPSE_HALF_A = 1.1
ELLIPSE_HALF_B = (1.0 + 1.9) / 2.0
# Feathers (IOD). Where the kept fraction of the flow changes, the picture is stretched by the
# difference of the flows on either side; over a narrow feather a smile's 10-15 px difference
# becomes a visible step in the lips and chin (a "tear"). Hence wider feathers than the look of a
# mask would need: the midline one lies entirely on the chosen side, so the other side is untouched
# (as near a real palsied midline, which the healthy side drags along); the ellipse one lies inside
# the ellipse, so nothing outside it changes.
MIDLINE_BLEND_IOD = 0.22
# The mask is computed on a coarse grid (_FLOW_IOD_PX) and resized; starting the midline ramp a bit
# more than one grid step inside the chosen side keeps the other side bit-exact.
MIDLINE_CLEARANCE_IOD = 0.02
ELLIPSE_BLEND_IOD = 0.2
BAND_BLEND_IOD = 0.12
# Region bands along the face's vertical axis, (low, high) in b. Their edges lie in skin that moves
# little (forehead, between brow and lid, upper cheek, between nose and upper lip), so the seams of
# a single-region construction fall where both sides of the seam agree.
REGION_BANDS: dict[str, tuple[float, float]] = {
    "eyebrows": (0.13, 0.9),
    "eyes": (-0.30, 0.13),
    "mouth": (-1.5, -0.55),
}


@dataclass(frozen=True)
class FaceGeometry:
    """The face frame of one video frame, from its 5 landmarks (image order, see module docstring)."""

    landmarks: np.ndarray  # (5, 2) float x, y in pixels

    def __post_init__(self) -> None:
        lm = np.asarray(self.landmarks, dtype=np.float64)
        if lm.shape != (5, 2) or not np.all(np.isfinite(lm)):
            raise ValueError(f"FaceGeometry needs 5 finite (x, y) landmarks, got shape {lm.shape}")
        object.__setattr__(self, "landmarks", lm)
        if self.iod < 2.0:
            raise ValueError(f"eyes {self.iod:.2f} px apart: landmarks too small or degenerate for a face frame")
        ra, up = self.right_axis, self.up
        if abs(float(ra[0] * up[1] - ra[1] * up[0])) < 0.3:
            raise ValueError("the eye line and the mouth-to-eyes axis are nearly parallel: degenerate landmarks")

    @property
    def iod(self) -> float:
        """Inter-ocular distance in pixels, the unit of every length here."""
        return float(np.linalg.norm(self.landmarks[1] - self.landmarks[0]))

    @property
    def eye_mid(self) -> np.ndarray:
        return (self.landmarks[0] + self.landmarks[1]) / 2.0

    @property
    def mouth_mid(self) -> np.ndarray:
        return (self.landmarks[3] + self.landmarks[4]) / 2.0

    @property
    def right_axis(self) -> np.ndarray:
        """Unit vector from the image-left eye to the image-right eye (towards the patient's left)."""
        d = self.landmarks[1] - self.landmarks[0]
        return d / np.linalg.norm(d)

    @property
    def up(self) -> np.ndarray:
        """Unit vector from the mouth centre to the eye midpoint: the face midline, pointing up."""
        d = self.eye_mid - self.mouth_mid
        n = float(np.linalg.norm(d))
        if n < 1e-6:
            return np.array([0.0, -1.0])
        return d / n

    def to_face(self) -> np.ndarray:
        """2x3 affine taking image pixels (x, y) to face coordinates (a, b) in IOD."""
        basis = np.stack([self.right_axis, self.up], axis=1) * self.iod  # columns: a and b in pixels
        inv = np.linalg.inv(basis)
        return np.hstack([inv, (-inv @ self.eye_mid)[:, None]])

    def to_image(self, a: float, b: float) -> np.ndarray:
        """Image pixel position of face coordinates (a, b)."""
        return self.eye_mid + self.iod * (a * self.right_axis + b * self.up)

    def face_coords(self, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(a, b) on the grid of pixel columns ``xs`` and rows ``ys``, each (len(ys), len(xs)) float32."""
        m = self.to_face().astype(np.float32)
        x = np.asarray(xs, dtype=np.float32)[None, :]
        y = np.asarray(ys, dtype=np.float32)[:, None]
        return m[0, 0] * x + m[0, 1] * y + m[0, 2], m[1, 0] * x + m[1, 1] * y + m[1, 2]

    def box(
        self,
        a_range: tuple[float, float],
        b_range: tuple[float, float],
        image_shape: tuple[int, ...],
        margin: float = 0.0,
    ) -> tuple[int, int, int, int] | None:
        """Pixel box (x0, y0, x1, y1) around a face-coordinate rectangle grown by ``margin`` IOD,
        clipped to the image; None when too little of it is inside."""
        corners = np.array(
            [
                self.to_image(a, b)
                for a in (a_range[0] - margin, a_range[1] + margin)
                for b in (b_range[0] - margin, b_range[1] + margin)
            ]
        )
        h, w = image_shape[:2]
        x0, y0 = max(0, int(math.floor(corners[:, 0].min()))), max(0, int(math.floor(corners[:, 1].min())))
        x1, y1 = min(w, int(math.ceil(corners[:, 0].max())) + 1), min(h, int(math.ceil(corners[:, 1].max())) + 1)
        if x1 - x0 < 8 or y1 - y0 < 8:
            return None
        return x0, y0, x1, y1


def smoothstep(t: np.ndarray | float) -> np.ndarray:
    x = np.clip(np.asarray(t, dtype=float), 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _inside(distance: np.ndarray, feather: float) -> np.ndarray:
    """Soft indicator of ``distance > 0`` (IOD, positive inside): 0.5 on the boundary, ``feather`` wide."""
    return smoothstep(distance / feather + 0.5)


def side_region_mask(a: np.ndarray, b: np.ndarray, side: str, region: str) -> np.ndarray:
    """Soft mask (0..1) of the patient's ``side`` and ``region`` of the face, from face coordinates."""
    # patient right = image left = a < 0 in an unmirrored frame
    toward_side = -a if side == "right" else a
    mask = smoothstep((toward_side - MIDLINE_CLEARANCE_IOD) / MIDLINE_BLEND_IOD)
    au, bu = a / ELLIPSE_HALF_A, (b - ELLIPSE_CENTRE_B) / ELLIPSE_HALF_B
    r = np.sqrt(au * au + bu * bu) + 1e-6
    # first-order distance to the ellipse: (1 - r) / |grad r|, so the feather has the same width all round
    grad = np.sqrt((au / ELLIPSE_HALF_A) ** 2 + (bu / ELLIPSE_HALF_B) ** 2) / r + 1e-6
    mask = mask * smoothstep((1.0 - r) / grad / ELLIPSE_BLEND_IOD)
    if region != "face":
        low, high = REGION_BANDS[region]
        mask = mask * _inside(np.minimum(b - low, high - b), BAND_BLEND_IOD)
    return mask.astype(np.float32)


class WorkGrid:
    """A pixel box and its copy at a fixed face scale (``iod_px`` pixels per IOD, never enlarged).

    Flow, masks and warp fields are smooth at the scale of a face, so they are computed on the
    small grid and resized to the box; only the final remaps run at full resolution.
    """

    def __init__(self, g: FaceGeometry, box: tuple[int, int, int, int], iod_px: float) -> None:
        self.geometry = g
        self.x0, self.y0, x1, y1 = box
        self.width, self.height = x1 - self.x0, y1 - self.y0
        scale = min(1.0, iod_px / g.iod)
        self.small = (max(8, round(self.width * scale)), max(8, round(self.height * scale)))

    @property
    def identity(self) -> bool:
        return self.small == (self.width, self.height)

    def face_coords(self) -> tuple[np.ndarray, np.ndarray]:
        """(a, b) at the small grid's pixel centres (cv2.resize's convention)."""
        sw, sh = self.small
        xs = self.x0 + (np.arange(sw) + 0.5) * (self.width / sw) - 0.5
        ys = self.y0 + (np.arange(sh) + 0.5) * (self.height / sh) - 0.5
        return self.geometry.face_coords(xs, ys)

    def shrink(self, image: np.ndarray) -> np.ndarray:
        return image if self.identity else cv2.resize(image, self.small, interpolation=cv2.INTER_AREA)

    def grow(self, field: np.ndarray) -> np.ndarray:
        field = np.ascontiguousarray(field, dtype=np.float32)
        return field if self.identity else cv2.resize(field, (self.width, self.height), interpolation=cv2.INTER_LINEAR)

    def grow_positions(self, displacement: np.ndarray) -> np.ndarray:
        """Box-relative sampling positions (h, w, 2) at full resolution for a small-grid displacement
        (small-grid pixels): a map for cv2.remap."""
        sw, sh = self.small
        sx, sy = self.width / sw, self.height / sh
        xs = (np.arange(sw, dtype=np.float32) + 0.5) * np.float32(sx) - 0.5
        ys = (np.arange(sh, dtype=np.float32) + 0.5) * np.float32(sy) - 0.5
        positions = np.empty((sh, sw, 2), np.float32)
        positions[..., 0] = xs[None, :] + displacement[..., 0] * np.float32(sx)
        positions[..., 1] = ys[:, None] + displacement[..., 1] * np.float32(sy)
        if self.identity:
            return positions
        return cv2.resize(positions, (self.width, self.height), interpolation=cv2.INTER_LINEAR)
