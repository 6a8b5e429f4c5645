"""Constructed test cases with known ground truth, made from real frames of healthy faces.

No clip of a real palsy patient comes with per-side, per-frame truth; a healthy clip changed on
purpose does. Two constructions, both pure frame transforms driven by the detector's 5 landmarks:

* **freeze / damp**: one side of the face (or one region of it) keeps only ``factor`` of its
  expression. The first frame with landmarks is the *reference*; for frame t it is warped into
  frame t's head pose with the affine of eyes + nose (so rigid head motion stays), dense optical flow
  from frame t to that warped reference measures the expression, and the chosen side is re-rendered
  from the reference moved by ``factor`` of that flow. ``factor`` 0 is a frozen side (flaccid palsy),
  0.35 / 0.6 a partial one.
* **synkinesis**: during three known episodes a bilateral smile is synthesised together with one
  eye closing (``synkinesis_eye_on_smile``), or both eyes close together with one mouth corner
  rising (``synkinesis_mouth_on_eye_closure``). Synthetic on purpose: it works on any clip, talking
  heads included, and ``Constructor.episode_weight`` gives the exact timing.

Sides are the PATIENT's sides, frames are unmirrored camera frames: the patient's right is the
image's left (landmarks 0 and 3), the patient's left the image's right (landmarks 1 and 4).

All geometry is measured in frame t's own face frame, in inter-ocular distances (IOD): ``a`` along
the eye line (positive towards the image's right), ``b`` along the mouth-to-eyes axis (positive
above the eye line). The frame is oblique on a turned head, which is what makes the midline
exactly ``a = 0`` and the eye line exactly ``b = 0``. This keeps the construction independent of
resolution and follows head roll.

Pure module: numpy and OpenCV only, no file I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from stream.au.lids import LidAperture
from stream.face.align import align_face, split_halves
from stream.types import Face

KINDS = ("freeze", "damp", "synkinesis_eye_on_smile", "synkinesis_mouth_on_eye_closure")
SIDES = ("left", "right")
REGIONS = ("face", "eyebrows", "eyes", "mouth")

# Landmark rows of each patient side in an unmirrored frame (the patient's right is the image's left).
EYE_INDEX = {"right": 0, "left": 1}
MOUTH_CORNER_INDEX = {"right": 3, "left": 4}

# Face ellipse (IOD): half-width 1.1, from 1.0 above the eye line to 1.9 below it: brows to chin,
# cheeks included, hair and neck left alone.
_ELLIPSE_CENTRE_B = (1.0 - 1.9) / 2.0
_ELLIPSE_HALF_A = 1.1
_ELLIPSE_HALF_B = (1.0 + 1.9) / 2.0
# Feathers (IOD). Where the kept fraction of the flow changes, the picture is stretched by the
# difference of the flows on either side; over a narrow feather a smile's 10-15 px difference
# becomes a visible step in the lips and chin (a "tear"). Hence wider feathers than the look of a
# mask would need: the midline one lies entirely on the chosen side, so the other side is untouched
# (as near a real palsied midline, which the healthy side drags along); the ellipse one lies inside
# the ellipse, so nothing outside it changes.
MIDLINE_BLEND_IOD = 0.22
# The mask is computed on a coarse grid (_FLOW_IOD_PX) and resized; starting the midline ramp a bit
# more than one grid step inside the chosen side keeps the other side bit-exact.
_MIDLINE_CLEARANCE_IOD = 0.02
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

# Optical flow runs on the face crop scaled to this IOD (pixels): enough for lip and lid motion,
# and it keeps DIS at a few milliseconds whatever the video's resolution. The flow box reaches this
# far beyond the changed area so DIS sees the surroundings of what it measures.
_FLOW_IOD_PX = 64.0
_FLOW_CONTEXT_IOD = 0.15
# Synkinesis warp fields are computed at this IOD (pixels) and resized: their narrowest feature (the
# lid's rise, 0.07 IOD) still spans several samples.
_WARP_IOD_PX = 96.0

# Synkinesis episodes (seconds): three of them at 20 %, 50 % and 80 % of the clip.
EPISODE_CENTRES = (0.2, 0.5, 0.8)
EPISODE_RISE_S, EPISODE_HOLD_S, EPISODE_FALL_S = 0.3, 0.9, 0.3
EPISODE_S = EPISODE_RISE_S + EPISODE_HOLD_S + EPISODE_FALL_S

# Smile: each mouth corner moves 0.14 IOD at full weight, direction 0.8 outward + 0.6 up (a
# zygomaticus pull), Gaussian falloff of sigma 0.2 IOD. The largest gradient of that field is
# 0.14 / 0.2 * exp(-1/2) = 0.42 < 1, so the warp cannot fold.
SMILE_PULL_IOD = 0.14
SMILE_SIGMA_IOD = 0.2
SMILE_OUT, SMILE_UP = 0.8, 0.6

# Lid closure, relative to the eye landmark (IOD). A symmetric bump as small as the eye would have to
# slope faster than 1 to close it, and a backward warp that slopes faster than 1 folds (the texture
# repeats mirrored). The profile therefore rises steeply below the eye (which only squeezes the open
# eye into the lower lid line) and falls gently over the upper lid up to below the brow (which
# stretches the lid skin down over the eye), like a real upper lid descending.
LID_DROP_IOD = 0.14  # largest downward pull at full weight: closes a normally open eye
LID_HALF_WIDTH_IOD = 0.26  # no pull beyond this lateral distance from the eye landmark
LID_PLATEAU_IOD = 0.11  # full pull within this lateral distance
LID_LOW_IOD, LID_PEAK_IOD, LID_TOP_IOD = -0.12, -0.05, 0.24  # profile: zero, full, zero again


@dataclass(frozen=True)
class CaseSpec:
    """One constructed case. ``side`` is the patient's side; ``factor`` the fraction of motion kept.

    ``region`` and ``factor`` apply to freeze/damp only (freeze forces factor 0). For synkinesis,
    ``side`` is the eye that closes (``eye_on_smile``) or the mouth corner that rises
    (``mouth_on_eye_closure``).
    """

    kind: str
    side: str
    region: str = "face"
    factor: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"CaseSpec kind {self.kind!r} is not one of {KINDS}")
        if self.side not in SIDES:
            raise ValueError(f"CaseSpec side {self.side!r} is not one of {SIDES} (the patient's side)")
        if self.region not in REGIONS:
            raise ValueError(f"CaseSpec region {self.region!r} is not one of {REGIONS}")
        if not 0.0 <= self.factor <= 1.0:
            raise ValueError(f"CaseSpec factor {self.factor} is outside [0, 1] (the fraction of motion kept)")
        if self.kind == "freeze" and self.factor != 0.0:
            raise ValueError(f"CaseSpec freeze keeps no motion: factor must be 0, got {self.factor} (use kind 'damp')")

    @property
    def is_synkinesis(self) -> bool:
        return self.kind.startswith("synkinesis")

    @property
    def name(self) -> str:
        """Short stable name for file names and tables, e.g. ``damp0.35_left_mouth``."""
        if self.is_synkinesis:
            return f"{self.kind}_{self.side}"
        kind = "freeze" if self.kind == "freeze" else f"damp{self.factor:g}"
        return f"{kind}_{self.side}_{self.region}"


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


def _smoothstep(t: np.ndarray | float) -> np.ndarray:
    x = np.clip(np.asarray(t, dtype=float), 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _inside(distance: np.ndarray, feather: float) -> np.ndarray:
    """Soft indicator of ``distance > 0`` (IOD, positive inside): 0.5 on the boundary, ``feather`` wide."""
    return _smoothstep(distance / feather + 0.5)


def side_region_mask(a: np.ndarray, b: np.ndarray, side: str, region: str) -> np.ndarray:
    """Soft mask (0..1) of the patient's ``side`` and ``region`` of the face, from face coordinates."""
    # patient right = image left = a < 0 in an unmirrored frame
    toward_side = -a if side == "right" else a
    mask = _smoothstep((toward_side - _MIDLINE_CLEARANCE_IOD) / MIDLINE_BLEND_IOD)
    au, bu = a / _ELLIPSE_HALF_A, (b - _ELLIPSE_CENTRE_B) / _ELLIPSE_HALF_B
    r = np.sqrt(au * au + bu * bu) + 1e-6
    # first-order distance to the ellipse: (1 - r) / |grad r|, so the feather has the same width all round
    grad = np.sqrt((au / _ELLIPSE_HALF_A) ** 2 + (bu / _ELLIPSE_HALF_B) ** 2) / r + 1e-6
    mask = mask * _smoothstep((1.0 - r) / grad / ELLIPSE_BLEND_IOD)
    if region != "face":
        low, high = REGION_BANDS[region]
        mask = mask * _inside(np.minimum(b - low, high - b), BAND_BLEND_IOD)
    return mask.astype(np.float32)


@dataclass(frozen=True)
class Episode:
    """One synkinesis episode (seconds from the clip start): rise, hold, fall."""

    start_s: float
    rise_s: float
    hold_s: float
    fall_s: float

    @property
    def end_s(self) -> float:
        return self.start_s + self.rise_s + self.hold_s + self.fall_s

    def weight(self, time_s: float) -> float:
        t = time_s - self.start_s
        if t <= 0.0 or time_s >= self.end_s:
            return 0.0
        if t < self.rise_s:
            return float(_smoothstep(np.float64(t / self.rise_s)))
        t -= self.rise_s
        if t <= self.hold_s:
            return 1.0
        t -= self.hold_s
        return float(_smoothstep(np.float64(1.0 - t / self.fall_s)))


def episodes(fps: float, n_frames: int) -> tuple[Episode, ...]:
    """The three episodes of a clip: centred at 20/50/80 % of it, 1.5 s long, shortened below 6 s.

    Below 6 s the episodes scale to a quarter of the clip each, which keeps a gap between them
    (centres are 30 % apart) and leaves time at rest before the first one.
    """
    if fps <= 0 or n_frames <= 0:
        raise ValueError(f"episodes need fps > 0 and n_frames > 0, got fps={fps}, n_frames={n_frames}")
    duration = n_frames / fps
    scale = min(1.0, 0.25 * duration / EPISODE_S)
    length = EPISODE_S * scale
    return tuple(
        Episode(c * duration - length / 2.0, EPISODE_RISE_S * scale, EPISODE_HOLD_S * scale, EPISODE_FALL_S * scale)
        for c in EPISODE_CENTRES
    )


class Constructor:
    """Stateful over one clip: call ``frame`` for every frame in order; returns the modified frame.

    Frames are uint8 RGB (H, W, 3), unmirrored. A frame that is left alone (no landmarks, outside
    every synkinesis episode, the reference frame itself) is returned as the same array; a changed
    frame is a new array of the same shape.
    """

    def __init__(self, case: CaseSpec, fps: float, n_frames: int) -> None:
        self.case = case
        self.fps = float(fps)
        self.n_frames = int(n_frames)
        self.episodes = episodes(self.fps, self.n_frames)
        self._reference: np.ndarray | None = None
        self._reference_points: np.ndarray | None = None
        self._dis: cv2.DISOpticalFlow | None = None
        if not case.is_synkinesis:
            # DISOpticalFlow_create is missing from opencv's stubs
            self._dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)  # type: ignore[attr-defined]
        # Synkinesis follows the trigger wherever it happens, not only in the synthetic episodes: the
        # clip's own smiles (mouth width) and eye closures (lid aperture) drive it too, as a real
        # synkinesis accompanies every movement of the trigger.
        self._corners0: np.ndarray | None = None  # mouth corners (face frame) of the first frame
        self._lids = LidAperture()
        self.last_synkinesis_weight = 0.0

    @property
    def reference(self) -> np.ndarray | None:
        """The frame freeze/damp holds on to (the first frame with landmarks), once seen."""
        return self._reference

    def episode_weight(self, index: int) -> float:
        """Ground-truth strength (0..1) of the constructed change at frame ``index``.

        Synkinesis: the episode envelope. Freeze/damp change every frame after the reference,
        so their weight is 1 throughout.
        """
        if not self.case.is_synkinesis:
            return 1.0
        t = index / self.fps
        return max(ep.weight(t) for ep in self.episodes)

    def frame(self, index: int, image: np.ndarray, landmarks: np.ndarray | None) -> np.ndarray:
        """The constructed version of frame ``index`` given its 5 landmarks (None: returned unchanged)."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"frame {index}: expected an (H, W, 3) uint8 RGB image, got {image.shape} {image.dtype}")
        if landmarks is None:
            return image
        geometry = FaceGeometry(np.asarray(landmarks, dtype=np.float64))
        if self.case.is_synkinesis:
            trigger = self.episode_weight(index)
            follow = max(trigger, self._natural_trigger(image, geometry))
            self.last_synkinesis_weight = follow
            if follow <= 0.0:
                return image
            return self._synkinesis(image, geometry, trigger, follow)
        if self._reference is None:
            self._reference = image.copy()
            self._reference_points = geometry.landmarks[:3].astype(np.float32)
            return image
        if image.shape != self._reference.shape:
            raise ValueError(f"frame {index} is {image.shape}, the reference frame was {self._reference.shape}")
        return self._damp(image, geometry)

    # -- freeze / damp ---------------------------------------------------------------------------
    def _damp(self, image: np.ndarray, g: FaceGeometry) -> np.ndarray:
        assert self._reference is not None and self._reference_points is not None and self._dis is not None
        box = g.box(*_support(self.case), image.shape, margin=_FLOW_CONTEXT_IOD)
        if box is None:
            return image
        x0, y0, x1, y1 = box
        cw, ch = x1 - x0, y1 - y0
        grid = _WorkGrid(g, box, _FLOW_IOD_PX)

        # the reference in frame t's head pose, rendered only over the box
        pose = cv2.getAffineTransform(self._reference_points, g.landmarks[:3].astype(np.float32))
        pose[:, 2] -= (x0, y0)
        warped_ref = cv2.warpAffine(
            self._reference, pose, (cw, ch), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
        crop = image[y0:y1, x0:x1]

        # u: crop(x) ~ warped_ref(x + u(x)). Flow and mask are computed at a fixed face scale (the
        # cost no longer grows with the resolution) and brought to full resolution, where they are smooth.
        grey_t = grid.shrink(cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY))
        grey_r = grid.shrink(cv2.cvtColor(warped_ref, cv2.COLOR_RGB2GRAY))
        flow = self._dis.calc(grey_t, grey_r, None)  # type: ignore[call-overload]  # None: allocate (stubs omit it)
        a, b = grid.face_coords()
        # fraction of the flow each pixel keeps: factor on the chosen side/region, 1 elsewhere
        keep = 1.0 - (1.0 - self.case.factor) * side_region_mask(a, b, self.case.side, self.case.region)
        # sampling positions built on the small grid and resized: they are smooth, and exact where
        # the flow is zero because resizing reproduces a linear field
        full_map = grid.grow_positions(flow)
        damped_map = grid.grow_positions(flow * keep[..., None])
        # map2 None: map1 holds both coordinates (opencv's stubs omit None)
        full = cv2.remap(  # type: ignore[call-overload]
            warped_ref, full_map, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
        damped = cv2.remap(  # type: ignore[call-overload]
            warped_ref, damped_map, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
        # What the flow cannot explain (teeth appearing, lighting) is kept in proportion to the motion
        # kept: where keep is 1 this is the frame itself, bit for bit, so there is no seam to hide and
        # the untouched side stays untouched; where keep is 0 it is the warped reference exactly.
        keep3 = cv2.cvtColor(grid.grow(keep), cv2.COLOR_GRAY2RGB)
        residual = cv2.multiply(cv2.subtract(crop, full, dtype=cv2.CV_32F), keep3)
        result = image.copy()
        result[y0:y1, x0:x1] = cv2.add(damped, residual, dtype=cv2.CV_8U)
        return result

    # -- synkinesis ------------------------------------------------------------------------------
    def _natural_trigger(self, image: np.ndarray, g: FaceGeometry) -> float:
        """0..1: how much the clip's own face makes the trigger movement in this frame.

        Mouth: the corners' movement from the first frame in the face's frame (0.04 inter-ocular
        distances starts it, 0.12 is full): oral-ocular synkinesis follows any deliberate mouth
        movement, a smile, a pucker, a laugh. Eye closure:
        both eyes' closure from the lid aperture (stream/au/lids.py) on the aligned half-faces, 20 %
        closed starts it, 70 % is full.
        """
        if self.case.kind == "synkinesis_eye_on_smile":
            # how far the mouth corners moved from the first frame, in the face's own frame (IOD)
            to_face = g.to_face()
            corners = np.array([to_face @ np.append(g.landmarks[i], 1.0) for i in (3, 4)])
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
        closure, _ = self._lids.measure(
            (cv2.cvtColor(halves.left, cv2.COLOR_RGB2GRAY), cv2.cvtColor(halves.right, cv2.COLOR_RGB2GRAY))
        )
        return float(np.clip((closure.mean() / 5.0 - 0.2) / 0.5, 0.0, 1.0))

    def _synkinesis(self, image: np.ndarray, g: FaceGeometry, trigger: float, follow: float) -> np.ndarray:
        """The synthetic trigger at weight ``trigger`` (episodes), the synkinetic movement at ``follow``."""
        side = self.case.side
        other = "left" if side == "right" else "right"
        closing_eyes: tuple[str, ...]
        rising_corners: tuple[str, ...]
        eye_weights: tuple[float, ...]
        corner_weights: tuple[float, ...]
        if self.case.kind == "synkinesis_eye_on_smile":
            closing_eyes, rising_corners = (side,), (side, other)
            eye_weights, corner_weights = (follow,), (trigger, trigger)
        else:
            closing_eyes, rising_corners = (side, other), (side,)
            eye_weights, corner_weights = (trigger, trigger), (follow,)
        to_face = g.to_face()
        eyes = [to_face @ np.append(g.landmarks[EYE_INDEX[s]], 1.0) for s in closing_eyes]
        corners = [to_face @ np.append(g.landmarks[MOUTH_CORNER_INDEX[s]], 1.0) for s in rising_corners]
        # one box around every displaced pixel: lid profiles and 3 sigma around each corner
        reach = 3.0 * SMILE_SIGMA_IOD + SMILE_PULL_IOD
        a_lo = min([e[0] - LID_HALF_WIDTH_IOD for e in eyes] + [c[0] - reach for c in corners])
        a_hi = max([e[0] + LID_HALF_WIDTH_IOD for e in eyes] + [c[0] + reach for c in corners])
        b_lo = min([e[1] + LID_LOW_IOD for e in eyes] + [c[1] - reach for c in corners])
        b_hi = max([e[1] + LID_TOP_IOD + LID_DROP_IOD for e in eyes] + [c[1] + reach for c in corners])
        box = g.box((a_lo, a_hi), (b_lo, b_hi), image.shape, margin=0.02)
        if box is None:
            return image
        x0, y0, x1, y1 = box
        grid = _WorkGrid(g, box, _WARP_IOD_PX)
        a, b = grid.face_coords()
        # backward displacement (IOD, face frame): output(x) = image(x + displacement)
        da = np.zeros_like(a)
        db = np.zeros_like(b)
        for (ea, eb), weight in zip(eyes, eye_weights):
            # sample from above the eye: the upper lid comes down
            db += weight * LID_DROP_IOD * _lid_profile(a - np.float32(ea), b - np.float32(eb))
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


def _support(case: CaseSpec) -> tuple[tuple[float, float], tuple[float, float]]:
    """Face-coordinate rectangle (a range, b range) outside which freeze/damp changes nothing."""
    a_range = (-_ELLIPSE_HALF_A, 0.0) if case.side == "right" else (0.0, _ELLIPSE_HALF_A)
    b_range = (_ELLIPSE_CENTRE_B - _ELLIPSE_HALF_B, _ELLIPSE_CENTRE_B + _ELLIPSE_HALF_B)
    if case.region != "face":
        low, high = REGION_BANDS[case.region]
        b_range = (max(b_range[0], low - BAND_BLEND_IOD / 2), min(b_range[1], high + BAND_BLEND_IOD / 2))
    return a_range, b_range


class _WorkGrid:
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


def _lid_profile(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """0..1 downward pull around one eye; (a, b) relative to the eye landmark, in IOD."""
    across = _smoothstep((LID_HALF_WIDTH_IOD - np.abs(a)) / (LID_HALF_WIDTH_IOD - LID_PLATEAU_IOD))
    rise = _smoothstep((b - LID_LOW_IOD) / (LID_PEAK_IOD - LID_LOW_IOD))
    fall = _smoothstep((LID_TOP_IOD - b) / (LID_TOP_IOD - LID_PEAK_IOD))
    return (across * np.minimum(rise, fall)).astype(np.float32)
