"""Canonical sha256 of DEM checkpoint content: what names a model and ties a DVPM to its OVPM.

Kept apart from the checkpoint file format (``checkpoint``) because the hashes are the model's
identity: a report names its model by ``model_sha256``, and a DVPM records the ``fingerprint`` of the
OVPM whose features it learnt. They must not change when the file layout does.

Hashing is over a canonical serialisation (sorted keys, type tags, each tensor's dtype, shape and
little-endian bytes), not over pickle bytes, which depend on the torch version.
"""

from __future__ import annotations

import hashlib
from typing import Any

import torch

from stream.au.dem.config import DemConfig
from stream.au.dem.models import DVPM, OVPM


class Hasher:
    """sha256 over a canonical serialisation; each tensor's bytes are hashed once per instance."""

    def __init__(self) -> None:
        self._tensors: dict[int, bytes] = {}

    def digest(self, obj: Any) -> str:
        h = hashlib.sha256()
        self._feed(h, obj)
        return h.hexdigest()

    def _tensor(self, t: torch.Tensor) -> bytes:
        key = id(t)
        if key not in self._tensors:
            c = t.detach().to("cpu").contiguous()
            h = hashlib.sha256(f"{c.dtype}|{tuple(c.shape)}|".encode())
            if c.numel():  # native byte order: little-endian on every platform torch ships for
                h.update(c.reshape(-1).view(torch.uint8).numpy().data)
            self._tensors[key] = h.digest()
        return self._tensors[key]

    def _feed(self, h: Any, obj: Any) -> None:
        if isinstance(obj, torch.Tensor):
            h.update(b"T" + self._tensor(obj))
        elif isinstance(obj, dict):
            h.update(b"D%d:" % len(obj))
            for k in sorted(obj, key=lambda k: (type(k).__name__, str(k))):
                self._feed(h, k)
                self._feed(h, obj[k])
        elif isinstance(obj, (list, tuple)):
            h.update(b"L%d:" % len(obj))
            for v in obj:
                self._feed(h, v)
        elif isinstance(obj, str):
            b = obj.encode()
            h.update(b"S%d:" % len(b) + b)
        elif isinstance(obj, bool):
            h.update(b"B1" if obj else b"B0")
        elif isinstance(obj, int):
            h.update(b"I%d;" % obj)
        elif isinstance(obj, float):
            h.update(b"F" + float.hex(obj).encode() + b";")
        elif obj is None:
            h.update(b"N")
        else:
            raise TypeError(f"cannot hash a {type(obj).__name__} in a DEM checkpoint")


def fingerprint_state(state: dict[str, torch.Tensor], config: dict[str, Any], hasher: Hasher) -> str:
    return hasher.digest(("stream-dem/ovpm", config, state))


def content_hash(config: dict[str, Any], ovpm_state: dict, dvpm_state: dict | None, hasher: Hasher) -> str:
    return hasher.digest(("stream-dem/model", config, ovpm_state, dvpm_state))


def integrity(data: dict[str, Any], hasher: Hasher) -> dict[str, str | None]:
    return {
        part: None if data.get(part) is None else hasher.digest((part, data[part]))
        for part in ("config", "ovpm", "dvpm")
    }


def fingerprint(model: torch.nn.Module, config: DemConfig) -> str:
    """sha256 of the configuration and every OVPM parameter/buffer (names, dtypes, shapes, bytes)."""
    return fingerprint_state(model.state_dict(), config.as_dict(), Hasher())


def model_sha256(config: DemConfig, ovpm: OVPM, dvpm: DVPM | None) -> str:
    """The model's content hash (config + both state dicts): what a report names as the checkpoint."""
    return content_hash(config.as_dict(), ovpm.state_dict(), None if dvpm is None else dvpm.state_dict(), Hasher())
