"""DEM checkpoints: an OVPM/DVPM matched pair, weights as data apart from the architecture code.

One file (``torch.save`` of a plain dict, loaded with ``weights_only=True``)::

    {"format": "stream-dem/2",
     "config": DemConfig as a dict,
     "ovpm": {"state_dict": ..., "fingerprint": sha256 hex, "trained": {...training record...}},
     "dvpm": {"state_dict": ..., "ovpm_fingerprint": sha256 hex, "trained": {...}} or None,
     "sha256": content hash of the model: config + OVPM and DVPM state dicts,
     "integrity": {"config": sha256, "ovpm": sha256, "dvpm": sha256 or None}}

and a *seal*: the zip archive comment holds the sha256 of every other byte of the file.

Why three layers. The OVPM ``fingerprint`` (config + OVPM tensors) ties a DVPM to the OVPM whose
features it learnt (paper section 3: retrain the DVPM whenever the OVPM changes). ``sha256`` names the
model that produced a report (it ignores training records, so the same weights give the same name
whether loaded from a file or held in memory). ``integrity`` hashes each whole entry, records included,
so a refusal can say which part changed. The seal exists because ``torch.load`` ignores most of the zip
container (local headers, CRCs, alignment padding): a flipped byte there changes no tensor, yet the
file is no longer what ``stream train`` wrote, and we refuse it too.

Hashing is over a canonical serialisation (sorted keys, type tags, each tensor's dtype, shape and
little-endian bytes), not over pickle bytes, which depend on the torch version.
"""

from __future__ import annotations

import hashlib
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stream import weights
from stream.au.dem.models import DVPM, IMAGENET_MEAN, IMAGENET_STD, OVPM, DemConfig, build_pair
from stream.errors import CheckpointError

FORMAT = "stream-dem/2"
OLD_FORMATS = ("stream-dem/1",)
TRAIN_COMMAND = "python -m stream train --data DATASET_DIR --out RUN_DIR"
ANALYZE_COMMAND = "python -m stream analyze VIDEO --out REPORT_DIR --estimator dem --checkpoint RUN_DIR/dem.pt"
TRAIN_HINT = f"train one with `{TRAIN_COMMAND}` (see docs/dem.md), then run `{ANALYZE_COMMAND}`"
RETRAIN_HINT = f"copy the file again from where it came from, or retrain with `{TRAIN_COMMAND}`"
PART_NAMES = {
    "config": "model configuration ('config')",
    "ovpm": "OVPM record ('ovpm': weights, fingerprint, training record)",
    "dvpm": "DVPM record ('dvpm': weights, OVPM fingerprint, training record)",
    "sha256": "model hash ('sha256')",
    "integrity": "integrity table ('integrity')",
}


# --------------------------------------------------------------------------------------------
# Canonical hashing


class _Hasher:
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


def _fingerprint(state: dict[str, torch.Tensor], config: dict[str, Any], hasher: _Hasher) -> str:
    return hasher.digest(("stream-dem/ovpm", config, state))


def _content_hash(config: dict[str, Any], ovpm_state: dict, dvpm_state: dict | None, hasher: _Hasher) -> str:
    return hasher.digest(("stream-dem/model", config, ovpm_state, dvpm_state))


def _integrity(data: dict[str, Any], hasher: _Hasher) -> dict[str, str | None]:
    return {
        part: None if data.get(part) is None else hasher.digest((part, data[part]))
        for part in ("config", "ovpm", "dvpm")
    }


def fingerprint(model: torch.nn.Module, config: DemConfig) -> str:
    """sha256 of the configuration and every OVPM parameter/buffer (names, dtypes, shapes, bytes)."""
    return _fingerprint(model.state_dict(), config.as_dict(), _Hasher())


def model_sha256(config: DemConfig, ovpm: OVPM, dvpm: DVPM | None) -> str:
    """The model's content hash (config + both state dicts): what a report names as the checkpoint."""
    return _content_hash(config.as_dict(), ovpm.state_dict(), None if dvpm is None else dvpm.state_dict(), _Hasher())


# --------------------------------------------------------------------------------------------
# The seal: sha256 of the whole file in the zip archive comment


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


def _seal_state(path: Path) -> str:
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
    seal = _seal_state(path)
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


# --------------------------------------------------------------------------------------------
# Writing


def _plain(obj: Any) -> Any:
    """Records as plain Python types: ``weights_only`` loading accepts nothing else (numpy scalars included)."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if obj is None or isinstance(obj, (str, bool, int, float)):
        return obj
    raise TypeError(f"a checkpoint record holds plain values only, got {type(obj).__name__}")


def pack(
    config: DemConfig,
    ovpm: OVPM,
    dvpm: DVPM | None,
    *,
    ovpm_record: dict | None = None,
    dvpm_record: dict | None = None,
    ovpm_fingerprint: str | None = None,
) -> dict[str, Any]:
    """The checkpoint dict. ``ovpm_fingerprint``: the OVPM the DVPM was trained on (default: this one)."""
    hasher = _Hasher()
    cfg = config.as_dict()
    ovpm_state = _cpu(ovpm.state_dict())
    dvpm_state = None if dvpm is None else _cpu(dvpm.state_dict())
    fp = _fingerprint(ovpm_state, cfg, hasher)
    data: dict[str, Any] = {
        "format": FORMAT,
        "config": cfg,
        "ovpm": {"state_dict": ovpm_state, "fingerprint": fp, "trained": _plain(ovpm_record or {})},
        "dvpm": None
        if dvpm_state is None
        else {
            "state_dict": dvpm_state,
            "ovpm_fingerprint": ovpm_fingerprint or fp,
            "trained": _plain(dvpm_record or {}),
        },
        "sha256": _content_hash(cfg, ovpm_state, dvpm_state, hasher),
    }
    data["integrity"] = _integrity(data, hasher)
    return data


def save(path: str | Path, config: DemConfig, ovpm: OVPM, dvpm: DVPM | None, **kwargs: Any) -> Path:
    return save_sealed(pack(config, ovpm, dvpm, **kwargs), path)


# --------------------------------------------------------------------------------------------
# Reading: every part verified, every refusal names the file and the part


def resolve(given: str | os.PathLike[str], sha256: str | None = None) -> Path:
    """The checkpoint file for what was given: a run folder (its ``dem.pt``), a file, or a URL (http, https,
    file) downloaded once into the weights cache (``stream.weights``). ``sha256`` pins the file's bytes."""
    text = os.fspath(given)
    if weights.is_url(text):
        return weights.resolve(text, sha256=sha256, what="DEM checkpoint", how_to_get=TRAIN_HINT)
    path = Path(text)
    path = path / "dem.pt" if path.is_dir() else path
    if sha256 is not None and path.is_file():
        weights.verify(path, sha256, what="DEM checkpoint")
    return path


def weights_spec(path: Path, config: DemConfig, sha256: str | None = None) -> weights.WeightsSpec:
    """What a loaded checkpoint is, as weights data: where it lies, its pinned checksum (if any), its
    configuration and the preprocessing of its half-face input (``models.to_input``)."""
    return weights.WeightsSpec(
        name=path.stem,
        url=path.resolve().as_uri(),
        sha256=sha256,
        config=config,
        suffix=path.suffix,
        preprocessing={
            "colour_order": "RGB",
            "size_hw": config.input_size,
            "scale": 1 / 255,
            "mean": IMAGENET_MEAN,
            "std": IMAGENET_STD,
        },
    )


def read(path: str | Path) -> dict[str, Any]:
    """The verified checkpoint dict: format, parts, their hashes, the model hash and the seal."""
    path = resolve(path)
    if not path.is_file():
        raise CheckpointError(f"DEM checkpoint {path} does not exist: {TRAIN_HINT}")
    seal = _seal_state(path)
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - corrupt, truncated or foreign file
        raise CheckpointError(f"{path} is not a readable DEM checkpoint ({exc}): {RETRAIN_HINT}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("format"), str):
        raise CheckpointError(f"{path} is not a DEM checkpoint (expected format {FORMAT!r}): {TRAIN_HINT}")
    if data["format"] in OLD_FORMATS:
        raise CheckpointError(
            f"{path} has format {data['format']!r}, which hashed the OVPM only and cannot be verified; "
            f"this version reads {FORMAT!r}: train a new run with `{TRAIN_COMMAND}`"
        )
    if data["format"] != FORMAT:
        raise CheckpointError(f"{path} has format {data['format']!r}; this version reads {FORMAT!r}: {TRAIN_HINT}")
    _check_structure(path, data)
    hasher = _Hasher()
    recorded = data["integrity"]
    for part, actual in _integrity(data, hasher).items():
        if recorded.get(part) != actual:
            raise CheckpointError(
                f"{path}: the {PART_NAMES[part]} does not match the sha256 recorded with it "
                f"(the file was damaged or edited after it was written): {RETRAIN_HINT}"
            )
    dvpm_state = None if data["dvpm"] is None else data["dvpm"]["state_dict"]
    if _content_hash(data["config"], data["ovpm"]["state_dict"], dvpm_state, hasher) != data["sha256"]:
        raise CheckpointError(f"{path}: the {PART_NAMES['sha256']} does not match the weights: {RETRAIN_HINT}")
    if _fingerprint(data["ovpm"]["state_dict"], data["config"], hasher) != data["ovpm"]["fingerprint"]:
        raise CheckpointError(
            f"{path}: OVPM weights do not match their recorded fingerprint (file corrupt or edited): {RETRAIN_HINT}"
        )
    if seal == "missing":
        raise CheckpointError(
            f"{path}: the file carries no seal (the sha256 of its bytes that the train command writes), so it was "
            f"re-saved by another tool and cannot be verified: {RETRAIN_HINT}"
        )
    if seal == "broken":
        raise CheckpointError(
            f"{path}: the zip container (headers, padding or seal) differs from what was written, though the "
            f"tensors still match their hashes: the file was damaged or edited: {RETRAIN_HINT}"
        )
    return data


def _check_structure(path: Path, data: dict[str, Any]) -> None:
    def missing(part: str, reason: str) -> CheckpointError:
        return CheckpointError(f"{path}: the {PART_NAMES[part]} {reason}: {RETRAIN_HINT}")

    if not isinstance(data.get("config"), dict):
        raise missing("config", "is missing" if "config" not in data else "is not a dict")
    for part, keys in (
        ("ovpm", ("state_dict", "fingerprint", "trained")),
        ("dvpm", ("state_dict", "ovpm_fingerprint", "trained")),
    ):
        if part not in data:
            raise missing(part, "is missing")
        entry = data[part]
        if entry is None and part == "dvpm":
            continue
        if not isinstance(entry, dict):
            raise missing(part, f"is a {type(entry).__name__}, not a dict")
        absent = [k for k in keys if k not in entry]
        if absent:
            raise missing(part, f"lacks {', '.join(map(repr, absent))}")
        state = entry["state_dict"]
        if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise missing(part, "has a state_dict that is not a dict of tensors")
    if not isinstance(data.get("sha256"), str):
        raise missing("sha256", "is missing")
    if not isinstance(data.get("integrity"), dict):
        raise missing("integrity", "is missing")


@dataclass(frozen=True)
class CheckpointInfo:
    """Where a loaded pair came from: what ``DemEstimator.model_info`` reports."""

    path: str | None
    sha256: str  # the model content hash (config + both state dicts)
    ovpm_fingerprint: str
    ovpm_record: dict[str, Any] = field(default_factory=dict)
    dvpm_record: dict[str, Any] = field(default_factory=dict)


@dataclass
class DemPair:
    config: DemConfig
    ovpm: OVPM
    dvpm: DVPM
    ovpm_fingerprint: str
    record: dict[str, Any]
    info: CheckpointInfo
    weights: weights.WeightsSpec


def load_ovpm(path: str | Path) -> tuple[DemConfig, OVPM, dict[str, Any]]:
    """A verified stage-1 OVPM (``ovpm.pt`` or ``dem.pt``): configuration, model, training record."""
    path = resolve(path)
    data = read(path)
    config = _config(path, data)
    ovpm, _ = build_pair(config)
    _load_state(path, "ovpm", ovpm, data["ovpm"]["state_dict"])
    return config, ovpm.eval(), data["ovpm"]["trained"]


def load(path: str | Path, device: str | torch.device | None = None, sha256: str | None = None) -> DemPair:
    """Load a verified, matched OVPM/DVPM pair; refuse a damaged, half-trained or mismatched one.

    ``path``: a file, a run folder or a URL (see ``resolve``); ``sha256`` pins the file's bytes."""
    path = resolve(path, sha256)
    data = read(path)
    config = _config(path, data)
    if data["dvpm"] is None:
        raise CheckpointError(
            f"{path} holds an OVPM without its DVPM (training stopped after stage 1?): finish with "
            f"`python -m stream train --data DATASET_DIR --out RUN_DIR --stage dvpm` on the run folder that holds it "
            "(docs/dem.md)"
        )
    actual = data["ovpm"]["fingerprint"]  # verified against the weights by read()
    wanted = data["dvpm"]["ovpm_fingerprint"]
    if wanted != actual:
        raise CheckpointError(
            f"{path}: the DVPM was trained on OVPM {wanted[:12]} but the OVPM here is {actual[:12]}; "
            "a DVPM only works with the OVPM whose features it learnt (paper section 3): retrain the DVPM "
            f"on this OVPM with `python -m stream train --data DATASET_DIR --out RUN_DIR --stage dvpm`, "
            "RUN_DIR being the run folder whose ovpm.pt is this OVPM"
        )
    ovpm, dvpm = build_pair(config)
    _load_state(path, "ovpm", ovpm, data["ovpm"]["state_dict"])
    _load_state(path, "dvpm", dvpm, data["dvpm"]["state_dict"])
    if device is not None:
        ovpm.to(device)
        dvpm.to(device)
    ovpm.eval()
    dvpm.eval()
    record = {"ovpm": data["ovpm"]["trained"], "dvpm": data["dvpm"]["trained"]}
    info = CheckpointInfo(str(path.resolve()), data["sha256"], actual, record["ovpm"], record["dvpm"])
    return DemPair(config, ovpm, dvpm, actual, record, info, weights_spec(path, config, sha256))


def _config(path: Path, data: dict[str, Any]) -> DemConfig:
    try:
        return DemConfig.from_dict(data["config"])
    except (TypeError, ValueError) as exc:
        raise CheckpointError(
            f"{path}: the {PART_NAMES['config']} is not a valid DEM configuration ({exc}): {RETRAIN_HINT}"
        ) from exc


def _load_state(path: Path, part: str, model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise CheckpointError(
            f"{path}: the {PART_NAMES[part]} does not fit its configuration ({exc}): {RETRAIN_HINT}"
        ) from exc


def _cpu(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").clone() for k, v in state.items()}
