"""RetinaFace face detector (Deng et al., CVPR 2020) in the layout of the public biubug6/Pytorch_Retinaface weights.

Two backbones share the detection head: MobileNet-0.25 (``mobilenet0.25_Final.pth``, 1.7 MB, fast on CPU)
and ResNet-50 (``Resnet50_Final.pth``, 105 MB, more accurate). The architecture is code; the weights
are data: a file path, an http(s) URL (downloaded once into a cache, checksummed) or a name from
``KNOWN_WEIGHTS``. Which backbone a state dict belongs to is read from its keys; which training settings
(``CONFIGS``) go with it, from its checksum when known (see ``variant_of``).

The package, one concept a module: ``network`` (settings per variant and the network), ``anchors``
(prior boxes and the decoding of box and landmark offsets), ``weights`` (known files, resolving and
loading a state dict) and ``detector`` (the ``retinaface`` detector of ``stream.face.detect``, registered
when this package is imported).
"""

from __future__ import annotations

from stream.face.retinaface.anchors import decode_boxes, decode_landmarks, prior_boxes
from stream.face.retinaface.detector import RetinaFaceDetector
from stream.face.retinaface.network import CONFIGS, RetinaFace, RetinaFaceConfig, build_retinaface
from stream.face.retinaface.weights import (
    KNOWN_WEIGHTS,
    PREPROCESSING,
    backbone_of,
    load_retinaface,
    read_state_dict,
    resolve_weights,
    variant_of,
)

__all__ = [
    "CONFIGS",
    "KNOWN_WEIGHTS",
    "PREPROCESSING",
    "RetinaFace",
    "RetinaFaceConfig",
    "RetinaFaceDetector",
    "backbone_of",
    "build_retinaface",
    "decode_boxes",
    "decode_landmarks",
    "load_retinaface",
    "prior_boxes",
    "read_state_dict",
    "resolve_weights",
    "variant_of",
]
