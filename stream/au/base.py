"""The AU-estimator interface and its registry.

An estimator works in the DEM form of the paper (section 3, eq. 3): each keyframe is *encoded* once
when it enters the rolling buffer (its own-value estimate Y_j plus whatever the estimator caches, e.g.
OVPM features), and the value of the current keyframe i is the mean over m helpers j of
``Y_j + ΔY_ij``, where ``difference`` supplies ΔY_ij. With m = 0 the own value is used alone.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from stream.au.ensemble import dem_combine
from stream.registry import Registry
from stream.types import AUEstimate, Keyframe


@dataclass(frozen=True)
class KeyframeCode:
    """What an estimator keeps of one keyframe, computed once (paper: Y_j and F_j cached with the helper).

    ``own``: (2, 12) own-value estimate, row 0 the patient's left, row 1 the right, unclipped.
    ``payload``: estimator-specific cache (features, small images); ``nbytes`` counts it for the buffer bound.
    """

    frame_index: int
    time_s: float
    own: np.ndarray
    payload: Any
    nbytes: int


class AUEstimator(ABC):
    """Estimates 12 AU intensities for each half-face of a keyframe."""

    name: str = "?"
    #: True when the numbers are a training-free proxy rather than a model trained on AU labels.
    is_proxy: bool = False
    #: A keyframe whose head turned more than this (degrees) from the reference's pose is not measured,
    #: where the estimator measures the turn (the flow estimator with its face mesh): it is encoded with
    #: its turn only, which is all the pipeline needs to leave it out. None: every keyframe is measured.
    #: The pipeline sets it from ``AnalysisConfig.max_turn_deg``.
    turn_limit_deg: float | None = None

    @abstractmethod
    def encode(self, keyframe: Keyframe) -> KeyframeCode:
        """Own-value estimate and cache for one keyframe (one OVPM pass for DEM)."""

    @abstractmethod
    def difference(self, current: KeyframeCode, helpers: Sequence[KeyframeCode]) -> np.ndarray:
        """ΔY_ij = Y_i - Y_j for each helper j: array (m, 2, 12). Batched over helpers and sides."""

    def estimate(self, current: KeyframeCode, helpers: Sequence[KeyframeCode]) -> AUEstimate:
        """DEM value of the current keyframe from its helpers (eq. 3), clipped to [0, 5]."""
        helpers = list(helpers)
        deltas = self.difference(current, helpers) if helpers else np.zeros((0, 2, current.own.shape[1]))
        values = dem_combine(current.own, np.stack([h.own for h in helpers]) if helpers else None, deltas)
        return AUEstimate(
            frame_index=current.frame_index,
            time_s=current.time_s,
            left=values[0],
            right=values[1],
            n_helpers=len(helpers),
        )

    def reset(self) -> None:  # noqa: B027 - an optional hook: an estimator without session state keeps this
        """Forget per-session state (a new patient or video starts)."""

    def model_info(self) -> dict[str, Any]:
        """Which model spoke, for reports and dashboards (JSON-ready); trained estimators add their
        checkpoint, fingerprint, preset, training set and held-out figures."""
        summary = f"{self.name}: training-free proxy (no trained model)" if self.is_proxy else f"{self.name}"
        return {"estimator": self.name, "proxy": self.is_proxy, "summary": summary}


ESTIMATORS: Registry[AUEstimator] = Registry("AU estimator", modules={"flow": "stream.au.flow", "dem": "stream.au.dem"})
register_estimator = ESTIMATORS.register
available_estimators = ESTIMATORS.names


def build_estimator(name: str, **options: Any) -> AUEstimator:
    """Build an AU estimator by name (``flow`` default, ``dem`` with a trained checkpoint); an option its
    builder lacks is a ``ConfigError``."""
    return ESTIMATORS.build(name, **options)
