"""The ``retinaface`` face detector: RetinaFace behind the ``FaceDetector`` interface.

Where the network (``network``), its weights (``weights``) and the anchor maths (``anchors``) meet a
video frame: downscaling, the original pre-processing, score threshold, decoding to pixels, NMS and
``Face`` records; prior boxes are cached because the frames of a video share one size. Registered
under the name ``retinaface`` in ``stream.face.detect``.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from stream.device import torch_device
from stream.face.detect import FaceDetector, downscale_for_detection, register_detector
from stream.face.retinaface.anchors import decode_boxes, decode_landmarks, prior_boxes
from stream.face.retinaface.weights import PREPROCESSING, load_retinaface, resolve_weights
from stream.types import Face


class RetinaFaceDetector(FaceDetector):
    """RetinaFace with the original pre-processing (BGR, mean 104/117/123 subtracted, no scaling).

    ``weights``: file path, http(s) URL, ``KNOWN_WEIGHTS`` name or None (see ``resolve_weights``);
    ``weights_sha256`` pins the file's checksum; ``variant`` forces a ``CONFIGS`` entry (default: see ``variant_of``).
    ``max_side``: larger images are downscaled so their longer side is this many pixels; points are scaled back.
    ``confidence``: minimum face probability; ``nms_iou``: overlap above which the weaker box is dropped.
    """

    name = "retinaface"
    MEAN_BGR = PREPROCESSING["mean"]

    def __init__(
        self,
        weights: str | os.PathLike[str] | None = None,
        device: str | None = None,
        max_side: int = 640,
        confidence: float = 0.6,
        nms_iou: float = 0.4,
        weights_sha256: str | None = None,
        variant: str | None = None,
    ) -> None:
        self.weights_path = resolve_weights(weights, sha256=weights_sha256)
        self.device = torch_device(device)
        self.model = load_retinaface(self.weights_path, variant).to(self.device)
        self.cfg = self.model.cfg
        self.max_side = max_side
        self.confidence = confidence
        self.nms_iou = nms_iou
        self._priors: tuple[tuple[int, int], torch.Tensor] | None = None  # video frames share one size

    def detect_all(self, image: np.ndarray) -> list[Face]:
        import torchvision

        small, back = downscale_for_detection(image, self.max_side, "RetinaFace")
        sh, sw = small.shape[:2]
        bgr = small[:, :, ::-1].astype(np.float32) - np.asarray(self.MEAN_BGR, dtype=np.float32)

        with torch.inference_mode():
            x = torch.from_numpy(bgr.transpose(2, 0, 1).copy()).unsqueeze(0).to(self.device)
            loc, probs, landmark_offsets = self.model(x)
            priors = self._priors_for(sh, sw)
            scores = probs[0, :, 1]
            keep = scores > self.confidence
            if not bool(keep.any()):
                return []
            loc, scores, landmark_offsets, priors = loc[0, keep], scores[keep], landmark_offsets[0, keep], priors[keep]
            size = torch.tensor([sw, sh], dtype=torch.float32, device=self.device)
            boxes = decode_boxes(loc, priors, self.cfg.variance) * size.repeat(2)
            points = decode_landmarks(landmark_offsets, priors, self.cfg.variance) * size
            kept = torchvision.ops.nms(boxes, scores, self.nms_iou)
            boxes = boxes[kept].double().cpu().numpy() * np.tile(back, 2)
            points = points[kept].double().cpu().numpy() * back
            scores_np = scores[kept].double().cpu().numpy()
        return [Face(box=b, landmarks=p, score=float(s)) for b, p, s in zip(boxes, points, scores_np)]

    def _priors_for(self, height: int, width: int) -> torch.Tensor:
        if self._priors is None or self._priors[0] != (height, width):
            self._priors = ((height, width), prior_boxes(self.cfg, height, width).to(self.device))
        return self._priors[1]


@register_detector("retinaface")
def _build(
    weights: str | None = None,
    device: str | None = None,
    max_side: int = 640,
    weights_sha256: str | None = None,
    variant: str | None = None,
) -> FaceDetector:
    return RetinaFaceDetector(
        weights=weights, device=device, max_side=max_side, weights_sha256=weights_sha256, variant=variant
    )
