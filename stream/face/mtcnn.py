"""Embedded default detector: MTCNN with facenet-pytorch 2.5.3's weights, which ship in the wheel (works offline).

On the CPU the cascade runs in NumPy (``stream.face.mtcnn_numpy``: same weights, same steps, same
results to float32 rounding), so analysing a file does not import torch; ``device="cuda"`` runs
facenet-pytorch's own torch implementation on the GPU.
"""

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

    def __init__(
        self, device: str | None = None, max_side: int = 320, min_face_size: int = 40, min_score: float = 0.9
    ) -> None:
        self.max_side = max_side
        self.min_score = min_score
        # The nets are small enough that the CPU is the right place even where a GPU exists; torch
        # (and its 2.5 s import) only for an explicit non-CPU device.
        self.device = device or "cpu"
        if self.device == "cpu":
            from stream.face.mtcnn_numpy import NumpyMTCNN

            self._numpy: NumpyMTCNN | None = NumpyMTCNN(min_face_size=min_face_size)
        else:
            from facenet_pytorch import MTCNN

            self._numpy = None
            self._mtcnn = MTCNN(keep_all=True, device=self.device, min_face_size=min_face_size, post_process=False)

    def detect_all(self, image: np.ndarray) -> list[Face]:
        small, back = downscale_for_detection(image, self.max_side, "MTCNN")
        if self._numpy is not None:
            boxes, probs, points = self._numpy.detect(small)
        else:
            import torch

            with torch.inference_mode():
                boxes, probs, points = self._mtcnn.detect(small, landmarks=True)
        if boxes is None or len(boxes) == 0:
            return []
        # facenet-pytorch 2.5.3 returns object-dtype arrays under numpy 2: convert explicitly.
        boxes = np.asarray(boxes, dtype=float).reshape(-1, 4) * np.tile(back, 2)
        points = np.asarray(points, dtype=float).reshape(-1, 5, 2) * back
        probs = np.asarray(probs, dtype=float).reshape(-1)
        return [
            Face(box=b, landmarks=p, score=float(s)) for b, p, s in zip(boxes, points, probs) if s >= self.min_score
        ]


@register_detector("mtcnn")
def _build(device: str | None = None, max_side: int = 320) -> FaceDetector:
    return MTCNNDetector(device=device, max_side=max_side)
