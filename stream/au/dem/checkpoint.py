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

This module is the file format (writing, reading, verifying, loading a pair); the canonical hashes
live in ``hashing`` and the seal in ``seal``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stream import weights
from stream.au.dem.hashing import Hasher, content_hash, fingerprint, fingerprint_state, integrity, model_sha256
from stream.au.dem.models import DVPM, IMAGENET_MEAN, IMAGENET_STD, OVPM, DemConfig, build_pair
from stream.au.dem.seal import load_sealed, save_sealed, seal_state
from stream.errors import CheckpointError

# Re-exported: callers name them ``checkpoint.fingerprint``, ``checkpoint.save_sealed`` and so on.
__all__ = [
    "CheckpointInfo",
    "DemPair",
    "fingerprint",
    "load",
    "load_ovpm",
    "load_sealed",
    "model_sha256",
    "pack",
    "read",
    "resolve",
    "save",
    "save_sealed",
    "weights_spec",
]

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
    hasher = Hasher()
    cfg = config.as_dict()
    ovpm_state = _cpu(ovpm.state_dict())
    dvpm_state = None if dvpm is None else _cpu(dvpm.state_dict())
    fp = fingerprint_state(ovpm_state, cfg, hasher)
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
        "sha256": content_hash(cfg, ovpm_state, dvpm_state, hasher),
    }
    data["integrity"] = integrity(data, hasher)
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
    seal = seal_state(path)
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
    hasher = Hasher()
    recorded = data["integrity"]
    for part, actual in integrity(data, hasher).items():
        if recorded.get(part) != actual:
            raise CheckpointError(
                f"{path}: the {PART_NAMES[part]} does not match the sha256 recorded with it "
                f"(the file was damaged or edited after it was written): {RETRAIN_HINT}"
            )
    dvpm_state = None if data["dvpm"] is None else data["dvpm"]["state_dict"]
    if content_hash(data["config"], data["ovpm"]["state_dict"], dvpm_state, hasher) != data["sha256"]:
        raise CheckpointError(f"{path}: the {PART_NAMES['sha256']} does not match the weights: {RETRAIN_HINT}")
    if fingerprint_state(data["ovpm"]["state_dict"], data["config"], hasher) != data["ovpm"]["fingerprint"]:
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
