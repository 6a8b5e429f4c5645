"""The ``dem`` AU estimator: OVPM once per keyframe, DVPM once per keyframe over its m helpers.

Cost per keyframe (paper Figure 6 grows linearly in m; caching keeps the slope small):

* ``encode``: one OVPM pass on both halves (batch of 2). Y (expected value of the 6-class softmax, a
  continuous intensity) and the pooled features F^(k) are kept in the ``KeyframeCode``, so a keyframe
  that later serves as a helper is never run through the OVPM again.
* ``difference``: ΔF^(k) = F_i^(k) - F_j^(k) from cached tensors, then one DVPM pass batched over
  m helpers x 2 sides; ΔY is the expected value of the 11-class softmax.
* ``estimate`` (base class): Ŷ_i = mean_j (Y_j + ΔY_ij), clipped to [0, 5] (eq. 3); m = 0 is the OVPM alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from stream.au.base import AUEstimator, KeyframeCode, register_estimator
from stream.au.dem import checkpoint as ckpt
from stream.au.dem.models import DVPM, OVPM, expected_difference, expected_intensity, to_input
from stream.au.dem.provenance import constant_output_warning, describe
from stream.device import torch_device
from stream.errors import CheckpointError, ConfigError
from stream.types import HalfFaces, Keyframe
from stream.weights import is_url


@dataclass(frozen=True)
class DemPayload:
    """Cached OVPM features of one keyframe: one (2, C_k, H_k, W_k) tensor per stage, rows left, right."""

    features: tuple[torch.Tensor, ...]


def default_device(device: str | None) -> torch.device:
    return torch_device(device)


def resize_halves(halves: HalfFaces, size: tuple[int, int]) -> np.ndarray:
    """(2, H, W, 3) uint8, rows patient's left then right, at the model input size."""
    h, w = size
    out = []
    for half in (halves.left, halves.right):
        if half.shape[:2] != (h, w):
            # INTER_AREA: downsampling without aliasing; the training cache uses the same call.
            half = cv2.resize(half, (w, h), interpolation=cv2.INTER_AREA)
        out.append(half)
    return np.stack(out)


class DemEstimator(AUEstimator):
    name = "dem"
    is_proxy = False

    def __init__(
        self,
        ovpm: OVPM,
        dvpm: DVPM,
        device: str | torch.device | None = None,
        cache_dtype: torch.dtype = torch.float16,
        source: ckpt.CheckpointInfo | None = None,
    ) -> None:
        self.device = default_device(str(device) if device is not None else None)
        self.ovpm = ovpm.to(self.device).eval()
        self.dvpm = dvpm.to(self.device).eval()
        self.config = ovpm.config
        self.cache_dtype = cache_dtype
        self.source = source  # the verified checkpoint it came from; None when built from models in memory

    def model_info(self) -> dict[str, Any]:
        """Which model this is, for reports and dashboards (JSON-ready): estimator, checkpoint path, content
        fingerprint, preset, training set name and size, held-out figures when the checkpoint carries them,
        and a one-line ``summary``."""
        if self.source is None:
            sha = ckpt.model_sha256(self.config, self.ovpm, self.dvpm)
            return describe(self.config, sha256=sha, ovpm_fingerprint=ckpt.fingerprint(self.ovpm, self.config))
        s = self.source
        return describe(
            self.config,
            sha256=s.sha256,
            ovpm_fingerprint=s.ovpm_fingerprint,
            path=s.path,
            ovpm_record=s.ovpm_record,
            dvpm_record=s.dvpm_record,
        )

    @staticmethod
    def constant_output_warning(values: np.ndarray) -> str | None:
        """A warning when this clip's AU series (T, 2, 12) barely move (see ``provenance``), else None."""
        return constant_output_warning(values)

    @torch.inference_mode()
    def encode_halves(self, halves: np.ndarray, frame_index: int = 0, time_s: float = 0.0) -> KeyframeCode:
        """Own value and feature cache of one keyframe from (2, H, W, 3) uint8 halves at input size."""
        x = to_input(torch.from_numpy(np.ascontiguousarray(halves)).to(self.device))
        logits, feats = self.ovpm(x)
        cached = tuple(f.to(self.cache_dtype).contiguous() for f in self.ovpm.cached_features(feats))
        own = expected_intensity(logits).cpu().numpy().astype(np.float64)
        nbytes = sum(f.numel() * f.element_size() for f in cached) + own.nbytes
        return KeyframeCode(frame_index, time_s, own, DemPayload(cached), nbytes)

    def encode(self, keyframe: Keyframe) -> KeyframeCode:
        halves = resize_halves(keyframe.halves, self.config.input_size)
        return self.encode_halves(halves, keyframe.frame_index, keyframe.time_s)

    @torch.inference_mode()
    def difference(self, current: KeyframeCode, helpers: Sequence[KeyframeCode]) -> np.ndarray:
        m = len(helpers)
        if m == 0:
            return np.zeros((0,) + current.own.shape)
        deltas = []
        for k, fi in enumerate(current.payload.features):
            fj = torch.stack([h.payload.features[k] for h in helpers])  # (m, 2, C, H, W)
            d = fi.unsqueeze(0).float() - fj.float()
            deltas.append(d.flatten(0, 1))  # (m*2, C, H, W): helper-major, then left/right
        dy = expected_difference(self.dvpm(deltas))
        return dy.view(m, 2, -1).cpu().numpy().astype(np.float64)


def _parse_dtype(name: str | None) -> torch.dtype:
    if name in (None, "float16", "fp16", "half"):
        return torch.float16
    if name in ("float32", "fp32", "float"):
        return torch.float32
    raise ConfigError(f"helper cache dtype must be float16 or float32, got {name!r}")


@register_estimator("dem")
def build_dem(
    checkpoint: str | None = None,
    device: str | None = None,
    cache_dtype: str | None = None,
    checkpoint_sha256: str | None = None,
) -> DemEstimator:
    """The DEM estimator from a trained checkpoint (file, run folder or URL); there is no untrained fallback."""
    if not checkpoint:
        raise CheckpointError(
            f"the dem estimator needs a trained OVPM/DVPM checkpoint (--checkpoint PATH): {ckpt.TRAIN_HINT}"
        )
    if not is_url(checkpoint) and not Path(checkpoint).exists():
        raise CheckpointError(f"DEM checkpoint {checkpoint} does not exist: {ckpt.TRAIN_HINT}")
    dev = default_device(device)
    pair = ckpt.load(checkpoint, device=dev, sha256=checkpoint_sha256)
    return DemEstimator(pair.ovpm, pair.dvpm, dev, _parse_dtype(cache_dtype), source=pair.info)
