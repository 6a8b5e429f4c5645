"""DEM checkpoints: an OVPM/DVPM matched pair, weights as data apart from the architecture code.

One file (``torch.save`` of a plain dict, loadable with ``weights_only=True``)::

    {"format": "stream-dem/1",
     "config": DemConfig as a dict,
     "ovpm": {"state_dict": ..., "fingerprint": sha256 hex, "trained": {...training record...}},
     "dvpm": {"state_dict": ..., "ovpm_fingerprint": sha256 hex, "trained": {...}} or None}

The OVPM fingerprint is a sha256 over the configuration and every tensor of its state dict. The DVPM
records the fingerprint of the OVPM whose features it was trained on (paper: retrain the DVPM
whenever the OVPM changes), and loading refuses a pair whose fingerprints differ.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from stream.au.dem.models import DVPM, OVPM, DemConfig, build_pair
from stream.errors import CheckpointError

FORMAT = "stream-dem/1"
TRAIN_HINT = (
    "train one with `python -m stream train --data DATASET_DIR --out RUN_DIR` "
    "(see docs/dem.md), then pass `--estimator dem --checkpoint RUN_DIR/dem.pt`"
)


def fingerprint(model: torch.nn.Module, config: DemConfig) -> str:
    """sha256 of the architecture and every parameter/buffer value (order-independent of devices)."""
    h = hashlib.sha256(config.to_json().encode())
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        t = tensor.detach().to("cpu").contiguous()
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


@dataclass
class DemPair:
    config: DemConfig
    ovpm: OVPM
    dvpm: DVPM
    ovpm_fingerprint: str
    record: dict[str, Any]


def pack(config: DemConfig, ovpm: OVPM, dvpm: DVPM | None, *, ovpm_record: dict | None = None,
         dvpm_record: dict | None = None, ovpm_fingerprint: str | None = None) -> dict[str, Any]:
    """The checkpoint dict. ``ovpm_fingerprint``: the OVPM the DVPM was trained on (default: this one)."""
    fp = fingerprint(ovpm, config)
    return {
        "format": FORMAT,
        "config": config.to_dict(),
        "ovpm": {"state_dict": _cpu(ovpm.state_dict()), "fingerprint": fp, "trained": ovpm_record or {}},
        "dvpm": None if dvpm is None else {
            "state_dict": _cpu(dvpm.state_dict()),
            "ovpm_fingerprint": ovpm_fingerprint or fp,
            "trained": dvpm_record or {},
        },
    }


def save(path: str | Path, config: DemConfig, ovpm: OVPM, dvpm: DVPM | None, **kwargs: Any) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(pack(config, ovpm, dvpm, **kwargs), tmp)
    tmp.replace(path)  # never leave a half-written checkpoint under the real name
    return path


def read(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if path.is_dir():
        path = path / "dem.pt"
    if not path.is_file():
        raise CheckpointError(f"DEM checkpoint {path} does not exist: {TRAIN_HINT}")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt or foreign file
        raise CheckpointError(f"{path} is not a readable DEM checkpoint ({exc}): {TRAIN_HINT}") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a DEM checkpoint (expected format {FORMAT!r}): {TRAIN_HINT}")
    return data


def load(path: str | Path, device: str | torch.device | None = None) -> DemPair:
    """Load a matched OVPM/DVPM pair; refuse a half-trained or mismatched one."""
    data = read(path)
    config = DemConfig.from_dict(data["config"])
    ovpm, dvpm = build_pair(config)
    ovpm.load_state_dict(data["ovpm"]["state_dict"])
    actual = fingerprint(ovpm, config)
    if actual != data["ovpm"]["fingerprint"]:
        raise CheckpointError(f"{path}: OVPM weights do not match their recorded fingerprint (file corrupt or edited)")
    if data.get("dvpm") is None:
        raise CheckpointError(
            f"{path} holds an OVPM without its DVPM (training stopped after stage 1?): "
            "finish with `python -m stream train --stage dvpm ...` (docs/dem.md)"
        )
    wanted = data["dvpm"]["ovpm_fingerprint"]
    if wanted != actual:
        raise CheckpointError(
            f"{path}: the DVPM was trained on OVPM {wanted[:12]} but the OVPM here is {actual[:12]}; "
            "a DVPM only works with the OVPM whose features it learnt (paper section 3): retrain the DVPM "
            "on this OVPM with `python -m stream train --stage dvpm --resume RUN_DIR`"
        )
    dvpm.load_state_dict(data["dvpm"]["state_dict"])
    if device is not None:
        ovpm.to(device)
        dvpm.to(device)
    ovpm.eval()
    dvpm.eval()
    record = {"ovpm": data["ovpm"].get("trained", {}), "dvpm": data["dvpm"].get("trained", {})}
    return DemPair(config, ovpm, dvpm, actual, record)


def _cpu(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").clone() for k, v in state.items()}
