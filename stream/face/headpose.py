"""Rigid 3-D head pose from a dense face mesh, and the warp that carries a face into another pose.

Five landmarks give a 2-D affine at best, and a head turn is not one: the nose tip, the most
protruding point, moves sideways more than the cheeks, so an affine pinned on the eyes and the nose
shears the lower face (docs/validity.md). With the 468 points of a face mesh (``stream.face.mesh``),
each with a depth, the pose is a 3-D similarity (scale, rotation, translation) fitted on the points
that expressions leave in place (the nose, the skin below the eyes, the face's outline at the ears),
and a pixel moves with its depth: ``x' = s R [x, y, z(x, y)] + t``, projected orthographically.

Pure: arrays in, arrays out; no model, no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

# Mesh points that expressions move least, chosen by their 90th-percentile residual after a rigid fit
# over the frames of four expressive clips (smiles, a wink, frowns, brows raised; docs/validity.md):
# the nose ridge and sides, the skin just below the eyes, the inner eye corners, and the face's
# outline at the ears (their distance from the nose is what tells a turn from a shift). The forehead
# is left out: the mesh moves it with the brows by 8-15 px on a 128-px inter-ocular distance. The set
# is its own mirror image (each point with its partner on the other side, found by running the mesh
# on flipped faces), so that neither side of the face weighs more in the pose.
STABLE_POINTS: tuple[int, ...] = (
    399, 195, 248, 196, 3, 419, 174, 188, 343, 412, 197, 128, 456, 114, 357, 437, 233, 236, 245, 122,
    232, 350, 121, 281, 5, 453, 244, 351, 51, 217, 452, 277, 112, 465, 6, 231, 133, 362, 234, 454, 127,
    356, 93, 323, 464, 47, 341, 451,
)  # fmt: skip
MIN_POINTS = 8  # fewer points left after trimming: the fit is not trusted
TRIM = 2.5  # points farther than this many times the median residual are refitted without


@dataclass(frozen=True)
class HeadPose:
    """A 3-D similarity taking points of one pose to another: ``p' = scale * rotation @ p + translation``.

    ``residual`` is the median distance (pixels) of the fitted points from where the pose puts them:
    the mesh's own jitter plus whatever expression moved them.
    """

    scale: float
    rotation: np.ndarray  # (3, 3) proper rotation
    translation: np.ndarray  # (3,)
    residual: float

    def apply(self, points: np.ndarray) -> np.ndarray:
        """(N, 3) points moved by the pose."""
        return self.scale * np.asarray(points, float) @ self.rotation.T + self.translation

    @property
    def angles_deg(self) -> tuple[float, float, float]:
        """(yaw, pitch, roll) in degrees with ``rotation = Rz(roll) @ Rx(pitch) @ Ry(yaw)``, image axes
        (x right, y down, z away from the camera): the turn, then the nod, then the tilt in the image."""
        r = self.rotation
        yaw = math.degrees(math.atan2(-float(r[2, 0]), float(r[2, 2])))
        pitch = math.degrees(math.asin(float(np.clip(r[2, 1], -1.0, 1.0))))
        roll = math.degrees(math.atan2(-float(r[0, 1]), float(r[1, 1])))
        return yaw, pitch, roll

    @property
    def angle_deg(self) -> float:
        """How far the head turned in all, degrees: the angle of the rotation about its own axis (a turn,
        a nod and a tilt together; 0 for the same pose)."""
        cos = (float(np.trace(self.rotation)) - 1.0) / 2.0
        return math.degrees(math.acos(float(np.clip(cos, -1.0, 1.0))))


def fit_pose(source: np.ndarray, target: np.ndarray, points: tuple[int, ...] = STABLE_POINTS) -> HeadPose:
    """The similarity taking ``source`` mesh points to ``target`` (both (N, 3)), least squares (Umeyama)
    over ``points``, refitted (at most twice) without the points farther than ``TRIM`` times the median
    residual, as long as ``MIN_POINTS`` remain."""
    source, target = np.asarray(source, float), np.asarray(target, float)
    if source.shape != target.shape or source.ndim != 2 or source.shape[1] != 3:
        raise ValueError(f"fit_pose needs two (N, 3) meshes of the same size, got {source.shape} and {target.shape}")
    src, dst = source[list(points)], target[list(points)]
    if not (np.all(np.isfinite(src)) and np.all(np.isfinite(dst))):
        raise ValueError("fit_pose: the mesh points contain NaN or inf")
    keep = np.ones(len(src), dtype=bool)
    pose = _umeyama(src, dst)
    for _ in range(2):
        residuals = np.linalg.norm(pose.apply(src) - dst, axis=1)
        within = residuals <= TRIM * max(float(np.median(residuals[keep])), 1e-9)
        if within.sum() < MIN_POINTS or np.array_equal(within, keep):
            break
        keep = within
        pose = _umeyama(src[keep], dst[keep])
    residual = float(np.median(np.linalg.norm(pose.apply(src[keep]) - dst[keep], axis=1)))
    return HeadPose(pose.scale, pose.rotation, pose.translation, residual)


def _umeyama(src: np.ndarray, dst: np.ndarray) -> HeadPose:
    mean_s, mean_d = src.mean(axis=0), dst.mean(axis=0)
    a, b = src - mean_s, dst - mean_d
    u, sing, vt = np.linalg.svd(b.T @ a)
    d = np.diag([1.0, 1.0, float(np.sign(np.linalg.det(u @ vt)) or 1.0)])
    rotation = u @ d @ vt
    spread = float((a**2).sum())
    if spread <= 0.0:
        raise ValueError("fit_pose: the source points are all at one place")
    scale = float((sing * np.diag(d)).sum() / spread)
    return HeadPose(scale, rotation, mean_d - scale * rotation @ mean_s, 0.0)


def depth_map(points: np.ndarray, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Dense depth (float32, ``shape``) from scattered mesh points (x, y, z in that grid's pixels).

    Normalised Gaussian splatting: smooth over ``sigma`` pixels where the mesh is, and, beyond its
    outline, the depth of the nearest part of the face (a wider kernel, weighted a thousand times
    less, so it never changes the depth inside the face).
    """
    h, w = shape
    pts = np.asarray(points, float)
    inside = (pts[:, 0] >= 0) & (pts[:, 0] <= w - 1) & (pts[:, 1] >= 0) & (pts[:, 1] <= h - 1)
    if not inside.any():
        raise ValueError(f"depth_map: no mesh point falls inside the {w}x{h} grid")
    pts = pts[inside]
    total = np.zeros((h, w), np.float64)
    weight = np.zeros((h, w), np.float64)
    xs, ys = np.round(pts[:, 0]).astype(int), np.round(pts[:, 1]).astype(int)
    np.add.at(total, (ys, xs), pts[:, 2])
    np.add.at(weight, (ys, xs), 1.0)
    near = (_blur(total, sigma), _blur(weight, sigma))
    far = (_blur(total, 6.0 * sigma), _blur(weight, 6.0 * sigma))
    mean = float(pts[:, 2].mean())
    depth = (near[0] + 1e-3 * far[0] + 1e-9 * mean) / (near[1] + 1e-3 * far[1] + 1e-9)
    return depth.astype(np.float32)


def _blur(image: np.ndarray, sigma: float) -> np.ndarray:
    k = 2 * int(math.ceil(3.0 * sigma)) + 1
    return cv2.GaussianBlur(image, (k, k), sigma, borderType=cv2.BORDER_CONSTANT)


def target_positions(
    pose: HeadPose, depth: np.ndarray, xs: np.ndarray, ys: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Where each pixel (xs, ys) of the source face lies in the target pose: ``pose`` applied with the
    source's depth (``depth`` sampled on the same grid as xs, ys)."""
    m = pose.scale * pose.rotation
    z = np.asarray(depth, np.float32)
    x, y = np.asarray(xs, np.float32), np.asarray(ys, np.float32)
    tx = np.float32(m[0, 0]) * x + np.float32(m[0, 1]) * y + np.float32(m[0, 2]) * z + np.float32(pose.translation[0])
    ty = np.float32(m[1, 0]) * x + np.float32(m[1, 1]) * y + np.float32(m[1, 2]) * z + np.float32(pose.translation[1])
    return tx, ty


def source_positions(
    pose: HeadPose,
    depth: np.ndarray,
    depth_scale: float,
    xs: np.ndarray,
    ys: np.ndarray,
    iterations: int = 3,
) -> tuple[np.ndarray, np.ndarray]:
    """Where each pixel (xs, ys) of the target pose lies in the source face: the inverse of ``pose``.

    ``pose`` takes source points (x, y, z) to the target. The depth of the source face is ``depth``,
    sampled on a grid ``depth_scale`` times the source pixels (the depth values in source pixels).
    The inverse needs the depth at the source position it is looking for, so it is found by fixed-point
    iteration from the position the pose would give at depth 0; the depth term is a small correction
    (the nose's protrusion times the sine of the turn), so three steps are exact to a hundredth of a pixel.
    """
    m = pose.scale * pose.rotation
    a_inv = np.linalg.inv(m[:2, :2]).astype(np.float32)
    px = np.asarray(xs, np.float32) - np.float32(pose.translation[0])
    py = np.asarray(ys, np.float32) - np.float32(pose.translation[1])
    cx, cy = np.float32(m[0, 2]), np.float32(m[1, 2])
    sx = a_inv[0, 0] * px + a_inv[0, 1] * py
    sy = a_inv[1, 0] * px + a_inv[1, 1] * py
    k = np.float32(depth_scale)
    for _ in range(iterations):
        z = cv2.remap(depth, sx * k, sy * k, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        qx, qy = px - cx * z, py - cy * z
        sx = a_inv[0, 0] * qx + a_inv[0, 1] * qy
        sy = a_inv[1, 0] * qx + a_inv[1, 1] * qy
    return sx, sy
