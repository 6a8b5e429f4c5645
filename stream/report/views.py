"""What report.html shows, as plain data for its templates: chart geometry, table rows, words.

Pure: a :class:`~stream.report.model.Report` and the AU series in, small frozen dataclasses out;
the scales and colours come from :mod:`stream.report.charts` and the palette. html.py hands these
to the Jinja2 templates, which only lay them out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from stream.aus import AU_NAMES, MAX_INTENSITY, REGIONS
from stream.report import charts
from stream.report.model import Report
from stream.report.palette import Palette
from stream.types import AUSeries

# Paper, Table 1.
AU_ACTIONS: dict[str, str] = {
    "AU1": "inner brow raiser",
    "AU2": "outer brow raiser",
    "AU4": "brow lowerer",
    "AU5": "upper lid raiser",
    "AU6": "cheek raiser",
    "AU9": "nose wrinkler",
    "AU12": "lip corner puller",
    "AU15": "lip corner depressor",
    "AU17": "chin raiser",
    "AU20": "lip stretcher",
    "AU25": "lips part",
    "AU26": "jaw drop",
}
# The two difference matrices (paper eq. 8-9): key -> (opposite side, same side, conditioning side).
DIFFERENCE_MATRICES: dict[str, tuple[str, str, str]] = {
    "right-left|left": ("right", "left", "left"),
    "left-right|right": ("left", "right", "right"),
}
MASKED_OPACITY = "0.3"
DASH = "—"


# --------------------------------------------------------------------------------------------
# numbers and words


def fmt(value: Any, signed: bool = False, digits: int = 2) -> str:
    """A number with ``digits`` decimals (a sign when ``signed``); "—" when undefined."""
    number = charts.finite(value)
    if number is None:
        return DASH
    return f"{number:+.{digits}f}" if signed else f"{number:.{digits}f}"


def count(value: Any, of: Any = None) -> str:
    """A whole count, with its share of ``of`` in % when ``of`` is a positive number."""
    n = charts.finite(value)
    if n is None:
        return DASH
    total = charts.finite(of)
    return f"{int(n)} ({100.0 * n / total:.1f}%)" if total else f"{int(n)}"


def weaker_words(weaker_side: str | None, delta: float | None) -> str:
    """The paper's verdict on a region in words."""
    if weaker_side in ("left", "right"):
        return f"{weaker_side} side weaker"
    return "not measured (no active AU)" if charts.finite(delta) is None else "no obvious difference"


def synkinesis_sentence(report: Report) -> str:
    stats = report.statistics
    threshold = fmt(stats.cooccurrence_threshold)
    if stats.synkinesis_pairs:
        n = len(stats.synkinesis_pairs)
        return (
            f"Synkinesis detected: {n} pair{'s' if n != 1 else ''} of action units with |difference| above {threshold}."
        )
    return f"No synkinesis detected: no pair that is independent in normal faces has |difference| above {threshold}."


# --------------------------------------------------------------------------------------------
# chart views: geometry for the templates


@dataclass(frozen=True)
class Timeline:
    width: int
    height: int
    x0: float
    x1: float
    ticks: list[tuple[float, str]]
    marks: list[float]


def timeline(times: np.ndarray, duration: float) -> Timeline:
    width, left, right = 720, 10, 14
    x = charts.Linear(0.0, duration, left, width - right)
    finite_times = [float(t) for t in times if np.isfinite(t)]
    return Timeline(
        width,
        46,
        left,
        width - right,
        [(x(t), charts.seconds(t)) for t in charts.nice_ticks(duration)],
        [x(t) for t in finite_times],
    )


@dataclass(frozen=True)
class Curve:
    au: str
    caption: str
    width: int
    height: int
    x0: float
    x1: float
    grid: list[tuple[int, float]]  # (level, y)
    threshold_y: float | None
    sides: list[tuple[str, str, list[tuple[float, float]]]]  # (side, colour, points)
    end_label: str
    dots: bool  # few keyframes: each one drawn, a lone point has no line


def curve(series: AUSeries, a: int, threshold: float | None, duration: float, palette: Palette) -> Curve:
    width, height, left, right, top, bottom = 230, 120, 22, 8, 6, 18
    x = charts.Linear(0.0, duration, left, width - right)
    y = charts.Linear(0.0, MAX_INTENSITY, height - bottom, top)
    sides = [
        (side, palette.side(side), charts.curve_points(series.time_s, values[:, a], x, y))
        for side, values in (("left", series.left), ("right", series.right))
    ]
    au = AU_NAMES[a]
    return Curve(
        au,
        f"{au} {AU_ACTIONS.get(au, '')}".strip(),
        width,
        height,
        left,
        width - right,
        [(level, y(level)) for level in range(int(MAX_INTENSITY) + 1)],
        None if threshold is None else y(threshold),
        sides,
        charts.seconds(duration),
        max(len(p) for _, _, p in sides) <= 60,
    )


@dataclass(frozen=True)
class Bar:
    region: str
    y: float
    x: float | None  # None: ΔAM undefined, no bar
    width: float
    colour: str
    delta: float | None
    verdict: str


@dataclass(frozen=True)
class RegionBars:
    width: int
    height: int
    row_h: int
    top: int
    plot_l: float
    plot_r: float
    centre: float
    band: tuple[float, float] | None  # x of -threshold and +threshold
    threshold: float | None
    bars: list[Bar]


def region_bars(report: Report, palette: Palette) -> RegionBars:
    stats = report.statistics
    width, label_w, verdict_w, row_h, top = 780, 90, 210, 30, 8
    threshold = charts.finite(stats.asymmetry_threshold)
    deltas = [charts.finite(r.delta_am) for r in stats.regions.values()]
    extent = max([abs(d) for d in deltas if d is not None] + [threshold or 0.0, 1.0]) * 1.1
    x = charts.Linear(-extent, extent, label_w, width - verdict_w)
    centre = x(0.0)
    bars = []
    for r, ((name, region), delta) in enumerate(zip(stats.regions.items(), deltas)):
        end = None if delta is None else x(delta)
        bars.append(
            Bar(
                name,
                top + r * row_h,
                None if end is None else min(end, centre),
                0.0 if end is None else abs(end - centre),
                palette.left if (delta or 0) > 0 else palette.right,
                delta,
                f"{weaker_words(region.weaker_side, delta)} ({fmt(delta, signed=True)})",
            )
        )
    band = (x(-threshold), x(threshold)) if threshold else None
    return RegionBars(
        width, top + row_h * len(bars) + 36, row_h, top, label_w, width - verdict_w, centre, band, threshold, bars
    )


@dataclass(frozen=True)
class Heatmap:
    key: str
    uid: int
    other: str
    same: str
    given: str
    aus: tuple[str, ...]
    cell: int
    left: int
    top: int
    width: int
    height: int
    cells: list[charts.Cell]
    marked: list[charts.Cell]  # the synkinesis pairs of this matrix


def heatmap(report: Report, key: str, uid: int, palette: Palette) -> Heatmap:
    cell, left, top = 26, 46, 34
    aus = report.aus
    matrix = report.statistics.cooccurrence_difference.get(key, np.full((len(aus), len(aus)), np.nan))
    mask = report.statistics.mask if report.mask_recorded else None
    cells = charts.heatmap_cells(matrix, mask, cell, left, top)
    pairs = {(aus.index(p.row), aus.index(p.col)) for p in report.statistics.synkinesis_pairs if p.matrix == key}
    other, same, given = DIFFERENCE_MATRICES[key]
    n = len(aus)
    return Heatmap(
        key,
        uid,
        other,
        same,
        given,
        aus,
        cell,
        left,
        top,
        left + n * cell + 6,
        top + n * cell + 6,
        cells,
        [c for c in cells if (c.row, c.col) in pairs],
    )


@dataclass(frozen=True)
class PaperPair:
    label: str
    sentence: str


def paper_pairs(report: Report) -> list[PaperPair]:
    out = []
    for pair in report.statistics.synkinesis_pairs:
        label = f"{pair.row} | {pair.col} in CM {pair.matrix}, {fmt(pair.value, signed=True)}"
        if pair.matrix in DIFFERENCE_MATRICES:
            other, same, given = DIFFERENCE_MATRICES[pair.matrix]
            how = "less often" if charts.finite(pair.value) is not None and pair.value < 0 else "more often"
            sentence = f"when {given} {pair.col} is active, {other} {pair.row} is active {how} than {same} {pair.row}"
        else:
            sentence = "unknown matrix"
        out.append(PaperPair(label, sentence))
    return out


@dataclass(frozen=True)
class AURow:
    au: str
    action: str
    region: str
    left: float | None
    right: float | None
    delta: float | None


def au_rows(report: Report) -> list[AURow]:
    stats = report.statistics
    region_of = {au: region for region, members in REGIONS.items() for au in members}
    return [
        AURow(
            au,
            AU_ACTIONS.get(au, ""),
            region_of.get(au, DASH),
            charts.finite(stats.active_mean_left[a]),
            charts.finite(stats.active_mean_right[a]),
            charts.finite(stats.delta_am[a]),
        )
        for a, au in enumerate(report.aus)
    ]
