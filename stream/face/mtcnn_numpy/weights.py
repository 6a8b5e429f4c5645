"""MTCNN's weights read without torch: facenet-pytorch's pnet.pt, rnet.pt and onet.pt.

The files come with the facenet-pytorch wheel in the legacy ``torch.save`` format: a few pickles
followed by raw storages. Reading them with ``torch.load`` would import torch (2.5-5 s before the
first frame), so they are read here with a restricted unpickler that builds NumPy arrays and admits
nothing else (a pickle that names any other object is refused, so no code runs); the package is found
without being imported, because importing it imports torch.
"""

from __future__ import annotations

import collections
import importlib.util
import pickle
import struct
from pathlib import Path

import numpy as np

from stream.errors import WeightsError

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
