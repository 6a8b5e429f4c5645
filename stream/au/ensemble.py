"""Difference Ensemble Method arithmetic (paper eq. 3), pure numpy."""

from __future__ import annotations

import numpy as np

from stream.aus import MAX_INTENSITY


def dem_combine(own_current: np.ndarray, helper_own: np.ndarray | None, deltas: np.ndarray) -> np.ndarray:
    """Ŷ_i = mean_j (Y_j + ΔY_ij), clipped to [0, 5].

    ``own_current``: (..., A) own-value estimate of frame i, used alone when there are no helpers (m = 0).
    ``helper_own``: (m, ..., A) own values Y_j of the helpers; ``deltas``: (m, ..., A) ΔY_ij = Y_i - Y_j.
    Algorithm 1 line 6 of the paper misprints the sum as Y_i + ΔY; eq. 3 (Y_j + ΔY_ij) is what we use.
    """
    if helper_own is None or len(helper_own) == 0:
        return np.clip(np.asarray(own_current, dtype=float), 0.0, MAX_INTENSITY)
    helper_own = np.asarray(helper_own, dtype=float)
    deltas = np.asarray(deltas, dtype=float)
    if helper_own.shape != deltas.shape:
        raise ValueError(f"helper values {helper_own.shape} and differences {deltas.shape} must have the same shape")
    return np.clip((helper_own + deltas).mean(axis=0), 0.0, MAX_INTENSITY)
