"""MTCNN's three-stage cascade on one image, in NumPy: the CPU path of the ``mtcnn`` detector.

P-net over an image pyramid (per-scale and global NMS, box regression), R-net on 24x24 crops, O-net
on 48x48 crops with landmarks, then "Min" NMS: the steps of facenet-pytorch's ``detect_face`` in its
order and with its thresholds, so that ``NumpyMTCNN.detect`` returns what ``MTCNN.detect`` returns.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stream.face.mtcnn_numpy.boxes import area_resample, bbreg, crops, integral_image, nms, nms_min, rerec
from stream.face.mtcnn_numpy.networks import Nets
from stream.face.mtcnn_numpy.weights import weights_folder


class NumpyMTCNN:
    """``detect(image)`` -> boxes (n, 4), probabilities (n,), points (n, 5, 2) like ``MTCNN.detect``."""

    def __init__(
        self,
        min_face_size: int = 40,
        thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7),
        factor: float = 0.709,
        weights: Path | None = None,
    ) -> None:
        self.min_face_size = min_face_size
        self.thresholds = thresholds
        self.factor = factor
        self.nets = Nets(weights or weights_folder())

    def detect(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        h, w = image.shape[:2]
        integral = integral_image(image)
        empty = (np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 5, 2), np.float32))
        m = 12.0 / self.min_face_size
        minl = min(h, w) * m
        scales = []
        scale = m
        while minl >= 12:
            scales.append(scale)
            scale *= self.factor
            minl *= self.factor

        # first stage: P-net over the pyramid
        found = []
        for scale in scales:
            data = area_resample(integral, [0, h, 0, w], int(h * scale + 1), int(w * scale + 1))
            data = (data - np.float32(127.5)) * np.float32(0.0078125)
            reg, prob = self.nets.pnet(data)
            ys, xs = np.nonzero(prob >= self.thresholds[0])
            if len(ys) == 0:
                continue
            bb = np.stack([xs, ys], axis=1).astype(np.float32)
            q1 = np.floor((2 * bb + 1) / np.float32(scale))
            q2 = np.floor((2 * bb + 12) / np.float32(scale))
            boxes = np.concatenate([q1, q2, prob[ys, xs][:, None], reg[ys, xs]], axis=1).astype(np.float32)
            found.append(boxes[nms(boxes[:, :4], boxes[:, 4], 0.5)])
        if not found:
            return empty
        boxes = np.concatenate(found)
        boxes = boxes[nms(boxes[:, :4], boxes[:, 4], 0.7)]
        regw = boxes[:, 2] - boxes[:, 0]
        regh = boxes[:, 3] - boxes[:, 1]
        boxes = np.stack(
            [
                boxes[:, 0] + boxes[:, 5] * regw,
                boxes[:, 1] + boxes[:, 6] * regh,
                boxes[:, 2] + boxes[:, 7] * regw,
                boxes[:, 3] + boxes[:, 8] * regh,
                boxes[:, 4],
            ],
            axis=1,
        )
        boxes = rerec(boxes)

        # second stage: R-net on 24x24 crops
        data, ok = crops(integral, boxes, 24)
        boxes = boxes[ok]
        if len(boxes) == 0:
            return empty
        reg, score = self.nets.rnet(data)
        keep = score > self.thresholds[1]
        boxes = np.concatenate([boxes[keep, :4], score[keep, None]], axis=1)
        reg = reg[keep]
        pick = nms(boxes[:, :4], boxes[:, 4], 0.7)
        boxes = rerec(bbreg(boxes[pick], reg[pick]))
        if len(boxes) == 0:
            return empty

        # third stage: O-net on 48x48 crops, landmarks
        data, ok = crops(integral, boxes, 48)
        boxes = boxes[ok]
        if len(boxes) == 0:
            return empty
        reg, points, score = self.nets.onet(data)
        keep = score > self.thresholds[2]
        boxes = np.concatenate([boxes[keep, :4], score[keep, None]], axis=1)
        points, reg = points[keep], reg[keep]
        wi = boxes[:, 2] - boxes[:, 0] + 1
        hi = boxes[:, 3] - boxes[:, 1] + 1
        px = wi[:, None] * points[:, :5] + boxes[:, 0, None] - 1
        py = hi[:, None] * points[:, 5:10] + boxes[:, 1, None] - 1
        points = np.stack([px, py], axis=2)
        boxes = bbreg(boxes, reg)
        pick = nms_min(boxes[:, :4], boxes[:, 4], 0.7)
        boxes, points = boxes[pick], points[pick]
        return boxes[:, :4], boxes[:, 4], points
