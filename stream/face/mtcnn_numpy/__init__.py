"""MTCNN forward pass in NumPy: the networks and cascade of facenet-pytorch 2.5.3, without importing torch.

Importing torch, torchvision and facenet-pytorch costs 2.5-5 s and 3 CPU-seconds before the first
frame, and torch's per-operation overhead dominates networks this small (P-net on a 320 px pyramid,
R-net on 24x24 and O-net on 48x48 crops). This package reads the same weight files from the installed
facenet-pytorch wheel and runs the same cascade step by step: pyramid with torch's "area" resampling
(adaptive average pooling), P-net, per-scale and global NMS, box regression, R-net, O-net, landmarks,
"Min" NMS. Boxes, scores and points agree with facenet-pytorch's ``MTCNN.detect`` to float32 rounding
(tests/test_mtcnn_numpy.py compares them on real frames).

The package, one concept a module: ``weights`` (the legacy ``torch.save`` files read with a restricted
unpickler that builds NumPy arrays and nothing else), ``networks`` (the layers and the P/R/O-nets),
``boxes`` (area resampling, crops, box regression and the two NMS) and ``cascade`` (``NumpyMTCNN``,
the three stages on one image).
"""

from __future__ import annotations

from stream.face.mtcnn_numpy.boxes import area_resample, integral_image, nms, nms_min
from stream.face.mtcnn_numpy.cascade import NumpyMTCNN
from stream.face.mtcnn_numpy.weights import read_legacy_state_dict, weights_folder

__all__ = [
    "NumpyMTCNN",
    "area_resample",
    "integral_image",
    "nms",
    "nms_min",
    "read_legacy_state_dict",
    "weights_folder",
]
