"""Embedded default detector: MTCNN from facenet-pytorch 2.5.3, whose weights ship in the wheel (works offline)."""

from __future__ import annotations

import numpy as np

from stream.face.detect import FaceDetector, downscale_for_detection, register_detector
from stream.types import Face


class MTCNNDetector(FaceDetector):
    """MTCNN (P/R/O-nets) giving a box and the same 5 points as RetinaFace.

    ``max_side``: images are downscaled so their longer side is at most this many pixels before
    detection (points are scaled back). MTCNN's cost grows with the image area and with the number
    of pyramid scales down to ``min_face_size`` (pixels in the downscaled image): 40 px at 320 px is
    a face an eighth of the frame wide, far smaller than webcam or clinic framing.

    ``min_score``: faces below this O-net probability are dropped. Real faces in the test clips score
    0.96-1.0 even half covered by a hand; a cartoon in no_face.mp4 scored 0.70-0.75.
    """

    name = "mtcnn"

    def __init__(self, device: str | None = None, max_side: int = 320, min_face_size: int = 40,
                 min_score: float = 0.9) -> None:
        import torch
        from facenet_pytorch import MTCNN

        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.max_side = max_side
        self.min_score = min_score
        self._mtcnn = MTCNN(keep_all=True, device=device, min_face_size=min_face_size, post_process=False)

    def detect_all(self, image: np.ndarray) -> list[Face]:
        import torch

        small, back = downscale_for_detection(image, self.max_side, "MTCNN")
        with torch.inference_mode():
            boxes, probs, points = self._mtcnn.detect(small, landmarks=True)
        if boxes is None:
            return []
        # facenet-pytorch 2.5.3 returns object-dtype arrays under numpy 2: convert explicitly.
        boxes = np.asarray(boxes, dtype=float).reshape(-1, 4) * np.tile(back, 2)
        points = np.asarray(points, dtype=float).reshape(-1, 5, 2) * back
        probs = np.asarray(probs, dtype=float).reshape(-1)
        return [Face(box=b, landmarks=p, score=float(s)) for b, p, s in zip(boxes, points, probs) if s >= self.min_score]


@register_detector("mtcnn")
def _build(device: str | None = None, max_side: int = 320) -> FaceDetector:
    return MTCNNDetector(device=device, max_side=max_side)
