"""Detector interface and registry: a detector turns an RGB image into the largest face and a face count."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

import numpy as np

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


_REGISTRY: dict[str, Callable[..., FaceDetector]] = {}


def register_detector(name: str) -> Callable[[Callable[..., FaceDetector]], Callable[..., FaceDetector]]:
    def wrap(builder: Callable[..., FaceDetector]) -> Callable[..., FaceDetector]:
        _REGISTRY[name] = builder
        return builder

    return wrap


def available_detectors() -> list[str]:
    _load_builtin()
    return sorted(_REGISTRY)


def build_detector(name: str, **options: Any) -> FaceDetector:
    """Build a detector by name (``mtcnn`` or ``retinaface``); options go to its builder."""
    _load_builtin()
    if name not in _REGISTRY:
        raise ValueError(f"unknown face detector {name!r}; choose one of {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name](**options)


def _load_builtin() -> None:
    # Imported lazily so that importing the package does not pull in torch.
    import stream.face.mtcnn  # noqa: F401

    try:
        import stream.face.retinaface  # noqa: F401
    except ImportError:  # pragma: no cover - module is optional while under construction
        pass
