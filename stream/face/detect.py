"""Detector interface and registry: a detector turns an RGB image into the largest face and a face count."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from stream.registry import Registry
from stream.types import Detection, Face


class FaceDetector(ABC):
    """Finds faces with 5 landmarks in (H, W, 3) uint8 RGB images."""

    name: str = "?"

    @abstractmethod
    def detect_all(self, image: np.ndarray) -> list[Face]:
        """All faces found in ``image``, any order, landmarks in image order (see ``Face``)."""

    def detect(self, image: np.ndarray) -> Detection:
        """The largest face (by box area) and the number of faces."""
        faces = self.detect_all(image)
        if not faces:
            return Detection(face=None, n_faces=0)
        return Detection(face=max(faces, key=lambda f: f.area), n_faces=len(faces))


def downscale_for_detection(image: np.ndarray, max_side: int, detector: str) -> tuple[np.ndarray, np.ndarray]:
    """Check an RGB frame and shrink it so its longer side is at most ``max_side``.

    Returns the image to detect on and the per-axis factors (x, y) that take its pixel coordinates
    back to the frame's (rounding the resized size makes the two factors differ slightly).
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"{detector} expects an (H, W, 3) uint8 RGB image, got {image.shape} {image.dtype}")
    h, w = image.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    if scale >= 1.0:
        return image, np.ones(2)
    import cv2

    small = cv2.resize(image, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    return small, np.array([w / small.shape[1], h / small.shape[0]])


# Imported on first use so that importing the package does not pull in the models.
DETECTORS: Registry[FaceDetector] = Registry(
    "face detector", modules={"mtcnn": "stream.face.mtcnn", "retinaface": "stream.face.retinaface"}
)
register_detector = DETECTORS.register
available_detectors = DETECTORS.names


def build_detector(name: str, **options: Any) -> FaceDetector:
    """Build a detector by name (``mtcnn`` or ``retinaface``); an option its builder lacks is a ``ConfigError``."""
    return DETECTORS.build(name, **options)
