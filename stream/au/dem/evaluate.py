"""Evaluation of a DEM pair on labelled keyframes: Table 5 metrics and the paper's Figure 6 (accuracy and
time per keyframe as a function of m).

It runs the product's estimator (``encode`` once per keyframe, ``estimate`` with m helpers), video by
video so that only one video's helper cache is held at a time.

Helper policy (evaluation): for keyframe i of video v, m distinct keyframes drawn uniformly at random
(seeded) from the *other* evaluated keyframes of v; fewer when v has fewer. The live buffer draws from
earlier keyframes only; the paper draws from the whole video, which is what is done here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from html import escape
from typing import Any

import numpy as np

from stream.au.base import KeyframeCode
from stream.au.dem import metrics
from stream.au.dem.data import HalfFaceSet
from stream.au.dem.estimator import DemEstimator
from stream.aus import AU_NAMES
from stream.progress import Progress

FIGURE6_MS = (0, 1, 2, 4, 8)


def _draw(pool: np.ndarray, m: int, rng: np.random.Generator) -> np.ndarray:
    if m == 0 or len(pool) == 0:
        return pool[:0]
    return np.sort(rng.choice(pool, size=min(m, len(pool)), replace=False))


def predict_video(
    est: DemEstimator,
    codes: Sequence[KeyframeCode],
    m: int,
    rng: np.random.Generator,
    timings: list[float] | None = None,
) -> np.ndarray:
    """DEM values (n, 2, 12) of one video's keyframes, helpers from the same video."""
    out = np.empty((len(codes), 2, codes[0].own.shape[-1]))
    everyone = np.arange(len(codes))
    for i, code in enumerate(codes):
        helpers = [codes[j] for j in _draw(everyone[everyone != i], m, rng)]
        t0 = time.perf_counter()
        e = est.estimate(code, helpers)
        if timings is not None:
            timings.append(time.perf_counter() - t0)
        out[i, 0], out[i, 1] = e.left, e.right
    return out


def evaluate_codes(
    est: DemEstimator, codes: Sequence[KeyframeCode], data: HalfFaceSet, ms: Sequence[int] = FIGURE6_MS, seed: int = 0
) -> dict[int, dict[str, Any]]:
    """Metrics per m for keyframes already encoded (``codes[i]`` belongs to ``data`` row i)."""
    preds = {m: np.empty(data.labels.shape) for m in ms}
    timings: dict[int, list[float]] = {m: [] for m in ms}
    for v in np.unique(data.video):
        rows = np.flatnonzero(data.video == v)
        video_codes = [codes[int(i)] for i in rows]
        for m in ms:
            rng = np.random.default_rng([seed, m, len(rows)])
            preds[m][rows] = predict_video(est, video_codes, m, rng, timings[m])
    return {m: _result(preds[m], data, timings[m]) for m in ms}


def _result(pred: np.ndarray, data: HalfFaceSet, timings: list[float]) -> dict[str, Any]:
    flat_pred = pred.reshape(-1, pred.shape[-1])
    flat_label = data.labels.reshape(-1, data.labels.shape[-1])
    return {
        "metrics": metrics.summary(flat_pred, flat_label),
        "dem_ms": 1000 * float(np.mean(timings)) if timings else 0.0,
    }


def evaluate(
    est: DemEstimator, data: HalfFaceSet, ms: Sequence[int] = FIGURE6_MS, seed: int = 0, progress: bool = False
) -> dict[str, Any]:
    """Encode video by video, evaluate every m, and time a keyframe (OVPM encode + DEM with m helpers)."""

    preds = {m: np.empty(data.labels.shape) for m in ms}
    dem_s: dict[int, list[float]] = {m: [] for m in ms}
    encode_s: list[float] = []
    videos = np.unique(data.video)
    bar = Progress("evaluate", len(videos), progress)
    for vi, v in enumerate(videos):
        rows = np.flatnonzero(data.video == v)
        codes = []
        for i in rows:
            t0 = time.perf_counter()
            codes.append(est.encode_halves(data.images[i], int(i)))
            encode_s.append(time.perf_counter() - t0)
        for m in ms:
            rng = np.random.default_rng([seed, m, vi])
            preds[m][rows] = predict_video(est, codes, m, rng, dem_s[m])
        bar.update(vi + 1)
    bar.close()
    encode_ms = 1000 * float(np.mean(encode_s))
    by_m = {}
    for m in ms:
        r = _result(preds[m], data, dem_s[m])
        r["ms_per_keyframe"] = encode_ms + r["dem_ms"]
        by_m[m] = r
    return {
        "keyframes": len(data),
        "videos": len(videos),
        "encode_ms": encode_ms,
        "by_m": by_m,
        "device": str(est.device),
        "seed": seed,
    }


# --------------------------------------------------------------------------------------------
# Reports


def format_tables(result: dict[str, Any]) -> str:
    """Markdown: Figure 6 as a table (m -> accuracy, MAE, ICC, PCC, ms/keyframe) and per-AU metrics at each m."""
    by_m = result["by_m"]
    lines = [
        f"{result['keyframes']} keyframes from {result['videos']} videos; device {result['device']}.",
        "",
        "| m | accuracy | MAE | ICC(3,1) | PCC | ms per keyframe |",
        "|---|---|---|---|---|---|",
    ]
    for m, r in sorted(by_m.items()):
        s = r["metrics"]
        lines.append(
            f"| {m} | {s['accuracy']['mean']:.4f} | {s['mae']['mean']:.3f} | {s['icc']['mean']:.3f} "
            f"| {s['pcc']['mean']:.3f} | {r.get('ms_per_keyframe', r['dem_ms']):.1f} |"
        )
    for m, r in sorted(by_m.items()):
        s = r["metrics"]
        lines += ["", f"Per AU, m = {m}:", "", "| AU | accuracy | MAE | ICC(3,1) | PCC |", "|---|---|---|---|---|"]
        for au in (*AU_NAMES, "mean"):
            lines.append(
                f"| {au} | {s['accuracy'][au]:.4f} | {s['mae'][au]:.3f} | {s['icc'][au]:.3f} | {s['pcc'][au]:.3f} |"
            )
    return "\n".join(lines) + "\n"


def figure6_svg(result: dict[str, Any], width: int = 560, height: int = 320) -> str:
    """Accuracy (left axis) and ms per keyframe (right axis) against m, as a standalone SVG."""
    by_m = sorted(result["by_m"].items())
    ms = [m for m, _ in by_m]
    acc = [r["metrics"]["accuracy"]["mean"] for _, r in by_m]
    cost = [r.get("ms_per_keyframe", r["dem_ms"]) for _, r in by_m]
    left, right, top, bottom = 60, 60, 30, 45
    pw, ph = width - left - right, height - top - bottom

    def sx(m: float) -> float:
        return left + pw * (m - ms[0]) / max(ms[-1] - ms[0], 1)

    def scale(values: list[float]) -> tuple[float, float, Callable[[float], float]]:
        lo, hi = min(values), max(values)
        pad = (hi - lo) * 0.1 or max(abs(hi) * 0.05, 1e-3)
        lo, hi = lo - pad, hi + pad
        return lo, hi, (lambda v: top + ph * (1 - (v - lo) / (hi - lo)))

    a_lo, a_hi, sa = scale(acc)
    c_lo, c_hi, sc = scale(cost)
    title = escape("DEM: accuracy and time per keyframe vs m (paper Fig. 6)")
    mid_y = top + ph / 2
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        'font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{width / 2}" y="18" text-anchor="middle">{title}</text>',
        f'<line x1="{left}" y1="{top + ph}" x2="{left + pw}" y2="{top + ph}" stroke="black"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + ph}" stroke="#1f77b4"/>',
        f'<line x1="{left + pw}" y1="{top}" x2="{left + pw}" y2="{top + ph}" stroke="#d62728"/>',
        f'<text x="{left + pw / 2}" y="{height - 8}" text-anchor="middle">helpers m</text>',
        f'<text x="12" y="{mid_y}" fill="#1f77b4" transform="rotate(-90 12 {mid_y})" '
        'text-anchor="middle">accuracy</text>',
        f'<text x="{width - 10}" y="{mid_y}" fill="#d62728" transform="rotate(90 {width - 10} {mid_y})" '
        'text-anchor="middle">ms per keyframe</text>',
    ]
    for m in ms:
        parts.append(f'<text x="{sx(m):.1f}" y="{top + ph + 16}" text-anchor="middle">{m}</text>')
    for frac in (0.0, 0.5, 1.0):
        va, vc = a_lo + frac * (a_hi - a_lo), c_lo + frac * (c_hi - c_lo)
        parts.append(f'<text x="{left - 6}" y="{sa(va) + 4:.1f}" text-anchor="end" fill="#1f77b4">{va:.3f}</text>')
        parts.append(f'<text x="{left + pw + 6}" y="{sc(vc) + 4:.1f}" fill="#d62728">{vc:.1f}</text>')
    for values, sy, colour in ((acc, sa, "#1f77b4"), (cost, sc, "#d62728")):
        pts = " ".join(f"{sx(m):.1f},{sy(v):.1f}" for m, v in zip(ms, values))
        parts.append(f'<polyline points="{pts}" fill="none" stroke="{colour}" stroke-width="2"/>')
        parts += [f'<circle cx="{sx(m):.1f}" cy="{sy(v):.1f}" r="3" fill="{colour}"/>' for m, v in zip(ms, values)]
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
