"""Sealed ``torch.save`` files: the sha256 of every byte, kept in the zip archive comment.

Exists because ``torch.load`` ignores most of the zip container (local headers, CRCs, alignment
padding): a flipped byte there changes no tensor, yet the file is no longer what ``stream train``
wrote. The seal lets a reader refuse such a file. DEM checkpoints and training state use it.
"""

from __future__ import annotations

import hashlib
import os
import struct
from pathlib import Path
from typing import Any

import torch

from stream.errors import CheckpointError

_SEAL_PREFIX = b"stream-sha256:"
_SEAL_LENGTH = len(_SEAL_PREFIX) + 64
_EOCD = b"PK\x05\x06"  # end of central directory record: 22 bytes, the comment length in its last 2


def _hash_file(path: Path, length: int, tail: bytes = b"") -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        left = length
        while left > 0:
            chunk = f.read(min(left, 1 << 22))
            if not chunk:
                break
            h.update(chunk)
            left -= len(chunk)
    h.update(tail)
    return h.hexdigest()


def _seal(path: Path) -> None:
    """Append the sha256 of the file as its zip archive comment (zip readers, torch's included, skip it)."""
    size = path.stat().st_size
    with path.open("rb") as f:
        f.seek(size - 22)
        eocd = f.read(22)
    if eocd[:4] != _EOCD or eocd[20:22] != b"\x00\x00":
        raise RuntimeError(f"{path}: torch.save wrote a zip layout this version cannot seal")
    digest = _hash_file(path, size)
    with path.open("r+b") as f:
        f.seek(size - 2)
        f.write(struct.pack("<H", _SEAL_LENGTH) + _SEAL_PREFIX + digest.encode())


def seal_state(path: Path) -> str:
    """'ok', 'missing' (a plain zip without a seal) or 'broken' (a seal that does not match the bytes)."""
    size = path.stat().st_size
    with path.open("rb") as f:
        f.seek(max(0, size - 22 - _SEAL_LENGTH))
        tail = f.read()
    if len(tail) >= 22 and tail[-22:-18] == _EOCD and tail[-2:] == b"\x00\x00":
        return "missing"
    eocd, seal = tail[:22], tail[22:]
    if (
        len(tail) < 22 + _SEAL_LENGTH
        or eocd[:4] != _EOCD
        or eocd[20:22] != struct.pack("<H", _SEAL_LENGTH)
        or not seal.startswith(_SEAL_PREFIX)
    ):
        return "broken"
    actual = _hash_file(path, size - _SEAL_LENGTH - 2, b"\x00\x00")
    return "ok" if actual.encode() == seal[len(_SEAL_PREFIX) :] else "broken"


def save_sealed(obj: Any, path: str | Path) -> Path:
    """``torch.save`` then seal, through a temporary name: never a half-written file under the real one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    _seal(tmp)
    os.replace(tmp, path)
    return path


def load_sealed(path: str | Path, what: str, fix: str) -> Any:
    """A sealed file's content (``weights_only=True``); CheckpointError naming ``what`` and ``fix`` otherwise."""
    path = Path(path)
    seal = seal_state(path)
    if seal != "ok":
        problem = (
            "carries no seal (written by an older version?)"
            if seal == "missing"
            else "does not match its seal (damaged or edited)"
        )
        raise CheckpointError(f"{path}: this {what} {problem}: {fix}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is a damaged file
        raise CheckpointError(f"{path}: this {what} cannot be read ({exc}): {fix}") from exc
