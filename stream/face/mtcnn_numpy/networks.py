"""MTCNN's P-, R- and O-nets as NumPy functions on (N, H, W, C) float32 arrays.

The nets are tiny (P-net on a 320 px pyramid, R-net on 24x24 and O-net on 48x48 crops), so torch's
per-operation overhead would dominate them; these layers (im2col convolution, PReLU, max pooling with
torch's ``ceil_mode``, 2-class softmax) reproduce torch's results to float32 rounding, and the nets
flatten in facenet-pytorch's order so that its dense weights apply unchanged.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from stream.face.mtcnn_numpy.weights import read_legacy_state_dict


def _conv(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Valid 2-D convolution, stride 1; ``w`` in torch layout (O, C, kh, kw).

    im2col from kh x kw shifted slices concatenated on the channel axis (contiguous channel runs,
    much faster than a strided 6-D window gather), then one matrix product.
    """
    o, c, kh, kw = w.shape
    n, h, wd = x.shape[:3]
    h2, w2 = h - kh + 1, wd - kw + 1
    if kh == kw == 1:
        cols = x.reshape(-1, c)
    else:
        cols = np.concatenate([x[:, dy : dy + h2, dx : dx + w2] for dy in range(kh) for dx in range(kw)], axis=3)
        cols = cols.reshape(n * h2 * w2, kh * kw * c)
    wm = w.transpose(0, 2, 3, 1).reshape(o, kh * kw * c)  # (O, kh, kw, C): the order of the columns
    return (cols @ wm.T + b).reshape(n, h2, w2, o)


def _prelu(x: np.ndarray, a: np.ndarray) -> np.ndarray:
    """PReLU in place (``x`` is a fresh layer output)."""
    neg = np.minimum(x, 0.0)
    np.maximum(x, 0.0, out=x)
    neg *= a
    x += neg
    return x


def _pool_out(size: int, k: int, s: int) -> int:
    out = math.ceil((size - k) / s) + 1
    if (out - 1) * s >= size:  # torch: the last window must start inside the input
        out -= 1
    return out


def _maxpool(x: np.ndarray, k: int, s: int) -> np.ndarray:
    """Max pooling with ceil_mode=True, no padding (torch's MaxPool2d(k, s, ceil_mode=True)),
    separably: the max of k strided row slices, then of k strided column slices."""
    n, h, w, c = x.shape
    oh, ow = _pool_out(h, k, s), _pool_out(w, k, s)
    need_h, need_w = (oh - 1) * s + k, (ow - 1) * s + k
    if need_h > h or need_w > w:
        x = np.pad(x, ((0, 0), (0, max(0, need_h - h)), (0, max(0, need_w - w)), (0, 0)), constant_values=-np.inf)
    rows = x[:, 0 : (oh - 1) * s + 1 : s].copy()
    for d in range(1, k):
        np.maximum(rows, x[:, d : d + (oh - 1) * s + 1 : s], out=rows)
    out = rows[:, :, 0 : (ow - 1) * s + 1 : s].copy()
    for d in range(1, k):
        np.maximum(out, rows[:, :, d : d + (ow - 1) * s + 1 : s], out=out)
    return out


def _softmax1(logits: np.ndarray) -> np.ndarray:
    """Probability of class 1 of a 2-class softmax on the last axis."""
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return (e[..., 1] / e.sum(axis=-1)).astype(np.float32)


def _flatten_torch_order(x: np.ndarray) -> np.ndarray:
    # facenet-pytorch flattens x.permute(0, 3, 2, 1) of NCHW, i.e. (N, W, H, C)
    return np.ascontiguousarray(x.transpose(0, 2, 1, 3)).reshape(x.shape[0], -1)


class Nets:
    """The three nets with the weights found in ``folder`` (facenet-pytorch's data folder)."""

    def __init__(self, folder: Path) -> None:
        self.p = read_legacy_state_dict(folder / "pnet.pt")
        self.r = read_legacy_state_dict(folder / "rnet.pt")
        self.o = read_legacy_state_dict(folder / "onet.pt")

    def pnet(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(1, H, W, 3) -> regression (H', W', 4), face probability (H', W')."""
        p = self.p
        x = _maxpool(_prelu(_conv(x, p["conv1.weight"], p["conv1.bias"]), p["prelu1.weight"]), 2, 2)
        x = _prelu(_conv(x, p["conv2.weight"], p["conv2.bias"]), p["prelu2.weight"])
        x = _prelu(_conv(x, p["conv3.weight"], p["conv3.bias"]), p["prelu3.weight"])
        prob = _softmax1(_conv(x, p["conv4_1.weight"], p["conv4_1.bias"]))
        reg = _conv(x, p["conv4_2.weight"], p["conv4_2.bias"])
        return reg[0], prob[0]

    def rnet(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, 24, 24, 3) -> regression (N, 4), face probability (N,)."""
        r = self.r
        x = _maxpool(_prelu(_conv(x, r["conv1.weight"], r["conv1.bias"]), r["prelu1.weight"]), 3, 2)
        x = _maxpool(_prelu(_conv(x, r["conv2.weight"], r["conv2.bias"]), r["prelu2.weight"]), 3, 2)
        x = _prelu(_conv(x, r["conv3.weight"], r["conv3.bias"]), r["prelu3.weight"])
        x = _prelu(_flatten_torch_order(x) @ r["dense4.weight"].T + r["dense4.bias"], r["prelu4.weight"])
        prob = _softmax1(x @ r["dense5_1.weight"].T + r["dense5_1.bias"])
        reg = x @ r["dense5_2.weight"].T + r["dense5_2.bias"]
        return reg, prob

    def onet(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(N, 48, 48, 3) -> regression (N, 4), landmarks (N, 10), face probability (N,)."""
        o = self.o
        x = _maxpool(_prelu(_conv(x, o["conv1.weight"], o["conv1.bias"]), o["prelu1.weight"]), 3, 2)
        x = _maxpool(_prelu(_conv(x, o["conv2.weight"], o["conv2.bias"]), o["prelu2.weight"]), 3, 2)
        x = _maxpool(_prelu(_conv(x, o["conv3.weight"], o["conv3.bias"]), o["prelu3.weight"]), 2, 2)
        x = _prelu(_conv(x, o["conv4.weight"], o["conv4.bias"]), o["prelu4.weight"])
        x = _prelu(_flatten_torch_order(x) @ o["dense5.weight"].T + o["dense5.bias"], o["prelu5.weight"])
        prob = _softmax1(x @ o["dense6_1.weight"].T + o["dense6_1.bias"])
        reg = x @ o["dense6_2.weight"].T + o["dense6_2.bias"]
        points = x @ o["dense6_3.weight"].T + o["dense6_3.bias"]
        return reg, points, prob
