"""Freeze and damp: one side (or one region of it) keeps only ``factor`` of its expression.

The reference frame is carried into frame t's head pose (so rigid head motion stays), dense optical
flow from frame t to that posed reference measures the expression, and the chosen side is
re-rendered from the reference moved by ``factor`` of that flow. ``factor`` 0 is a frozen side
(flaccid palsy), 0.35 / 0.6 a partial one.

The head pose is the 3-D similarity between the two frames' face meshes (``stream.face.headpose``),
each pixel moved with its depth, so that a frozen half turns with the head as a real one would: its
nose and cheek keep their parallax. Without meshes (``ReferencePose.mesh`` None) it is the 2-D affine
of eyes + nose, which shears a turning face: on a talking head turning by 10 degrees it pulled the
reference's hair over the frozen cheek (docs/validity.md). With a mesh the change also stays within the
face's outline in both frames (frame t's, and the reference's carried into frame t): beyond it lie
hair, ears and background, which do not follow the face's depth, and a head turned by 20 degrees
otherwise brought the reference's earring and hair into the frozen cheek.
Pure: numpy and OpenCV.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from stream.face.headpose import depth_map, fit_pose, source_positions
from stream.face.mesh import FACE_OVAL
from stream.validate.construct.geometry import (
    BAND_BLEND_IOD,
    ELLIPSE_CENTRE_B,
    ELLIPSE_HALF_A,
    ELLIPSE_HALF_B,
    REGION_BANDS,
    FaceGeometry,
    WorkGrid,
    side_region_mask,
)
from stream.validate.construct.spec import CaseSpec

# Optical flow runs on the face crop scaled to this IOD (pixels): enough for lip and lid motion,
# and it keeps DIS at a few milliseconds whatever the video's resolution. The flow box reaches this
# far beyond the changed area so DIS sees the surroundings of what it measures.
_FLOW_IOD_PX = 64.0
_FLOW_CONTEXT_IOD = 0.15


# The reference's depth is kept on a grid at this IOD (pixels): the mesh's points are about 0.06 IOD
# apart, and the depth is smoothed over that distance.
_DEPTH_IOD_PX = 64.0
_DEPTH_SIGMA_PX = 4.0
# The face outline's edge is feathered over this width (IOD, a Gaussian's sigma).
_OUTLINE_BLEND_IOD = 0.03


@dataclass(frozen=True)
class ReferencePose:
    """The reference frame's head: its eyes and nose (2-D pose), and with a mesh its 3-D points and depth."""

    points: np.ndarray  # (3, 2) float32: eyes and nose tip, image pixels
    mesh: np.ndarray | None = None  # (468, 3): face mesh points (x, y, depth), image pixels
    depth: np.ndarray | None = None  # dense depth (image pixels) on a grid depth_scale times the image
    depth_scale: float = 1.0
    outline: np.ndarray | None = None  # (H, W) float32: 1 inside the reference's face outline

    @classmethod
    def of(cls, points: np.ndarray, mesh: np.ndarray | None, image_shape: tuple[int, ...]) -> ReferencePose:
        """The pose of a reference frame from its landmarks and, when there is one, its face mesh."""
        points = np.asarray(points, np.float32)[:3]
        if mesh is None:
            return cls(points)
        iod = float(np.linalg.norm(points[1] - points[0]))
        scale = _DEPTH_IOD_PX / iod
        shape = (int(image_shape[0] * scale) + 1, int(image_shape[1] * scale) + 1)
        depth = depth_map(np.asarray(mesh, float) * scale, shape, _DEPTH_SIGMA_PX) / np.float32(scale)
        outline = inside_outline(mesh, (0, 0, int(image_shape[1]), int(image_shape[0])), iod)
        return cls(points, np.asarray(mesh, float), depth, scale, outline)


def posed_reference(
    reference: np.ndarray,
    pose: ReferencePose,
    landmarks: np.ndarray,
    mesh: np.ndarray | None,
    box: tuple[int, int, int, int],
) -> np.ndarray:
    """The reference image in frame t's head pose, rendered over ``box`` (x0, y0, x1, y1) of frame t.

    With both meshes, the 3-D pose between them moves each pixel with its depth; otherwise the affine
    of the eyes and nose ``landmarks[:3]`` of frame t.
    """
    return reference_warp(pose, landmarks, mesh, box)(reference)


def reference_warp(
    pose: ReferencePose, landmarks: np.ndarray, mesh: np.ndarray | None, box: tuple[int, int, int, int]
) -> Callable[[np.ndarray], np.ndarray]:
    """The warp of ``posed_reference`` as a function of the image, so that several images of the
    reference (its pixels, its face outline) share one pose fit and one sampling map."""
    x0, y0, x1, y1 = box
    if pose.mesh is None or pose.depth is None or mesh is None:
        affine = cv2.getAffineTransform(pose.points, np.asarray(landmarks, np.float32)[:3])
        affine[:, 2] -= (x0, y0)
        return lambda image: cv2.warpAffine(
            image, affine, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
    head = fit_pose(pose.mesh, mesh)
    ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    sx, sy = source_positions(head, pose.depth, pose.depth_scale, xs, ys)
    return lambda image: cv2.remap(image, sx, sy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def support(case: CaseSpec) -> tuple[tuple[float, float], tuple[float, float]]:
    """Face-coordinate rectangle (a range, b range) outside which freeze/damp changes nothing."""
    a_range = (-ELLIPSE_HALF_A, 0.0) if case.side == "right" else (0.0, ELLIPSE_HALF_A)
    b_range = (ELLIPSE_CENTRE_B - ELLIPSE_HALF_B, ELLIPSE_CENTRE_B + ELLIPSE_HALF_B)
    if case.region != "face":
        low, high = REGION_BANDS[case.region]
        b_range = (max(b_range[0], low - BAND_BLEND_IOD / 2), min(b_range[1], high + BAND_BLEND_IOD / 2))
    return a_range, b_range


def damp_frame(
    image: np.ndarray,
    g: FaceGeometry,
    case: CaseSpec,
    reference: np.ndarray,
    reference_pose: ReferencePose,
    dis: cv2.DISOpticalFlow,
    mesh: np.ndarray | None = None,
) -> np.ndarray:
    """Frame ``image`` (geometry ``g``, face mesh ``mesh`` or None) with ``case``'s side/region keeping
    ``case.factor`` of its motion from ``reference`` (head pose ``reference_pose``), measured by ``dis``."""
    box = g.box(*support(case), image.shape, margin=_FLOW_CONTEXT_IOD)
    if box is None:
        return image
    x0, y0, x1, y1 = box
    grid = WorkGrid(g, box, _FLOW_IOD_PX)

    # the reference in frame t's head pose, rendered only over the box
    warp = reference_warp(reference_pose, g.landmarks, mesh, box)
    warped_ref = warp(reference)
    crop = image[y0:y1, x0:x1]

    # u: crop(x) ~ warped_ref(x + u(x)). Flow and mask are computed at a fixed face scale (the
    # cost no longer grows with the resolution) and brought to full resolution, where they are smooth.
    grey_t = grid.shrink(cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY))
    grey_r = grid.shrink(cv2.cvtColor(warped_ref, cv2.COLOR_RGB2GRAY))
    flow = dis.calc(grey_t, grey_r, None)  # type: ignore[call-overload]  # None: allocate (stubs omit it)
    a, b = grid.face_coords()
    # fraction of the flow each pixel keeps: factor on the chosen side/region, 1 elsewhere
    changed = side_region_mask(a, b, case.side, case.region)
    if mesh is not None and reference_pose.outline is not None:
        # only skin that is the face's in both frames: inside frame t's outline, and brought there from
        # inside the reference's (the depth of hair, ears and background is not the mesh's)
        changed = changed * grid.shrink(inside_outline(mesh, box, g.iod) * warp(reference_pose.outline))
    keep = 1.0 - (1.0 - case.factor) * changed
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


def inside_outline(mesh: np.ndarray, box: tuple[int, int, int, int], iod: float) -> np.ndarray:
    """(h, w) float32 over ``box``: 1 inside the face outline of ``mesh`` (image pixels), 0 outside,
    feathered over ``_OUTLINE_BLEND_IOD``."""
    x0, y0, x1, y1 = box
    mask = np.zeros((y1 - y0, x1 - x0), dtype=np.float32)
    outline = np.round(np.asarray(mesh, float)[list(FACE_OVAL), :2] - (x0, y0)).astype(np.int32)
    cv2.fillPoly(mask, [outline], 1.0)
    sigma = max(_OUTLINE_BLEND_IOD * iod, 0.5)
    return cv2.GaussianBlur(mask, (0, 0), sigma)
