"""How much a frozen half reads as moving, by how far the head has turned from the construction's
reference (docs/validity.md, "Where the palsy misses come from").

    python benchmarks/frozen_by_turn.py validation ../shared/data/d3.mp4 ../shared/data/healthy/vr_3.mp4

``validation`` is the ``--out`` folder of ``python -m stream validate`` holding ``freeze_left``,
``freeze_right`` and ``control`` results of these clips. A frozen half is the clip's first face frame
carried into each frame's head pose, so whatever the product reads on it is error: of the
construction's pose (which grows with the turn), or of the product's own measurement. The product's
error on healthy faces is the control's per-keyframe asymmetry; if it does not grow with the turn while
the frozen half's reading does, the reading is the construction's.

For every keyframe of those results this finds the head's 3-D rotation from the clip's first face
frame (face meshes, ``stream.face.headpose``) and prints one JSON line per clip and rotation bin:

* ``frozen_percent``: the frozen side's summed region movement in % of the other side's, over the
  keyframes where the region moved (0 is a perfect construction and measurement);
* ``control_asymmetry``: the mean |asymmetry index| of the unmodified clip's moving keyframes.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from stream.decode import VideoFile
from stream.face.headpose import fit_pose
from stream.face.mesh import FaceMesh
from stream.validate.run import CaseResult

BINS_DEG = ((0.0, 10.0), (10.0, 20.0), (20.0, 180.0))
MOVING = 1.5  # the evidence rules' move_threshold


def rotations(clip: Path, landmarks: np.ndarray) -> np.ndarray:
    """(n_frames,) degrees of 3-D rotation from the first frame with a face; NaN without a face."""
    mesh = FaceMesh()
    out = np.full(len(landmarks), np.nan)
    first = None
    with VideoFile(clip) as video:
        for frame in video.frames():
            i = frame.index
            if i >= len(landmarks) or not np.all(np.isfinite(landmarks[i])):
                continue
            points = mesh.on_image(frame.image, landmarks[i])
            if first is None:
                first = points
            out[i] = fit_pose(first, points).angle_deg
    return out


def at_keyframes(turn: np.ndarray, result: CaseResult, fps: float) -> np.ndarray:
    index = np.clip(np.round(np.asarray(result.time_s) * fps).astype(int), 0, len(turn) - 1)
    return turn[index]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", help="the --out folder of python -m stream validate")
    parser.add_argument("clips", nargs="+")
    args = parser.parse_args()
    for clip in map(Path, args.clips):
        folder = Path(args.results) / clip.stem
        cached = np.load(folder / "landmarks.npz")
        landmarks, fps = cached["landmarks"], float(cached["fps"])
        turn = rotations(clip, landmarks)
        control = CaseResult.load(folder / "control.npz")
        control_turn = at_keyframes(turn, control, fps)
        for lo, hi in BINS_DEG:
            frozen, other, asymmetry = 0.0, 0.0, []
            for side, s in (("left", 0), ("right", 1)):
                path = folder / f"freeze_{side}.npz"
                if not path.exists():
                    continue
                case = CaseResult.load(path)
                case_turn = at_keyframes(turn, case, fps)
                within = (case_turn >= lo) & (case_turn < hi)
                movement = np.asarray(case.movement)
                for k in range(movement.shape[2]):
                    x, y = movement[:, s, k], movement[:, 1 - s, k]
                    rows = within & (np.maximum(x, y) > MOVING)
                    frozen += float(x[rows].sum())
                    other += float(y[rows].sum())
            movement = np.asarray(control.movement)
            within = (control_turn >= lo) & (control_turn < hi)
            for k in range(movement.shape[2]):
                x, y = movement[:, 0, k], movement[:, 1, k]
                rows = within & (np.maximum(x, y) > MOVING)
                asymmetry.extend(np.abs(x[rows] - y[rows]) / (x[rows] + y[rows]))
            line = {
                "clip": clip.name,
                "turn_deg": [lo, hi],
                "frozen_percent": round(100.0 * frozen / other, 1) if other > 0 else None,
                "control_asymmetry": round(float(np.mean(asymmetry)), 2) if asymmetry else None,
                "control_moving_keyframes": len(asymmetry),
            }
            print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
