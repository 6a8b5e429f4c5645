"""One configuration object for an analysis; CLI flags and server settings map onto it.

Every default is documented here and nowhere else (docs/ quote these values).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from stream.errors import ConfigError


@dataclass(frozen=True)
class AnalysisConfig:
    # --- face detection ---
    detector: str = "mtcnn"  # embedded default: weights ship in facenet-pytorch
    weights: str | None = None  # RetinaFace weights: file path or URL (cached, checksummed)
    device: str | None = None  # None: CUDA when available, else CPU
    # Run the detector on every k-th frame and track the 5 points with Lucas-Kanade in between
    # (a keyframe is always re-detected before alignment). 1 = detect every frame.
    detect_every: int = 10
    # Frames whose longer side exceeds this are scaled down (area averaging) while they are decoded,
    # before detection, tracking, the keyframe filter and alignment: a 4K frame holds far more pixels
    # than the 512x512 aligned face or the 320 px detector input use, and converting, tracking and
    # warping them cost more than real time. 1280 leaves every shipped clip (up to 720x1280) untouched.
    max_frame_side: int = 1280
    # --- keyframe filter (paper 2.2) ---
    # Mean absolute difference, in grey levels (0..255), between the 48x48 anchored face crop of a
    # frame and that of the last keyframe; a frame is kept when the difference is above it.
    # 8.0: a still face with tracked landmarks differs by about 1-3 between frames; at 8 about a
    # quarter of the frames of expressive clips are kept (the paper kept ~17% of DISFA+), see
    # docs/pipeline.md for the measurement.
    keyframe_threshold: float = 8.0
    # --- head pose and reference ---
    # |yaw index| above which a frame is not measured (counted as frames_pose_gated): the nose tip's
    # offset from the eye midpoint along the eye line, in inter-ocular distances. The nose stands
    # about 0.55 IOD in front of the eyes, so 0.25 is a head turned about 25 degrees; beyond it the
    # far half-face is foreshortened and reads as moving less. Healthy clips of the validation set
    # stay within 0.27 (docs/validity.md).
    max_yaw: float = 0.25
    # 3-D rotation of the head from the pose of its neutral reference (face mesh, degrees) above which a
    # keyframe is not measured (counted as keyframes_pose_gated). Each keyframe is carried into the
    # reference's pose by the mesh's depth before its movement is read; beyond about 15 degrees that
    # carry has to invent skin the turn hid (the far cheek, the lips' seam), and a frozen half of the
    # face reads as moving 2-5 times more than within 10 degrees (docs/validity.md).
    max_turn_deg: float = 15.0
    # A face that returns after this long without one gets a new neutral reference.
    rereference_after_s: float = 1.0
    # The neutral reference faces the camera: its |yaw index| at most this (0.06, about 6 degrees).
    # Every keyframe is read against the reference, and a turned one splits the face unevenly (the
    # nose tip, pinned to the split, stands off the face's midline), so every keyframe inherits its
    # asymmetry. Frames before a frontal one are not measured (frames_before_reference), for at
    # most reference_wait_s seconds; then the next frame is taken as it is and the report warns
    # (reference_not_frontal). docs/au_flow.md, step 1.
    reference_max_yaw: float = 0.06
    reference_wait_s: float = 2.0
    # --- AU estimation ---
    estimator: str = "flow"  # training-free default; "dem" needs --checkpoint
    checkpoint: str | None = None
    helpers: int = 2  # m, the paper's choice
    seed: int = 0  # helper draw
    buffer_max_keyframes: int = 256
    buffer_max_bytes: int = 256 * 1024 * 1024
    # --- symptom statistics (paper 4) ---
    active_threshold: float = 0.5  # an AU is active when intensity > this (eq. 4-5)
    # |ΔAM| of a region at or below this is "no obvious difference" (clinicians' label 0).
    asymmetry_threshold: float = 0.5
    cooccurrence_threshold: float = 0.3  # |CM difference| above this => synkinesis pair (eq. 8-9)
    normal_threshold: float = 0.5  # pairs co-occurring above this in normal subjects are masked
    normal_cooccurrence: str | None = None  # 12x12 file (JSON or CSV); None: shipped DISFA default
    # --- decisions (stream/symptoms/evidence.py) ---
    # "evidence": a verdict needs movement, an interval that excludes no difference and a size beyond
    # healthy variation, a synkinesis pair needs support and a corrected test (thresholds measured with
    # `python -m stream validate`, docs/validity.md). "paper": the paper's dead band and 0.3 rule.
    rules: str = "evidence"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def symptom_thresholds(self) -> dict[str, float]:
        """The keyword arguments of ``SymptomAccumulator.snapshot`` / ``compute_symptoms``."""
        return {
            "asymmetry_threshold": self.asymmetry_threshold,
            "cooccurrence_threshold": self.cooccurrence_threshold,
            "normal_threshold": self.normal_threshold,
        }

    def evidence_rules(self) -> Any:
        """The evidence rules under this config's activity and co-occurrence thresholds."""
        from stream.symptoms.evidence import EvidenceRules

        return EvidenceRules(
            active_threshold=self.active_threshold,
            cooccurrence_threshold=self.cooccurrence_threshold,
            normal_threshold=self.normal_threshold,
        )

    def validate(self) -> AnalysisConfig:
        problems = []
        if self.rules not in ("evidence", "paper"):
            problems.append(f"--rules must be evidence or paper, got {self.rules!r}")
        if self.keyframe_threshold < 0:
            problems.append(f"keyframe threshold must be >= 0 grey levels, got {self.keyframe_threshold}")
        if self.max_frame_side < 320:
            problems.append(f"max_frame_side must be at least 320 (the detector's input), got {self.max_frame_side}")
        if not self.max_turn_deg > 0:
            problems.append(f"max_turn_deg must be > 0 (degrees from the reference pose), got {self.max_turn_deg}")
        if not self.max_yaw > 0:
            problems.append(f"max_yaw must be > 0 (inter-ocular distances), got {self.max_yaw}")
        if not self.reference_max_yaw > 0:
            problems.append(f"reference_max_yaw must be > 0 (inter-ocular distances), got {self.reference_max_yaw}")
        if self.reference_wait_s < 0:
            problems.append(f"reference_wait_s must be >= 0 seconds, got {self.reference_wait_s}")
        if self.detect_every < 1:
            problems.append(f"detect_every must be >= 1, got {self.detect_every}")
        if self.helpers < 0:
            problems.append(f"--helpers must be >= 0, got {self.helpers}")
        if not 0 <= self.active_threshold < 5:
            problems.append(f"active threshold must be in [0, 5), got {self.active_threshold}")
        if self.asymmetry_threshold < 0:
            problems.append(f"asymmetry threshold must be >= 0, got {self.asymmetry_threshold}")
        if not 0 <= self.cooccurrence_threshold <= 1:
            problems.append(f"co-occurrence threshold must be in [0, 1], got {self.cooccurrence_threshold}")
        if not 0 <= self.normal_threshold <= 1:
            problems.append(f"normal co-occurrence threshold must be in [0, 1], got {self.normal_threshold}")
        if self.normal_cooccurrence is not None and not Path(self.normal_cooccurrence).is_file():
            problems.append(f"normal co-occurrence file {self.normal_cooccurrence} does not exist")
        if problems:
            raise ConfigError("; ".join(problems))
        return self
