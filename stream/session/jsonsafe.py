"""JSON-safe numbers for dashboards and the store: NaN/inf become null, floats are shortened.

One function for the two roundings the server needs: fixed decimals for intensities and times
(small messages), significant digits for p-values (a fixed number of decimals would round them to 0).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def clean(value: Any, *, decimals: int | None = 3, significant: int | None = None) -> Any:
    """``value`` with every float finite-or-None and rounded; arrays and numpy scalars as plain lists/numbers."""
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        if significant is not None:
            return float(f"{value:.{significant}g}")
        return round(value, decimals) if decimals is not None else value
    if isinstance(value, dict):
        return {k: clean(v, decimals=decimals, significant=significant) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v, decimals=decimals, significant=significant) for v in value]
    if isinstance(value, np.ndarray):
        return clean(value.tolist(), decimals=decimals, significant=significant)
    if isinstance(value, np.generic):
        return clean(value.item(), decimals=decimals, significant=significant)
    return value
