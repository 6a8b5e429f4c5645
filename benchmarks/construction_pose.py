"""How well the validation's constructions carry the head's motion (docs/validity.md, "The head pose").

    python benchmarks/construction_pose.py ../shared/data/d9.mp4 ../shared/data/healthy/vr_3.mp4 --every 6

A frozen or damped half is the clip's first frame carried into each frame's head pose. Where the pose
is right, the reference and the frame agree on the skin that expressions leave in place, so dense
optical flow between them is small there; what remains is pose error (plus the flow's own error and
light changing with the turn). For every ``--every``-th frame with a face, this measures the median
flow magnitude (template pixels: 128 = one inter-ocular distance) over the nose bridge and the
outer cheeks at eye level, after posing the reference with

* ``2d``: the affine of the detector's eyes and nose (the construction before 2026-11-30), and
* ``3d``: the 3-D similarity of the face meshes, each pixel moved with its depth (the construction now).

Prints one JSON line per clip: median and 90th percentile over the frames, per method.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

from stream.config import AnalysisConfig
from stream.decode import VideoFile
from stream.face.mesh import FaceMesh
from stream.validate.construct.damp import ReferencePose, posed_reference
from stream.validate.construct.geometry import FaceGeometry
from stream.validate.run import clip_landmarks


def rigid_mask(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Nose bridge and outer cheeks at eye level, in face coordinates (IOD)."""
    nose = (np.abs(a) < 0.12) & (b > -0.35) & (b < 0.15)
    cheeks = (np.abs(a) > 0.65) & (np.abs(a) < 0.9) & (b > -0.4) & (b < 0.1)
    return nose | cheeks


def measure(clip: Path, every: int) -> dict[str, object]:
    all_landmarks, _ = clip_landmarks(clip, AnalysisConfig())  # the harness's own (detector and tracking)
    mesh = FaceMesh()
    dis = cv2.DISOpticalFlow.create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    reference: np.ndarray | None = None
    poses: dict[str, ReferencePose] = {}
    residual: dict[str, list[float]] = {"2d": [], "3d": []}
    with VideoFile(clip) as video:
        for frame in video.frames():
            if frame.index >= len(all_landmarks) or not np.all(np.isfinite(all_landmarks[frame.index])):
                continue
            landmarks = all_landmarks[frame.index]
            if reference is None:
                reference = frame.image
                reference_mesh = mesh.on_image(reference, landmarks)
                poses = {
                    "2d": ReferencePose.of(landmarks, None, reference.shape),
                    "3d": ReferencePose.of(landmarks, reference_mesh, reference.shape),
                }
                continue
            if frame.index % every:
                continue
            g = FaceGeometry(landmarks)
            box = g.box((-1.2, 1.2), (-1.0, 0.9), frame.image.shape)
            if box is None:
                continue
            x0, y0, x1, y1 = box
            a, b = g.face_coords(np.arange(x0, x1), np.arange(y0, y1))
            rigid = rigid_mask(a, b)
            grey = cv2.cvtColor(frame.image[y0:y1, x0:x1], cv2.COLOR_RGB2GRAY)
            frame_mesh = mesh.on_image(frame.image, landmarks)
            for method, pose in poses.items():
                posed = posed_reference(reference, pose, landmarks, frame_mesh if method == "3d" else None, box)
                flow = dis.calc(grey, cv2.cvtColor(posed, cv2.COLOR_RGB2GRAY), None)  # type: ignore[call-overload]
                residual[method].append(float(np.median(np.linalg.norm(flow[rigid], axis=1))) * 128.0 / g.iod)
    out: dict[str, object] = {"clip": clip.name, "frames": len(residual["3d"])}
    for method, values in residual.items():
        if values:
            median, p90 = float(np.median(values)), float(np.percentile(values, 90))
            out[method] = {"median": round(median, 2), "p90": round(p90, 2)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("clips", nargs="+", type=Path)
    parser.add_argument("--every", type=int, default=6, help="measure every N-th frame (default 6)")
    args = parser.parse_args()
    for clip in args.clips:
        print(json.dumps(measure(clip, args.every)))


if __name__ == "__main__":
    main()
