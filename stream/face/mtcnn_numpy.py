"""MTCNN forward pass in NumPy: the networks and cascade of facenet-pytorch 2.5.3, without importing torch.

Importing torch, torchvision and facenet-pytorch costs 2.5-5 s and 3 CPU-seconds before the first
frame, and torch's per-operation overhead dominates networks this small (P-net on a 320 px pyramid,
R-net on 24x24 and O-net on 48x48 crops). This module reads the same weight files from the installed
facenet-pytorch wheel (legacy ``torch.save`` format: a few pickles followed by raw float32 storages,
read with a restricted unpickler that builds NumPy arrays and nothing else) and runs the same cascade
step by step: pyramid with torch's "area" resampling (adaptive average pooling), P-net, per-scale and
global NMS, box regression, R-net, O-net, landmarks, "Min" NMS. Boxes, scores and points agree with
facenet-pytorch's ``MTCNN.detect`` to float32 rounding (tests/test_mtcnn_numpy.py compares them on
real frames).
"""

from __future__ import annotations

import collections
import importlib.util
import math
import pickle
import struct
from pathlib import Path

import numpy as np

from stream.errors import WeightsError

# --------------------------------------------------------------------------------------------------
# Weights: facenet-pytorch's pnet.pt / rnet.pt / onet.pt (legacy torch.save format) read without torch

_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
}


class _StorageType:
    def __init__(self, name: str) -> None:
        self.dtype = np.dtype(_STORAGE_DTYPES[name])


class _StorageRef:
    def __init__(self, key: str, dtype: np.dtype) -> None:
        self.key, self.dtype = key, dtype


def _rebuild_tensor(storage: _StorageRef, offset: int, size: tuple, stride: tuple, *_: object) -> tuple:
    return (storage, int(offset), tuple(size), tuple(stride))


class _StateDictUnpickler(pickle.Unpickler):
    """Admits only what a plain tensor state dict holds; anything else is refused (no code runs)."""

    def find_class(self, module: str, name: str) -> object:
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise pickle.UnpicklingError(f"unexpected object {module}.{name} in a weight file")

    def persistent_load(self, pid: tuple) -> _StorageRef:
        kind, storage_type, key, _location, _numel, _view = pid
        if kind != "storage" or not isinstance(storage_type, _StorageType):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        return _StorageRef(str(key), storage_type.dtype)


def read_legacy_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """A state dict saved by ``torch.save`` in the legacy (non-zip) format, as float32 NumPy arrays."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            for _ in range(3):  # magic number, protocol version, system info
                pickle.load(f)
            tensors = _StateDictUnpickler(f).load()
            keys = pickle.load(f)
            storages: dict[str, np.ndarray] = {}
            dtypes = {ref.key: ref.dtype for ref, *_ in tensors.values()}
            for key in keys:
                (n,) = struct.unpack("<q", f.read(8))
                dtype = dtypes.get(key, np.dtype(np.float32))
                data = f.read(n * dtype.itemsize)
                if len(data) != n * dtype.itemsize:
                    raise ValueError("file ends inside a tensor")
                storages[key] = np.frombuffer(data, dtype=dtype)
    except (OSError, ValueError, EOFError, struct.error, pickle.UnpicklingError) as exc:
        raise WeightsError(f"cannot read MTCNN weights {path}: {exc} (reinstall facenet-pytorch==2.5.3)") from exc
    out = {}
    for name, (ref, offset, size, stride) in tensors.items():
        base = storages[ref.key]
        item = base.itemsize
        arr = np.lib.stride_tricks.as_strided(base[offset:], shape=size, strides=tuple(s * item for s in stride))
        out[name] = np.ascontiguousarray(arr, dtype=np.float32)
    return out


def weights_folder() -> Path:
    """facenet-pytorch's data folder, found without importing the package (which imports torch)."""
    spec = importlib.util.find_spec("facenet_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise WeightsError("the MTCNN weights come with facenet-pytorch: pip install facenet-pytorch==2.5.3")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


# --------------------------------------------------------------------------------------------------
# Layers on (N, H, W, C) float32 arrays


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


class _Nets:
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


# --------------------------------------------------------------------------------------------------
# The cascade (facenet_pytorch.models.utils.detect_face, one image)


def integral_image(img: np.ndarray) -> np.ndarray:
    """(H + 1, W + 1, C) float64 summed-area table of an (H, W, C) image (exact for uint8 values)."""
    h, w = img.shape[:2]
    integral = np.zeros((h + 1, w + 1, img.shape[2]), dtype=np.float64)
    np.cumsum(img, axis=0, dtype=np.float64, out=integral[1:, 1:])
    np.cumsum(integral[1:, 1:], axis=1, out=integral[1:, 1:])
    return integral


def _area_bins(start: np.ndarray, length: np.ndarray, out: int) -> tuple[np.ndarray, np.ndarray]:
    """Bin edges of adaptive average pooling (torch ``interpolate(mode="area")``) of ``length`` input
    cells starting at ``start`` into ``out`` cells: cell i covers floor(i L / out) .. ceil((i + 1) L / out) - 1."""
    i = np.arange(out)
    lo = (i[None, :] * length[:, None]) // out
    hi = -((-(i[None, :] + 1) * length[:, None]) // out)
    return start[:, None] + lo, start[:, None] + hi


def area_resample(integral: np.ndarray, boxes: np.ndarray | list[int], oh: int, ow: int) -> np.ndarray:
    """Windows (n, 4) = (y0, y1, x0, x1), end exclusive, of the image behind ``integral``, each
    resampled to (oh, ow) by area averaging: (n, oh, ow, C) float32."""
    boxes = np.asarray(boxes, dtype=np.int64).reshape(-1, 4)
    y0, y1 = _area_bins(boxes[:, 0], boxes[:, 1] - boxes[:, 0], oh)
    x0, x1 = _area_bins(boxes[:, 2], boxes[:, 3] - boxes[:, 2], ow)
    a, b = y0[:, :, None], y1[:, :, None]
    c, d = x0[:, None, :], x1[:, None, :]
    total = integral[b, d] - integral[a, d] - integral[b, c] + integral[a, c]
    count = ((b - a) * (d - c))[..., None]
    return (total / count).astype(np.float32)


def nms(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    """torchvision ``nms``: greedy by decreasing score, drop IoU > threshold (areas without +1)."""
    if len(boxes) == 0:
        return np.zeros(0, dtype=np.int64)
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    area = (x2 - x1) * (y2 - y1)
    order = np.argsort(-scores, kind="stable")
    keep = []
    suppressed = np.zeros(len(boxes), dtype=bool)
    for i in order:
        if suppressed[i]:
            continue
        keep.append(i)
        w = np.clip(np.minimum(x2[i], x2) - np.maximum(x1[i], x1), 0, None)
        h = np.clip(np.minimum(y2[i], y2) - np.maximum(y1[i], y1), 0, None)
        inter = w * h
        iou = inter / (area[i] + area - inter)
        suppressed |= iou > threshold
    return np.asarray(keep, dtype=np.int64)


def nms_min(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    """facenet-pytorch's ``nms_numpy(..., 'Min')``: overlap over the smaller area, areas with +1."""
    if len(boxes) == 0:
        return np.zeros(0, dtype=np.int64)
    x1, y1, x2, y2 = (boxes[:, k].copy() for k in range(4))
    area = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = np.argsort(scores)
    pick = []
    while order.size > 0:
        i = order[-1]
        pick.append(i)
        idx = order[:-1]
        w = np.maximum(0.0, np.minimum(x2[i], x2[idx]) - np.maximum(x1[i], x1[idx]) + 1)
        h = np.maximum(0.0, np.minimum(y2[i], y2[idx]) - np.maximum(y1[i], y1[idx]) + 1)
        o = (w * h) / np.minimum(area[i], area[idx])
        order = order[np.where(o <= threshold)]
    return np.asarray(pick, dtype=np.int64)


def _rerec(b: np.ndarray) -> np.ndarray:
    b = b.copy()
    h = b[:, 3] - b[:, 1]
    w = b[:, 2] - b[:, 0]
    side = np.maximum(w, h)
    b[:, 0] = b[:, 0] + w * 0.5 - side * 0.5
    b[:, 1] = b[:, 1] + h * 0.5 - side * 0.5
    b[:, 2] = b[:, 0] + side
    b[:, 3] = b[:, 1] + side
    return b


def _bbreg(b: np.ndarray, reg: np.ndarray) -> np.ndarray:
    b = b.copy()
    w = b[:, 2] - b[:, 0] + 1
    h = b[:, 3] - b[:, 1] + 1
    b[:, 0] += reg[:, 0] * w
    b[:, 1] += reg[:, 1] * h
    b[:, 2] += reg[:, 2] * w
    b[:, 3] += reg[:, 3] * h
    return b


def _crops(integral: np.ndarray, boxes: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Crops of the boxes (1-based inclusive after facenet-pytorch's ``pad``), resampled to size x size,
    normalised as the nets expect; and which boxes had a non-empty crop."""
    h, w = integral.shape[0] - 1, integral.shape[1] - 1
    b = np.trunc(boxes[:, :4]).astype(np.int64)
    x, y, ex, ey = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
    x[x < 1] = 1
    y[y < 1] = 1
    ex[ex > w] = w
    ey[ey > h] = h
    ok = (ey > y - 1) & (ex > x - 1)
    windows = np.stack([y - 1, ey, x - 1, ex], axis=1)[ok]
    data = area_resample(integral, windows, size, size)
    return (data - np.float32(127.5)) * np.float32(0.0078125), ok


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
        self.nets = _Nets(weights or weights_folder())

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
        boxes = _rerec(boxes)

        # second stage: R-net on 24x24 crops
        data, ok = _crops(integral, boxes, 24)
        boxes = boxes[ok]
        if len(boxes) == 0:
            return empty
        reg, score = self.nets.rnet(data)
        keep = score > self.thresholds[1]
        boxes = np.concatenate([boxes[keep, :4], score[keep, None]], axis=1)
        reg = reg[keep]
        pick = nms(boxes[:, :4], boxes[:, 4], 0.7)
        boxes = _rerec(_bbreg(boxes[pick], reg[pick]))
        if len(boxes) == 0:
            return empty

        # third stage: O-net on 48x48 crops, landmarks
        data, ok = _crops(integral, boxes, 48)
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
        boxes = _bbreg(boxes, reg)
        pick = nms_min(boxes[:, :4], boxes[:, 4], 0.7)
        boxes, points = boxes[pick], points[pick]
        return boxes[:, :4], boxes[:, 4], points
