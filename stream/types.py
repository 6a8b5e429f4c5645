"""What flows between pipeline stages: small frozen dataclasses.

Image arrays are ``uint8`` RGB, shape (H, W, 3), in *camera* orientation (what the sensor saw,
not a mirrored selfie preview) unless a field says otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from stream.aus import AU_NAMES, EYE_CLOSURE, N_AUS, SIDES

# Names of the region-movement columns (au_series.csv: left_move_eyebrows, ...).
MOVEMENT_COLUMNS: tuple[str, ...] = ("move_eyebrows", "move_eyes", "move_mouth")


def side_columns(names: tuple[str, ...]) -> tuple[str, ...]:
    """Per-side column names ``{side}_{name}``, the patient's left first: the one place they are built
    (the series CSV, the SQLite tables, ``AUEstimate.as_row``)."""
    return tuple(f"{side}_{name}" for side in SIDES for name in names)


AU_COLUMNS: tuple[str, ...] = side_columns(AU_NAMES)
CLOSURE_COLUMNS: tuple[str, ...] = side_columns((EYE_CLOSURE,))
MOVE_COLUMNS: tuple[str, ...] = side_columns(MOVEMENT_COLUMNS)  # (2, 3) order of ``AUEstimate.movement``


@dataclass(frozen=True)
class Frame:
    """One decoded video frame."""

    index: int  # position in the source (0-based, counts every decoded frame)
    time_s: float  # presentation time in seconds from the start of the source
    image: np.ndarray  # (H, W, 3) uint8 RGB


@dataclass(frozen=True)
class Face:
    """A detected face: box and the 5 points RetinaFace/MTCNN give.

    ``landmarks`` rows are in *image* order, the order both detectors use:
    0 eye on the image's left, 1 eye on the image's right, 2 nose tip,
    3 mouth corner on the image's left, 4 mouth corner on the image's right.
    In an unmirrored camera frame the image's left is the patient's right.
    """

    box: np.ndarray  # (4,) float x1, y1, x2, y2 in pixels
    landmarks: np.ndarray  # (5, 2) float x, y in pixels
    score: float

    @property
    def area(self) -> float:
        x1, y1, x2, y2 = (float(v) for v in self.box)
        return max(0.0, x2 - x1) * max(0.0, y2 - y1)


@dataclass(frozen=True)
class Detection:
    """What a detector found in one frame: the largest face (or None) and how many faces."""

    face: Face | None
    n_faces: int


@dataclass(frozen=True)
class HalfFaces:
    """The aligned face split into the patient's two half-faces, each (512, 256, 3) uint8 RGB.

    Both halves are presented the same way round: the face midline on the half's right edge.
    ``right`` (patient's right) is the image's left half of the aligned unmirrored face, unchanged;
    ``left`` (patient's left) is the image's right half, mirrored horizontally.
    """

    left: np.ndarray
    right: np.ndarray


@dataclass(frozen=True)
class KeyframeStamp:
    """Which frame passed the keyframe filter, and when: a keyframe without its images.

    What the live server schedules, queues and stores by; the images stay where the analysis runs
    (with ``serve --analysis-processes`` in a worker process, see ``stream/server/analysis_workers.py``).
    """

    frame_index: int
    time_s: float


@dataclass(frozen=True)
class Keyframe(KeyframeStamp):
    """A frame that passed the keyframe filter, aligned and split."""

    halves: HalfFaces
    aligned: np.ndarray  # (512, 512, 3) uint8, the aligned face before splitting
    # True for the first keyframe after the face was lost for a while: the estimator takes a new
    # neutral reference (the head may have come back at another distance, pose or light).
    new_reference: bool = False
    # (2, 2) each side's detected mouth corner in its own half-face (row 0 left, row 1 right), or None
    mouth_corners: np.ndarray | None = None


@dataclass(frozen=True)
class AUEstimate:
    """AU intensities of one keyframe for both sides, on the 0..5 scale."""

    frame_index: int
    time_s: float
    left: np.ndarray  # (12,) float, AU_NAMES order
    right: np.ndarray  # (12,) float
    n_helpers: int = 0
    closure: np.ndarray | None = None  # (2,) eye closure (AU43) left, right on 0..5; None: not measured
    # (2, 3) direction-free movement of the brows, eyes and mouth, left then right, 0..5; None: not measured
    movement: np.ndarray | None = None
    # How far the head had turned from the pose of the neutral reference (3-D rotation, degrees); None:
    # the estimator does not measure it (no face mesh)
    turn_deg: float | None = None
    # True: turned beyond ``AnalysisConfig.max_turn_deg``; the pipeline leaves such a keyframe out of the
    # series, the statistics and the helpers (counted as ``keyframes_pose_gated``)
    pose_gated: bool = False

    def __post_init__(self) -> None:
        for side in (self.left, self.right):
            if side.shape != (N_AUS,):
                raise ValueError(
                    f"AUEstimate expects {N_AUS} AU values per side in {AU_NAMES} order, got shape {side.shape}"
                )
        if self.closure is not None and np.shape(self.closure) != (2,):
            raise ValueError(f"AUEstimate eye closure must be (left, right), got shape {np.shape(self.closure)}")

    def as_row(self) -> dict[str, float]:
        row = dict(zip(AU_COLUMNS, map(float, np.concatenate([self.left, self.right]))))
        if self.closure is not None:
            row.update(zip(CLOSURE_COLUMNS, map(float, self.closure)))
        if self.movement is not None:
            row.update(zip(MOVE_COLUMNS, map(float, np.asarray(self.movement).reshape(-1))))
        return row


@dataclass
class Counts:
    """Frame accounting for one analysis (mutable: the pipeline increments it)."""

    frames: int = 0
    keyframes: int = 0
    frames_without_face: int = 0
    frames_with_several_faces: int = 0
    extra: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, int]:
        return {
            "frames": self.frames,
            "keyframes": self.keyframes,
            "frames_without_face": self.frames_without_face,
            "frames_with_several_faces": self.frames_with_several_faces,
            **self.extra,
        }


@dataclass(frozen=True)
class AUSeries:
    """Per-side AU intensities of a whole analysis, one row per keyframe (the au_series.csv content)."""

    frames: np.ndarray  # (n,) int, source frame index
    time_s: np.ndarray  # (n,) float seconds
    left: np.ndarray  # (n, 12) float, AU_NAMES order, patient's left
    right: np.ndarray  # (n, 12) float, patient's right
    closure: np.ndarray | None = None  # (n, 2) eye closure (AU43) left, right; None: not measured
    movement: np.ndarray | None = None  # (n, 2, 3) region movement (brows, eyes, mouth) left, right

    def __post_init__(self) -> None:
        n = len(self.frames)
        if self.movement is not None and np.shape(self.movement) != (n, 2, 3):
            raise ValueError(f"AUSeries region movement must have shape ({n}, 2, 3), got {np.shape(self.movement)}")
        if self.closure is not None and np.shape(self.closure) != (n, 2):
            raise ValueError(f"AUSeries eye closure must have shape ({n}, 2), got {np.shape(self.closure)}")
        if self.time_s.shape != (n,) or self.left.shape != (n, N_AUS) or self.right.shape != (n, N_AUS):
            raise ValueError(
                f"AUSeries shapes disagree: frames {self.frames.shape}, time_s {self.time_s.shape}, "
                f"left {self.left.shape}, right {self.right.shape} (expected (n,), (n,), (n, {N_AUS}), (n, {N_AUS}))"
            )

    def __len__(self) -> int:
        return len(self.frames)

    @classmethod
    def from_estimates(cls, estimates: list[AUEstimate]) -> AUSeries:
        if not estimates:
            empty = np.zeros((0, N_AUS))
            return cls(np.zeros(0, dtype=int), np.zeros(0), empty, empty.copy())
        return cls(
            frames=np.array([e.frame_index for e in estimates], dtype=int),
            time_s=np.array([e.time_s for e in estimates], dtype=float),
            left=np.stack([e.left for e in estimates]).astype(float),
            right=np.stack([e.right for e in estimates]).astype(float),
            closure=_stacked([e.closure for e in estimates]),
            movement=_stacked([e.movement for e in estimates]),
        )


def _stacked(rows: list[np.ndarray | None]) -> np.ndarray | None:
    """The rows stacked as floats when every one is measured, else None (one missing row: none at all)."""
    present = [r for r in rows if r is not None]
    return np.stack(present).astype(float) if len(present) == len(rows) else None
