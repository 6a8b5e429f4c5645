"""JSON-safe numbers for dashboards and the store: NaN/inf become null, floats are shortened.

One function for the two roundings a session needs: fixed decimals for intensities and times
(small messages), significant digits for p-values (a fixed number of decimals would round them to 0).
``JSON`` names what comes out: plain values, lists and string-keyed objects, nothing else.
"""

from __future__ import annotations

import math
from typing import TypeAlias

import numpy as np

JSON: TypeAlias = None | bool | int | float | str | list["JSON"] | dict[str, "JSON"]
JSONObject = dict[str, JSON]


def finite_or_none(value: float | None) -> float | None:
    """JSON-safe number: NaN and infinities become None."""
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def finite_pair(values: tuple[float, float] | None) -> list[float | None] | None:
    """JSON-safe interval (``finite_or_none`` of each end)."""
    return None if values is None else [finite_or_none(values[0]), finite_or_none(values[1])]


def clean(value: object, *, decimals: int | None = 3, significant: int | None = None) -> JSON:
    """``value`` with every float finite-or-None and rounded; arrays and numpy scalars as plain lists/numbers."""
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        if significant is not None:
            return float(f"{value:.{significant}g}")
        return round(value, decimals) if decimals is not None else value
    if isinstance(value, dict):
        return {str(k): clean(v, decimals=decimals, significant=significant) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v, decimals=decimals, significant=significant) for v in value]
    if isinstance(value, np.ndarray):
        return clean(value.tolist(), decimals=decimals, significant=significant)
    if isinstance(value, np.generic):
        return clean(value.item(), decimals=decimals, significant=significant)
    if value is None or isinstance(value, (bool, int, str)):
        return value
    raise TypeError(f"cannot make {type(value).__name__} JSON-safe: expected numbers, strings, lists, dicts or arrays")


def clean_object(value: object, *, decimals: int | None = 3, significant: int | None = None) -> JSONObject:
    """``clean`` of a mapping, typed as the object it stays."""
    out = clean(value, decimals=decimals, significant=significant)
    if not isinstance(out, dict):
        raise TypeError(f"expected a mapping, got {type(value).__name__}")
    return out
