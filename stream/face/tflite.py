"""MediaPipe's TFLite models shipped in ``stream/data``, checked and loaded into an OpenCV network.

The face mesh (``stream.face.mesh``) and the eyelid model (``stream.face.eyelids``) both ship their
file inside the package, check it against its sha256 before loading, and let a caller pass another
copy (checked against the checksum the caller gives). ``cv2.dnn.readNetFromTFLite`` runs them, so no
new dependency comes with them.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import cv2

from stream.weights import verify


def packaged(file_name: str) -> Path:
    """The packaged model file ``stream/data/<file_name>``."""
    return Path(str(resources.files("stream") / "data" / file_name))


def load_network(
    file_name: str, known_sha256: str, model: str | Path | None, sha256: str | None, what: str
) -> cv2.dnn.Net:
    """The network of ``model`` (checked against ``sha256`` when given), or of the packaged file
    ``file_name`` (checked against ``known_sha256``); ``WeightsError`` on a wrong or corrupt file."""
    path = Path(model) if model is not None else packaged(file_name)
    verify(path, sha256 if model is not None else known_sha256, what=what)
    return cv2.dnn.readNetFromTFLite(str(path))
