"""The constructor of one clip: feeds every frame to freeze/damp or synkinesis, in order.

Holds what a construction keeps between frames (the reference frame and its optical flow for
freeze/damp, the clip's own trigger movement for synkinesis) and gives the ground-truth weight of
every frame, so the validation harness (stream/validate/run.py) drives a case with one object.
Pure: numpy and OpenCV, no file I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from stream.face.align import yaw_index
from stream.face.mesh import FaceMesh
from stream.reference import ReferenceWait
from stream.validate.construct.damp import ReferencePose, damp_frame
from stream.validate.construct.geometry import FaceGeometry
from stream.validate.construct.spec import CaseSpec, episodes
from stream.validate.construct.synkinesis import EyeShape, NaturalTrigger, synkinesis_frame


@dataclass(frozen=True)
class ReferenceRule:
    """The frame the product takes as its neutral reference: the pipeline's rule
    (``stream.reference.ReferenceWait``: the first whose yaw index is at most ``max_yaw``, or the
    first ``wait_s`` after the wait began), offered only the frames the product measures at all (its
    yaw index within ``gate_yaw``, the pipeline's ``max_yaw``; a frame beyond it is never the
    reference). Freeze/damp hold on to the same frame, so a constructed palsy holds the face the
    product reads against; frames before it are not measured and are left as they are."""

    max_yaw: float
    wait_s: float
    gate_yaw: float = float("inf")


class Constructor:
    """Stateful over one clip: call ``frame`` for every frame in order; returns the modified frame.

    Frames are uint8 RGB (H, W, 3), unmirrored. A frame that is left alone (no landmarks, outside
    every synkinesis episode, the reference frame itself) is returned as the same array; a changed
    frame is a new array of the same shape.
    """

    def __init__(
        self,
        case: CaseSpec,
        fps: float,
        n_frames: int,
        mesh: FaceMesh | None = None,
        reference: ReferenceRule | None = None,
    ) -> None:
        """``mesh``: the face mesh that gives freeze/damp the head's 3-D pose in every frame, and lets
        the eye-on-smile synkinesis read the clip's own mouth movement without the head's; None
        falls back to the 2-D affine of the eyes and nose, and to the detector's mouth corners (for
        faces the mesh cannot see, and tests on synthetic textures). ``reference``: which frame
        freeze/damp hold on to; None: the first frame with landmarks."""
        self.case = case
        self._rule = reference
        self._wait = None if reference is None else ReferenceWait(reference.max_yaw, reference.wait_s)
        self._mesh = mesh
        self.fps = float(fps)
        self.n_frames = int(n_frames)
        self.episodes = episodes(self.fps, self.n_frames)
        self._reference: np.ndarray | None = None
        self._reference_pose: ReferencePose | None = None
        self._dis: cv2.DISOpticalFlow | None = None
        if not case.is_synkinesis:
            # DISOpticalFlow_create is missing from opencv's stubs
            self._dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)  # type: ignore[attr-defined]
        # Synkinesis follows the trigger wherever it happens, not only in the synthetic episodes: the
        # clip's own smiles (mouth width) and eye closures (lid aperture) drive it too, as a real
        # synkinesis accompanies every movement of the trigger.
        self._natural = NaturalTrigger(case.kind, mesh)
        self.last_synkinesis_weight = 0.0

    @property
    def reference(self) -> np.ndarray | None:
        """The frame freeze/damp holds on to (see ``ReferenceRule``), once seen."""
        return self._reference

    def _is_reference(self, index: int, landmarks: np.ndarray) -> bool:
        if self._rule is None or self._wait is None:
            return True
        yaw = yaw_index(landmarks)
        if abs(yaw) > self._rule.gate_yaw:
            return False  # the product does not measure this frame at all: its wait has not begun
        return self._wait.may_take(index / self.fps, yaw)

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
        # this frame's face mesh (image pixels), read once for whichever construction needs it
        mesh = self._mesh.on_image(image, geometry.landmarks) if self._mesh is not None else None
        if self.case.is_synkinesis:
            trigger = self.episode_weight(index)
            follow = max(trigger, self._natural.weight(image, geometry, mesh))
            self.last_synkinesis_weight = follow
            if follow <= 0.0:
                return image
            shapes = None
            if mesh is not None and np.all(np.isfinite(mesh)):
                # each eye closes from its own open lids in this frame, however wide or narrow
                shapes = {side: EyeShape.from_mesh(mesh, geometry, side) for side in ("left", "right")}
            return synkinesis_frame(image, geometry, self.case, trigger, follow, shapes)
        if self._reference is None:
            if not self._is_reference(index, geometry.landmarks):
                return image  # before the product's neutral reference: not measured, left as it is
            self._reference = image.copy()
            self._reference_pose = ReferencePose.of(geometry.landmarks, mesh, image.shape)
            return image
        if image.shape != self._reference.shape:
            raise ValueError(f"frame {index} is {image.shape}, the reference frame was {self._reference.shape}")
        assert self._reference_pose is not None and self._dis is not None
        return damp_frame(image, geometry, self.case, self._reference, self._reference_pose, self._dis, mesh)
