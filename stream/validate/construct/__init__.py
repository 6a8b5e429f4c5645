"""Constructed test cases with known ground truth, made from real frames of healthy faces.

No clip of a real palsy patient comes with per-side, per-frame truth; a healthy clip changed on
purpose does. Two constructions, both pure frame transforms driven by the detector's 5 landmarks:

* **freeze / damp**: one side of the face (or one region of it) keeps only ``factor`` of its
  expression. The frame the product takes as its neutral reference (the first facing the camera,
  ``ReferenceRule``) is the *reference* (frames before it are left alone); for frame t it is carried into
  frame t's head pose (so rigid head motion stays: the 3-D pose of the face mesh, each pixel moved
  with its depth, when the ``Constructor`` is given a ``FaceMesh``; else the affine of eyes + nose),
  dense optical flow from frame t to that posed reference measures the expression, and the chosen
  side is re-rendered from the reference moved by ``factor`` of that flow, within the face's outline
  when there is a mesh. ``factor`` 0 is a frozen side (flaccid palsy), 0.35 / 0.6 a partial one.
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

The package, one concept a module: ``spec`` (what a case is, and its episodes), ``geometry`` (the
face frame and the side/region masks), ``damp`` (freeze/damp rendering), ``synkinesis`` (synkinesis
rendering) and ``constructor`` (the per-clip driver). Pure: numpy and OpenCV only, no file I/O (the
face mesh, a model at the edge, is passed in).
"""

from __future__ import annotations

from stream.validate.construct.constructor import Constructor, ReferenceRule
from stream.validate.construct.damp import support
from stream.validate.construct.geometry import (
    BAND_BLEND_IOD,
    ELLIPSE_BLEND_IOD,
    EYE_INDEX,
    MIDLINE_BLEND_IOD,
    MOUTH_CORNER_INDEX,
    REGION_BANDS,
    FaceGeometry,
    WorkGrid,
    side_region_mask,
    smoothstep,
)
from stream.validate.construct.spec import (
    EPISODE_CENTRES,
    EPISODE_FALL_S,
    EPISODE_HOLD_S,
    EPISODE_RISE_S,
    EPISODE_S,
    KINDS,
    REGIONS,
    SIDES,
    CaseSpec,
    Episode,
    episodes,
)
from stream.validate.construct.synkinesis import (
    LID_HALF_WIDTH_IOD,
    LID_LOWER_IOD,
    LID_UPPER_IOD,
    SMILE_OUT,
    SMILE_PULL_IOD,
    SMILE_SIGMA_IOD,
    SMILE_UP,
    EyeShape,
    NaturalTrigger,
    lid_profile,
)

__all__ = [
    "BAND_BLEND_IOD",
    "ELLIPSE_BLEND_IOD",
    "EPISODE_CENTRES",
    "EPISODE_FALL_S",
    "EPISODE_HOLD_S",
    "EPISODE_RISE_S",
    "EPISODE_S",
    "EYE_INDEX",
    "KINDS",
    "LID_HALF_WIDTH_IOD",
    "LID_LOWER_IOD",
    "LID_UPPER_IOD",
    "MIDLINE_BLEND_IOD",
    "MOUTH_CORNER_INDEX",
    "REGIONS",
    "REGION_BANDS",
    "SIDES",
    "SMILE_OUT",
    "SMILE_PULL_IOD",
    "SMILE_SIGMA_IOD",
    "SMILE_UP",
    "CaseSpec",
    "Constructor",
    "Episode",
    "EyeShape",
    "ReferenceRule",
    "FaceGeometry",
    "NaturalTrigger",
    "WorkGrid",
    "episodes",
    "lid_profile",
    "side_region_mask",
    "smoothstep",
    "support",
]
