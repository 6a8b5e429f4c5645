"""The geometry of the report's charts: scales, ticks, curve points, heatmap cells, colours.

Pure functions of numbers; the templates turn what they return into SVG elements. A value that is
None or not finite is "undefined" and is never drawn as a number.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Linear:
    """Maps ``[d0, d1]`` onto ``[r0, r1]``, clamping values outside the domain to its ends."""

    d0: float
    d1: float
    r0: float
    r1: float

    def __call__(self, value: float) -> float:
        if self.d1 == self.d0:
            return self.r0
        t = (min(max(value, min(self.d0, self.d1)), max(self.d0, self.d1)) - self.d0) / (self.d1 - self.d0)
        return self.r0 + t * (self.r1 - self.r0)


@dataclass(frozen=True)
class Cell:
    """One heatmap cell: position, the value (None: no data) and whether the pair is tested."""

    row: int
    col: int
    x: float
    y: float
    value: float | None
    kept: bool


def finite(value: object) -> float | None:
    """A finite float, or None for None, NaN, infinities, booleans and anything not a number."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def nice_ticks(extent: float, target: int = 8) -> list[float]:
    """Round tick values 0, step, 2*step, ... up to ``extent``, with about ``target`` intervals."""
    if not extent > 0:
        return [0.0]
    raw = extent / target
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    count = int(math.floor(extent / step + 1e-9))
    return [k * step for k in range(count + 1)]


def curve_points(
    times: Sequence[float] | np.ndarray, values: Sequence[float] | np.ndarray, x: Linear, y: Linear
) -> list[tuple[float, float]]:
    """Chart coordinates of (time, value) in time order, leaving out rows where either is undefined."""
    t = np.asarray(times, dtype=float)
    v = np.asarray(values, dtype=float)
    order = np.argsort(t, kind="stable")
    return [(x(float(t[k])), y(float(v[k]))) for k in order if math.isfinite(t[k]) and math.isfinite(v[k])]


def svg_points(points: Sequence[tuple[float, float]]) -> str:
    """The ``points`` attribute of an SVG polyline."""
    return " ".join(f"{px:.1f},{py:.1f}" for px, py in points)


def duration_of(times: Sequence[float] | np.ndarray, recorded: float | None) -> float:
    """The time axis length: the recorded duration when positive, else the last finite time, else 1 s."""
    if recorded is not None and recorded > 0:
        return recorded
    t = np.asarray(times, dtype=float)
    t = t[np.isfinite(t)]
    latest = float(t.max()) if t.size else 0.0
    return latest if latest > 0 else 1.0


def heatmap_cells(matrix: np.ndarray, mask: np.ndarray | None, cell: float, left: float, top: float) -> list[Cell]:
    """The cells of a square matrix, row by row; NaN entries have ``value`` None."""
    n = len(matrix)
    out = []
    for i in range(n):
        for j in range(n):
            kept = True if mask is None else bool(mask[i][j])
            out.append(Cell(i, j, left + j * cell, top + i * cell, finite(matrix[i][j]), kept))
    return out


def hex_rgb(colour: str) -> tuple[int, int, int]:
    """``#rrggbb`` as integers."""
    text = colour.lstrip("#")
    if len(text) != 6:
        raise ValueError(f"a colour is '#rrggbb', got {colour!r}")
    return int(text[0:2], 16), int(text[2:4], 16), int(text[4:6], 16)


def diverging(value: float, negative: str, neutral: str, positive: str) -> str:
    """The colour of ``value`` in [-1, 1]: ``neutral`` at 0, linear in RGB to either end, clamped."""
    v = max(-1.0, min(1.0, value))
    mid, end = hex_rgb(neutral), hex_rgb(positive if v > 0 else negative)
    # halves round up, as JavaScript's Math.round does in static/js/heatmap.js (Python's round() goes to even)
    rgb = (math.floor(m + (e - m) * abs(v) + 0.5) for m, e in zip(mid, end))
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def text_on(value: float | None) -> str:
    """Black or white text, whichever reads on a diverging cell of ``value``."""
    return "#fff" if value is not None and abs(value) > 0.6 else "#000"


def seconds(t: float) -> str:
    """A time label: whole seconds from 10 s on, else one decimal unless whole."""
    return f"{t:.0f} s" if t >= 10 or t == int(t) else f"{t:.1f} s"
