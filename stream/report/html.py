"""``report.html``: one self-contained page for a clinician (no network, no scripts; inline SVG).

Pure: takes the report dict (docs/formats.md, "report.json") and the AU series, returns a string.
Every piece of text that comes from the report goes through :func:`html.escape`; every number is
read through :func:`_number`, so a missing key, ``None`` or NaN renders as "—" instead of failing.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from stream.aus import AU_NAMES, MAX_INTENSITY, N_AUS, REGIONS
from stream.symptoms.wording import STATUS_WORDS, pair_words, region_words
from stream.types import AUSeries

# Okabe-Ito blue and orange: distinguishable with the common colour-vision deficiencies and in grey.
LEFT_COLOUR = "#0072B2"
RIGHT_COLOUR = "#E69F00"
# ColorBrewer BrBG end points (colour-blind safe diverging scale), white at 0.
NEGATIVE_COLOUR = (1, 133, 113)
POSITIVE_COLOUR = (166, 97, 26)
NEUTRAL_COLOUR = (247, 247, 247)
# Pairs masked as normal co-occurrence: faded colour over grey.
MASKED_GREY = "#9a9a9a"
MASKED_OPACITY = "0.3"

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

# The two difference matrices (paper eq. 8-9): key -> (side of AU_i compared, conditioning side of AU_j).
DIFFERENCE_MATRICES: dict[str, tuple[str, str, str]] = {
    # key: (opposite side, same side, conditioning side)
    "right-left|left": ("right", "left", "left"),
    "left-right|right": ("left", "right", "right"),
}

_DASH = "—"


def render_report_html(report: Mapping[str, Any], series: AUSeries) -> str:
    """The whole report page as one HTML string (UTF-8, self-contained, printable)."""
    aus = _au_names(report)
    config = report.get("config") if isinstance(report.get("config"), Mapping) else {}
    title = "Facial paralysis symptom report"
    video = _text(config.get("video"))
    if video:
        title += f": {video}"
    body = [
        _header(report, config),
        _findings(report, series, aus),
        _exercise_findings(report),
        _counts_section(report, series),
        _curves_section(report, series),
        _asymmetry_section(report, aus),
        _cooccurrence_section(report, aus),
        _synkinesis_section(report, aus),
        _how_to_read(report),
        _settings_section(config),
    ]
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_e(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )


# --------------------------------------------------------------------------------------------
# sections


def _header(report: Mapping[str, Any], config: Mapping[str, Any]) -> str:
    rows = [
        ("Video", _text(config.get("video")) or _DASH),
        ("Date", _report_date(report, config) or "not recorded"),
        ("AU estimator", _text(_mapping(report.get("model")).get("summary")) or _estimator_text(config)),
        ("Face detector", _text(config.get("detector")) or _DASH),
    ]
    meta = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in rows)
    out = f'<header>\n<h1>Facial paralysis symptom report</h1>\n<dl class="meta">{meta}</dl>\n'
    if report.get("estimator_is_proxy"):
        name = _text(config.get("estimator")) or "in use"
        out += (
            '<p class="warning" role="note"><strong>Proxy AU estimator.</strong> '
            f"The AU intensities come from the estimator {_e(name)!s}, a training-free proxy, not a model "
            "trained on AU intensity labels. The curves follow facial movement, but the numbers are not "
            "calibrated AU intensities: treat the asymmetry and synkinesis findings as indicative only.</p>\n"
        )
    warnings = report.get("warnings")
    if isinstance(warnings, list) and warnings:
        items = "".join(f"<li>{_e(_text(w))}</li>" for w in warnings)
        out += f'<div class="warning" role="note"><strong>Warnings from the analysis</strong><ul>{items}</ul></div>\n'
    out += (
        '<p class="sides">Left and right are always the <strong>patient\'s</strong> own sides, '
        "not the sides of the picture.</p>\n</header>"
    )
    return out


def _findings(report: Mapping[str, Any], series: AUSeries, aus: list[str]) -> str:
    evidence = _mapping(report.get("findings"))
    if evidence:
        return _evidence_findings(evidence, series)
    items = []
    if len(series) == 0:
        items.append(
            "<li><strong>No keyframes</strong>: no usable face frame was found, so nothing could be measured.</li>"
        )
    for region, info in _regions(report):
        delta = _number(info.get("delta_am"))
        verdict = _weaker_words(info.get("weaker_side"), delta)
        items.append(
            f"<li><strong>{_e(region.capitalize())}</strong>: {_e(verdict)} (ΔAM {_e(_fmt(delta, signed=True))})</li>"
        )
    items.append(f"<li><strong>Synkinesis</strong>: {_e(_synkinesis_sentence(report))}</li>")
    return f'<section id="findings">\n<h2>Findings</h2>\n<ul>{"".join(items)}</ul>\n</section>'


def _evidence_findings(findings: Mapping[str, Any], series: AUSeries) -> str:
    """Verdicts with their evidence: per region the interval, the keyframes and the moving keyframes."""
    rules = _text(findings.get("rules")) or "evidence"
    rows = []
    for name, info in _mapping(findings.get("regions")).items():
        info = _mapping(info)
        status = _text(info.get("status"))
        percent = _number(info.get("weaker_percent"))
        interval = info.get("weaker_percent_interval")
        span = _DASH
        if isinstance(interval, list) and len(interval) == 2 and None not in interval:
            span = f"{_number(interval[0]):.0f}–{_number(interval[1]):.0f} %"
        rows.append(
            f'<tr class="status-{_e(status)}"><th scope="row">{_e(str(name).capitalize())}</th>'
            f"<td><strong>{_e(STATUS_WORDS.get(status, status).format(side=info.get('weaker_side')))}</strong></td>"
            f"<td>{_e(_DASH if percent is None else f'{percent:.0f} %')}</td><td>{_e(span)}</td>"
            f"<td>{_e(_count(info.get('n_moving')))} of {_e(_count(info.get('n_keyframes')))}</td>"
            f"<td class=\"reason\">{_e(_text(info.get('reason')))}</td></tr>"
        )
    table = (
        '<table class="evidence"><thead><tr><th>Region</th><th>Verdict</th>'
        "<th>Weaker side's movement, % of the stronger</th><th>95 % interval</th>"
        "<th>Keyframes moving</th><th>Why</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
    )
    syn = _mapping(findings.get("synkinesis"))
    pairs = syn.get("pairs") if isinstance(syn.get("pairs"), list) else []
    if pairs:
        items = "".join(f"<li>{_e(pair_words(_mapping(p)))}</li>" for p in pairs)
        synk = f"<p><strong>Synkinesis</strong>: {len(pairs)} pair{'s' if len(pairs) != 1 else ''} found</p><ul>{items}</ul>"
    else:
        tested = _count(syn.get("n_pairs_tested"))
        synk = f"<p><strong>Synkinesis</strong>: none found ({_e(tested)} eye–mouth pairs had the support to be tested).</p>"
    how = (
        "<p class=\"note\">Rules: <strong>evidence</strong>. A side is named weaker only when the region moved "
        "in enough keyframes, the 95 % interval of its asymmetry (moving-block bootstrap over time) excludes "
        "no difference, and the difference is larger than healthy faces show (docs/validity.md). A synkinesis pair "
        "needs one side's movement to follow the trigger (a broad smile, a firm eye closure) in at least two "
        "episodes, and a test that stays significant after correction for every pair tested.</p>"
        if rules == "evidence" else
        "<p class=\"note\">Rules: <strong>paper</strong> (dead band on ΔAM, |co-occurrence difference| above the "
        "threshold), without intervals: the paper's method, reproduced; not validated on this estimator.</p>"
    )
    empty = ""
    if len(series) == 0:
        empty = "<p><strong>No keyframes</strong>: no usable face frame was found, so nothing could be measured.</p>"
    return f'<section id="findings">\n<h2>Findings</h2>\n{empty}{table}\n{synk}\n{how}\n</section>'


def _exercise_findings(report: Mapping[str, Any]) -> str:
    """Live sessions: the verdicts of each exercise (synkinesis is graded during each movement)."""
    exercises = report.get("exercises")
    if not isinstance(exercises, list) or not exercises:
        return ""
    region_names = list(REGIONS)
    rows = []
    for number, exercise in enumerate(exercises, 1):
        exercise = _mapping(exercise)
        findings = _mapping(exercise.get("findings"))
        regions = _mapping(findings.get("regions"))
        title = f"{_text(exercise.get('exercise')).replace('_', ' ')} #{number}"
        cells = []
        for name in region_names:
            info = _mapping(regions.get(name))
            status = _text(info.get("status"))
            cells.append(f'<td class="status-{_e(status)}">{_e(region_words(info)) if info else _DASH}</td>')
        syn = _mapping(findings.get("synkinesis"))
        pairs = syn.get("pairs") if isinstance(syn.get("pairs"), list) else []
        if pairs:
            synk = "<ul>" + "".join(f"<li>{_e(pair_words(_mapping(p)))}</li>" for p in pairs) + "</ul>"
        elif findings:
            synk = f"none found ({_e(_count(syn.get('n_pairs_tested')))} pairs tested)"
        else:
            synk = _DASH
        keyframes = _mapping(exercise.get("symptoms")).get("n_keyframes")
        rows.append(f'<tr><th scope="row">{_e(title)}</th><td>{_e(_count(keyframes))}</td>'
                    f'{"".join(cells)}<td>{synk}</td></tr>')
    head = "".join(f"<th>{_e(name.capitalize())}</th>" for name in region_names)
    return (
        '<section id="exercise-findings">\n<h2>Findings per exercise</h2>\n'
        f'<table class="evidence"><thead><tr><th>Exercise</th><th>Keyframes</th>{head}<th>Synkinesis</th></tr></thead>'
        f'<tbody>{"".join(rows)}</tbody></table>\n</section>'
    )


def _counts_section(report: Mapping[str, Any], series: AUSeries) -> str:
    counts = _mapping(report.get("counts"))
    frames = _number(counts.get("frames"))
    rows = [
        ("Frames analysed", _count(counts.get("frames"))),
        ("Keyframes (frames kept for AU estimation)", _count(_keyframes(report, series))),
        ("Frames without a face", _count(counts.get("frames_without_face"), of=frames)),
        ("Frames with several faces (largest face used)", _count(counts.get("frames_with_several_faces"), of=frames)),
    ]
    duration = _duration(report, series)
    if _number(counts.get("duration_s")) is not None:
        rows.append(("Duration", f"{duration:.1f} s"))
    table = "".join(f"<tr><th scope=\"row\">{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows)
    return (
        f'<section id="counts">\n<h2>Frames</h2>\n<table class="counts">{table}</table>\n'
        f"<h3>Keyframe timeline</h3>\n{_timeline_svg(series, duration)}\n</section>"
    )


def _curves_section(report: Mapping[str, Any], series: AUSeries) -> str:
    threshold = _number(report.get("active_threshold"))
    duration = _duration(report, series)
    figures = []
    for a, au in enumerate(AU_NAMES):  # the series columns are always in AU_NAMES order
        caption = f"{au} {AU_ACTIONS.get(au, '')}".strip()
        figures.append(
            f'<figure class="au-plot" data-au="{_e(au)}"><figcaption>{_e(caption)}</figcaption>'
            f"{_curve_svg(series, a, threshold, duration)}</figure>"
        )
    threshold_text = f"active threshold ({_fmt(threshold)})" if threshold is not None else "active threshold"
    legend = (
        '<p class="legend">'
        f'{_line_swatch(LEFT_COLOUR)} patient\'s left &nbsp; {_line_swatch(RIGHT_COLOUR)} patient\'s right &nbsp; '
        f'{_line_swatch("#666", dash="4 3")} {_e(threshold_text)}</p>'
    )
    return (
        '<section id="au-curves">\n<h2>AU intensity over time, left vs right</h2>\n'
        "<p>One plot per action unit; intensity 0 (absent) to 5 (maximum), time in seconds.</p>\n"
        f'{legend}\n<div class="plots">{"".join(figures)}</div>\n</section>'
    )


def _asymmetry_section(report: Mapping[str, Any], aus: list[str]) -> str:
    threshold = _number(report.get("asymmetry_threshold"))
    return (
        '<section id="asymmetry">\n<h2>Muscle function: left–right difference (ΔAM)</h2>\n'
        "<p>ΔAM = active mean of the patient's left − active mean of the right, summed over the region's "
        "action units. Positive: the left side moves more, so the <em>right</em> side is weaker.</p>\n"
        f"{_region_bars_svg(report, threshold)}\n"
        "<h3>Per action unit</h3>\n"
        f"{_delta_am_table(report, aus)}\n</section>"
    )


def _cooccurrence_section(report: Mapping[str, Any], aus: list[str]) -> str:
    differences = _mapping(report.get("cooccurrence_difference"))
    mask = _bool_matrix(report.get("cooccurrence_mask"))
    pairs = _pairs(report, aus)
    maps = []
    for uid, (key, (other, same, given)) in enumerate(DIFFERENCE_MATRICES.items()):
        matrix = _matrix(differences.get(key))
        marked = {(i, j): v for m, i, j, v in pairs if m == key}
        maps.append(
            f'<figure class="heatmap" data-matrix="{_e(key)}">'
            f'<figcaption><h3 class="matrix-title">CM {_e(key)}</h3>'
            f"<p>P({other} AU<sub>i</sub> active | {given} AU<sub>j</sub> active) − "
            f"P({same} AU<sub>i</sub> active | {given} AU<sub>j</sub> active). "
            f"Rows: AU<sub>i</sub>; columns: conditioning AU<sub>j</sub> on the {given} side.</p></figcaption>"
            f"{_heatmap_svg(matrix, mask, marked, aus, uid, given)}</figure>"
        )
    mask_note = (
        "Dimmed cells are pairs that co-occur in normal faces (masked, not used for synkinesis)."
        if mask is not None
        else "No normal-subject mask was recorded with this report: no cell is dimmed."
    )
    return (
        '<section id="cooccurrence">\n<h2>Co-occurrence differences (synkinesis)</h2>\n'
        "<p>Positive values: the action unit co-occurs more with the opposite side's movement than with "
        f"the same side's. {_e(mask_note)}</p>\n"
        f"{_heatmap_legend_svg()}\n"
        f'<div class="heatmaps">{"".join(maps)}</div>\n</section>'
    )


def _synkinesis_section(report: Mapping[str, Any], aus: list[str]) -> str:
    items = []
    for key, i, j, value in _pairs(report, aus):
        items.append(f"<li>{_e(_pair_label(key, i, j, value, aus))}: {_e(_pair_sentence(key, i, j, value, aus))}</li>")
    listing = f"<ul>{''.join(items)}</ul>" if items else ""
    return (
        '<section id="synkinesis">\n<h2>Synkinesis verdict</h2>\n'
        f'<p class="verdict">{_e(_synkinesis_sentence(report))}</p>\n{listing}\n</section>'
    )


def _how_to_read(report: Mapping[str, Any]) -> str:
    active = _fmt(_number(report.get("active_threshold")))
    asym = _fmt(_number(report.get("asymmetry_threshold")))
    cooc = _fmt(_number(report.get("cooccurrence_threshold")))
    normal = _fmt(_number(report.get("normal_threshold")))
    thresholds = [
        ("Active threshold", active, "an action unit is active in a keyframe when its intensity is above this"),
        ("Asymmetry threshold", asym, "a region with |ΔAM| at or below this shows no obvious difference"),
        ("Co-occurrence threshold", cooc, "a kept pair with |difference| above this is a synkinesis pair"),
        ("Normal threshold", normal, "pairs co-occurring above this in normal faces are masked"),
    ]
    rows = "".join(f"<tr><th scope=\"row\">{_e(n)}</th><td>{_e(v)}</td><td>{_e(d)}</td></tr>" for n, v, d in thresholds)
    return (
        '<section id="how-to-read">\n<h2>How to read this report</h2>\n<ul>'
        "<li>The video is reduced to <em>keyframes</em>: frames where the face changed visibly. Each keyframe's "
        "face is split into the patient's left and right halves and 12 action units (AUs) are estimated on "
        "each half, on a 0–5 scale.</li>"
        "<li><em>Active mean</em> (AM): the mean intensity of an AU on one side over the keyframes where that AU "
        "is active on either side. ΔAM = AM left − AM right; a large |ΔAM| means the weaker side's muscle "
        "function is impaired, and its size is the degree.</li>"
        "<li><em>Co-occurrence</em>: how often AU<sub>i</sub> is active when AU<sub>j</sub> is. If AU<sub>i</sub> "
        "goes with AU<sub>j</sub> of the opposite side much more (or less) than with the same side, and the pair "
        "does not normally move together, the report flags it as synkinesis (involuntary movement that "
        "accompanies a voluntary one, e.g. the eye narrowing on a smile).</li>"
        "<li>These are measurements to support a clinical examination, not a diagnosis.</li>"
        f"</ul>\n<h3>Thresholds used</h3>\n<table class=\"thresholds\">{rows}</table>\n</section>"
    )


def _settings_section(config: Mapping[str, Any]) -> str:
    if not config:
        return '<section id="settings">\n<h2>Analysis settings</h2>\n<p>Not recorded.</p>\n</section>'
    rows = "".join(
        f"<tr><th scope=\"row\">{_e(str(k))}</th><td>{_e(_text(v) if v is not None else _DASH)}</td></tr>"
        for k, v in config.items()
    )
    return f'<section id="settings">\n<h2>Analysis settings</h2>\n<table class="settings">{rows}</table>\n</section>'


# --------------------------------------------------------------------------------------------
# SVG pieces


def _timeline_svg(series: AUSeries, duration: float) -> str:
    width, height, left, right = 720, 46, 10, 14
    plot_w = width - left - right
    parts = [f'<svg class="timeline" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img">']
    times = _finite_times(series)
    parts.append(f"<title>{_e(f'{len(times)} keyframes over {duration:.1f} s')}</title>")
    parts.append(f'<line x1="{left}" y1="24" x2="{left + plot_w}" y2="24" stroke="#888"/>')
    for t in _nice_ticks(duration):
        x = left + plot_w * t / duration
        parts.append(f'<line x1="{x:.1f}" y1="24" x2="{x:.1f}" y2="28" stroke="#888"/>')
        parts.append(f'<text x="{x:.1f}" y="40" font-size="10" text-anchor="middle">{_e(_seconds(t))}</text>')
    if len(times) == 0:
        parts.append(f'<text x="{width / 2:.0f}" y="16" font-size="12" text-anchor="middle" fill="#555">no keyframes</text>')
    for t in times:
        x = left + plot_w * min(max(t, 0.0), duration) / duration
        parts.append(f'<line x1="{x:.1f}" y1="6" x2="{x:.1f}" y2="24" stroke="#222" stroke-width="1"/>')
    parts.append("</svg>")
    return "".join(parts)


def _curve_svg(series: AUSeries, a: int, threshold: float | None, duration: float) -> str:
    width, height = 230, 120
    left, right, top, bottom = 22, 8, 6, 18
    plot_w, plot_h = width - left - right, height - top - bottom

    def x_of(t: float) -> float:
        return left + plot_w * min(max(t, 0.0), duration) / duration

    def y_of(v: float) -> float:
        return top + plot_h * (1.0 - min(max(v, 0.0), MAX_INTENSITY) / MAX_INTENSITY)

    parts = [f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img">']
    for level in range(int(MAX_INTENSITY) + 1):
        y = y_of(level)
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" stroke="#e4e4e4"/>')
        parts.append(f'<text x="{left - 4}" y="{y + 3:.1f}" font-size="8" text-anchor="end">{level}</text>')
    parts.append(f'<text x="{left}" y="{height - 4}" font-size="8">0 s</text>')
    parts.append(f'<text x="{left + plot_w}" y="{height - 4}" font-size="8" text-anchor="end">{_e(_seconds(duration))}</text>')
    if threshold is not None:
        y = y_of(threshold)
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" stroke="#666" stroke-dasharray="4 3"/>')
    order = np.argsort(series.time_s, kind="stable")
    keep = [k for k in order if math.isfinite(float(series.time_s[k]))]
    if not keep:
        parts.append(
            f'<text x="{left + plot_w / 2:.0f}" y="{top + plot_h / 2:.0f}" font-size="11" '
            'text-anchor="middle" fill="#555">no keyframes</text>'
        )
    for values, colour in ((series.left, LEFT_COLOUR), (series.right, RIGHT_COLOUR)):
        points = [(x_of(float(series.time_s[k])), y_of(float(values[k, a]))) for k in keep if math.isfinite(float(values[k, a]))]
        if len(points) > 1:
            coords = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
            parts.append(f'<polyline points="{coords}" fill="none" stroke="{colour}" stroke-width="1.5"/>')
        if len(points) <= 60:  # few keyframes: show each one, a lone point has no line
            parts.extend(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2" fill="{colour}"/>' for x, y in points)
    parts.append("</svg>")
    return "".join(parts)


def _region_bars_svg(report: Mapping[str, Any], threshold: float | None) -> str:
    regions = _regions(report)
    if not regions:
        return "<p>No region results in this report.</p>"
    width, label_w, verdict_w, row_h, top = 780, 90, 210, 30, 8
    plot_l, plot_r = label_w, width - verdict_w
    centre = (plot_l + plot_r) / 2
    deltas = [_number(info.get("delta_am")) for _, info in regions]
    extent = max([abs(d) for d in deltas if d is not None] + [threshold or 0.0, 1.0]) * 1.1
    half = (plot_r - plot_l) / 2
    height = top + row_h * len(regions) + 36

    def x_of(d: float) -> float:
        return centre + half * d / extent

    parts = [f'<svg class="bars" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img">']
    parts.append("<title>ΔAM per region</title>")
    if threshold:
        x0, x1 = x_of(-threshold), x_of(threshold)
        parts.append(
            f'<rect x="{x0:.1f}" y="{top}" width="{x1 - x0:.1f}" height="{row_h * len(regions)}" fill="#eeeeee">'
            f"<title>{_e(f'|ΔAM| ≤ {_fmt(threshold)}: no obvious difference')}</title></rect>"
        )
    for r, ((region, info), delta) in enumerate(zip(regions, deltas)):
        y = top + r * row_h
        parts.append(_label(label_w - 8, y + row_h / 2 + 4, region.capitalize(), 12, "end"))
        if delta is not None:
            x = x_of(delta)
            colour = LEFT_COLOUR if delta > 0 else RIGHT_COLOUR
            parts.append(
                f'<rect x="{min(x, centre):.1f}" y="{y + 6}" width="{abs(x - centre):.1f}" height="{row_h - 12}" fill="{colour}">'
                f"<title>{_e(f'{region}: ΔAM {_fmt(delta, signed=True)}')}</title></rect>"
            )
        verdict = f"{_weaker_words(info.get('weaker_side'), delta)} ({_fmt(delta, signed=True)})"
        parts.append(f'<text x="{plot_r + 8}" y="{y + row_h / 2 + 4:.1f}" font-size="12">{_e(verdict)}</text>')
    bottom = top + row_h * len(regions)
    parts.append(f'<line x1="{centre:.1f}" y1="{top}" x2="{centre:.1f}" y2="{bottom}" stroke="#333"/>')
    parts.append(f'<line x1="{plot_l}" y1="{bottom}" x2="{plot_r}" y2="{bottom}" stroke="#888"/>')
    parts.append(f'<text x="{plot_l}" y="{bottom + 16}" font-size="10">◀ right side stronger</text>')
    parts.append(f'<text x="{centre:.1f}" y="{bottom + 16}" font-size="10" text-anchor="middle">0</text>')
    if threshold:
        for edge in (-threshold, threshold):
            parts.append(
                f'<text x="{x_of(edge):.1f}" y="{bottom + 28}" font-size="9" text-anchor="middle" fill="#555">'
                f"{_e(_fmt(edge, signed=True))}</text>"
            )
    parts.append(f'<text x="{plot_r}" y="{bottom + 16}" font-size="10" text-anchor="end">left side stronger ▶</text>')
    parts.append("</svg>")
    return "".join(parts)


def _heatmap_svg(
    matrix: list[list[float | None]],
    mask: list[list[bool]] | None,
    marked: Mapping[tuple[int, int], float | None],
    aus: list[str],
    uid: int,
    given: str,
) -> str:
    cell, left, top = 26, 46, 34
    n = len(aus)
    width, height = left + n * cell + 6, top + n * cell + 6
    hatch = f"hatch-{uid}"
    parts = [
        f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img">',
        _hatch_pattern(hatch),
        f'<text x="{left + n * cell / 2:.0f}" y="10" font-size="10" text-anchor="middle">'
        f"{_e(f'conditioning AU j (active on the {given} side)')}</text>",
    ]
    for j, au in enumerate(aus):
        parts.append(_label(left + j * cell + cell / 2, top - 6, au, 9, "middle"))
    for i, au in enumerate(aus):
        parts.append(_label(left - 4, top + i * cell + cell / 2 + 3, au, 9, "end"))
    for i in range(n):
        for j in range(n):
            value = matrix[i][j]
            x, y = left + j * cell, top + i * cell
            kept = mask is None or mask[i][j]
            if value is None:
                fill, note = f"url(#{hatch})", f"no data ({aus[j]} never active on the {given} side)"
            else:
                fill, note = _diverging(value), _fmt(value, signed=True)
            if not kept:
                note += " — normal pair, masked"
            if not kept:  # grey base under a faded colour: visibly set apart, value still readable
                parts.append(f'<rect x="{x}" y="{y}" width="{cell}" height="{cell}" fill="{MASKED_GREY}"/>')
            opacity = "" if kept else f' fill-opacity="{MASKED_OPACITY}"'
            parts.append(
                f'<rect x="{x}" y="{y}" width="{cell}" height="{cell}" fill="{fill}"{opacity} stroke="#fff" stroke-width="0.5">'
                f"<title>{_e(f'{aus[i]} | {aus[j]}: {note}')}</title></rect>"
            )
    for (i, j), value in marked.items():
        x, y = left + j * cell, top + i * cell
        text_colour = "#fff" if value is not None and abs(value) > 0.6 else "#000"
        parts.append(
            f'<rect class="synkinesis" x="{x + 1}" y="{y + 1}" width="{cell - 2}" height="{cell - 2}" '
            'fill="none" stroke="#000" stroke-width="2.5"/>'
        )
        parts.append(
            f'<text x="{x + cell / 2:.1f}" y="{y + cell / 2 + 3:.1f}" font-size="8" font-weight="bold" '
            f'text-anchor="middle" fill="{text_colour}">{_e(_fmt(value, signed=True))}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _heatmap_legend_svg() -> str:
    steps = 20
    width, height, left, bar_w = 640, 40, 10, 200
    parts = [f'<svg class="scale" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img">']
    parts.append("<title>Colour scale of the difference matrices, -1 to +1</title>")
    parts.append(_hatch_pattern("hatch-legend"))
    for s in range(steps):
        v = -1.0 + 2.0 * (s + 0.5) / steps
        x = left + s * bar_w / steps
        parts.append(f'<rect x="{x:.1f}" y="4" width="{bar_w / steps + 0.5:.1f}" height="14" fill="{_diverging(v)}"/>')
    for v, label, anchor in ((-1, "−1", "start"), (0, "0", "middle"), (1, "+1", "end")):
        parts.append(f'<text x="{left + (v + 1) / 2 * bar_w:.1f}" y="32" font-size="10" text-anchor="{anchor}">{label}</text>')
    x = left + bar_w + 24
    parts.append(f'<rect x="{x}" y="4" width="14" height="14" fill="url(#hatch-legend)"/>')
    parts.append(f'<text x="{x + 20}" y="15" font-size="11">no data</text>')
    x += 80
    parts.append(f'<rect x="{x}" y="4" width="14" height="14" fill="{MASKED_GREY}"/>')
    parts.append(f'<rect x="{x}" y="4" width="14" height="14" fill="{_diverging(0.8)}" fill-opacity="{MASKED_OPACITY}"/>')
    parts.append(f'<text x="{x + 20}" y="15" font-size="11">normal pair (masked)</text>')
    x += 150
    parts.append(f'<rect x="{x + 1}" y="5" width="12" height="12" fill="none" stroke="#000" stroke-width="2.5"/>')
    parts.append(f'<text x="{x + 20}" y="15" font-size="11">synkinesis pair</text>')
    parts.append("</svg>")
    return "".join(parts)


def _hatch_pattern(pattern_id: str) -> str:
    return (
        f'<defs><pattern id="{pattern_id}" patternUnits="userSpaceOnUse" width="6" height="6">'
        '<rect width="6" height="6" fill="#d9d9d9"/><path d="M0,6 L6,0" stroke="#999" stroke-width="1"/></pattern></defs>'
    )


def _label(x: float, y: float, text: str, size: int, anchor: str = "start") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}">{_e(text)}</text>'


def _line_swatch(colour: str, dash: str | None = None) -> str:
    dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
    return (
        f'<svg width="24" height="10" viewBox="0 0 24 10" aria-hidden="true">'
        f'<line x1="0" y1="5" x2="24" y2="5" stroke="{colour}" stroke-width="2"{dash_attr}/></svg>'
    )


def _delta_am_table(report: Mapping[str, Any], aus: list[str]) -> str:
    active_mean = _mapping(report.get("active_mean"))
    left, right = _mapping(active_mean.get("left")), _mapping(active_mean.get("right"))
    delta = _mapping(report.get("delta_am"))
    region_of = {au: region for region, members in REGIONS.items() for au in members}
    rows = []
    for au in aus:
        d = _number(delta.get(au))
        rows.append(
            f"<tr><th scope=\"row\">{_e(au)}</th><td>{_e(AU_ACTIONS.get(au, ''))}</td><td>{_e(region_of.get(au, _DASH))}</td>"
            f"<td class=\"num\">{_e(_fmt(_number(left.get(au))))}</td><td class=\"num\">{_e(_fmt(_number(right.get(au))))}</td>"
            f"<td class=\"num\">{_e(_fmt(d, signed=True))}</td></tr>"
        )
    return (
        '<table class="delta-am"><thead><tr><th>AU</th><th>action</th><th>region</th><th>AM left</th>'
        f"<th>AM right</th><th>ΔAM</th></tr></thead><tbody>{''.join(rows)}</tbody></table>\n"
        f"<p class=\"note\">{_DASH} : the AU was never active on either side, so its active mean is undefined.</p>"
    )


# --------------------------------------------------------------------------------------------
# words


def _weaker_words(weaker_side: Any, delta: float | None) -> str:
    if weaker_side == "right":
        return "right side weaker"
    if weaker_side == "left":
        return "left side weaker"
    if delta is None:
        return "not measured (no active AU)"
    return "no obvious difference"


def _synkinesis_sentence(report: Mapping[str, Any]) -> str:
    synkinesis = _mapping(report.get("synkinesis"))
    pairs = synkinesis.get("pairs") if isinstance(synkinesis.get("pairs"), list) else []
    threshold = _fmt(_number(report.get("cooccurrence_threshold")))
    if synkinesis.get("detected"):
        plural = "s" if len(pairs) != 1 else ""
        return f"Synkinesis detected: {len(pairs)} pair{plural} of action units with |difference| above {threshold}."
    if not synkinesis:
        return "Not evaluated."
    return f"No synkinesis detected: no pair that is independent in normal faces has |difference| above {threshold}."


def _pair_label(key: str, i: int, j: int, value: float | None, aus: list[str]) -> str:
    return f"{aus[i]} | {aus[j]} in CM {key}, {_fmt(value, signed=True)}"


def _pair_sentence(key: str, i: int, j: int, value: float | None, aus: list[str]) -> str:
    if key not in DIFFERENCE_MATRICES:
        return "unknown matrix"
    other, same, given = DIFFERENCE_MATRICES[key]
    how = "more often" if value is None or value > 0 else "less often"
    return f"when {given} {aus[j]} is active, {other} {aus[i]} is active {how} than {same} {aus[i]}"


# --------------------------------------------------------------------------------------------
# tolerant readers of the report dict


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _number(value: Any) -> float | None:
    """A finite float, or None for None, NaN, infinities, booleans and anything not a number."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _fmt(value: float | None, *, signed: bool = False, digits: int = 2) -> str:
    if value is None:
        return _DASH
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def _count(value: Any, *, of: float | None = None) -> str:
    n = _number(value)
    if n is None:
        return _DASH
    text = f"{int(n)}"
    if of:
        text += f" ({100.0 * n / of:.1f}%)"
    return text


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return ", ".join(_text(v) for v in value)
    return str(value)


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _au_names(report: Mapping[str, Any]) -> list[str]:
    aus = report.get("aus")
    if isinstance(aus, Sequence) and not isinstance(aus, str) and len(aus) == N_AUS:
        return [str(a) for a in aus]
    return list(AU_NAMES)


def _report_date(report: Mapping[str, Any], config: Mapping[str, Any]) -> str:
    for source in (report, config):
        for key in ("date", "created_at", "created", "started_at"):
            if source.get(key):
                return _text(source[key])
    return ""


def _estimator_text(config: Mapping[str, Any]) -> str:
    name = _text(config.get("estimator"))
    if not name:
        return _DASH
    details = []
    if config.get("checkpoint"):
        details.append(f"checkpoint {_text(config['checkpoint'])}")
    if _number(config.get("helpers")) is not None:
        details.append(f"{int(config['helpers'])} helpers")
    return f"{name} ({', '.join(details)})" if details else name


def _regions(report: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    regions = _mapping(report.get("regions"))
    names = [r for r in REGIONS if r in regions] + [r for r in regions if r not in REGIONS]
    return [(str(r), _mapping(regions[r])) for r in names]


def _keyframes(report: Mapping[str, Any], series: AUSeries) -> int:
    n = _number(_mapping(report.get("counts")).get("keyframes"))
    return int(n) if n is not None else len(series)


def _finite_times(series: AUSeries) -> list[float]:
    return [float(t) for t in series.time_s if math.isfinite(float(t))]


def _duration(report: Mapping[str, Any], series: AUSeries) -> float:
    duration = _number(_mapping(report.get("counts")).get("duration_s"))
    if duration is not None and duration > 0:
        return duration
    times = _finite_times(series)
    latest = max(times, default=0.0)
    return latest if latest > 0 else 1.0


def _matrix(value: Any) -> list[list[float | None]]:
    """A 12x12 matrix of finite floats or None; anything malformed renders as all-null."""
    rows = value if isinstance(value, Sequence) and not isinstance(value, str) else []
    out = [[None] * N_AUS for _ in range(N_AUS)]
    for i, row in enumerate(list(rows)[:N_AUS]):
        if isinstance(row, Sequence) and not isinstance(row, str):
            for j, v in enumerate(list(row)[:N_AUS]):
                out[i][j] = _number(v)
    return out


def _bool_matrix(value: Any) -> list[list[bool]] | None:
    if not isinstance(value, Sequence) or isinstance(value, str) or len(value) != N_AUS:
        return None
    rows = [list(row) for row in value if isinstance(row, Sequence) and not isinstance(row, str)]
    if len(rows) != N_AUS or any(len(row) != N_AUS for row in rows):
        return None
    return [[bool(v) for v in row] for row in rows]


def _au_position(value: Any, aus: list[str]) -> int | None:
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool) and 0 <= int(value) < len(aus):
        return int(value)
    if isinstance(value, str) and value in aus:
        return aus.index(value)
    return None


def _pairs(report: Mapping[str, Any], aus: list[str]) -> list[tuple[str, int, int, float | None]]:
    """Synkinesis pairs as (matrix key, row index, column index, value); row/col may be AU names or indices."""
    synkinesis = _mapping(report.get("synkinesis"))
    raw = synkinesis.get("pairs")
    out = []
    for pair in raw if isinstance(raw, Iterable) and not isinstance(raw, (str, Mapping)) else []:
        pair = _mapping(pair)
        i, j = _au_position(pair.get("row"), aus), _au_position(pair.get("col"), aus)
        if i is None or j is None:
            continue
        out.append((str(pair.get("matrix", "")), i, j, _number(pair.get("value"))))
    return out


def _diverging(value: float) -> str:
    v = max(-1.0, min(1.0, value))
    end = POSITIVE_COLOUR if v > 0 else NEGATIVE_COLOUR
    rgb = (round(n + (e - n) * abs(v)) for n, e in zip(NEUTRAL_COLOUR, end))
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def _seconds(t: float) -> str:
    return f"{t:.0f} s" if t >= 10 or t == int(t) else f"{t:.1f} s"


def _nice_ticks(duration: float, target: int = 8) -> list[float]:
    raw = duration / target
    magnitude = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1.0
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    count = int(math.floor(duration / step + 1e-9))
    return [k * step for k in range(count + 1)]


_CSS = """
table.evidence { border-collapse: collapse; margin: 0.5em 0; }
table.evidence th, table.evidence td { border-bottom: 1px solid #ddd; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }
table.evidence td.reason { color: #555; font-size: 0.9em; max-width: 28em; }
tr.status-weaker_side td strong { color: #8a3b00; }
p.note { color: #555; font-size: 0.9em; }
:root { color-scheme: light; }
* { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #111;
       margin: 1.5rem auto; max-width: 62rem; padding: 0 1rem; line-height: 1.4; }
h1 { font-size: 1.5rem; margin-bottom: .5rem; }
h2 { font-size: 1.2rem; border-bottom: 1px solid #ccc; padding-bottom: .2rem; margin-top: 2rem; }
h3 { font-size: 1rem; margin: 1rem 0 .3rem; }
dl.meta { display: grid; grid-template-columns: max-content auto; gap: .1rem 1rem; margin: 0; }
dl.meta dt { font-weight: 600; }
dl.meta dd { margin: 0; }
.warning { background: #fff4d6; border: 1px solid #e0b000; padding: .6rem .8rem; border-radius: 4px; margin: .6rem 0; }
.warning ul { margin: .3rem 0 0; }
.sides { color: #444; font-size: .9rem; }
table { border-collapse: collapse; font-size: .9rem; }
th, td { border-bottom: 1px solid #e2e2e2; padding: .2rem .6rem; text-align: left; vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.plots { display: flex; flex-wrap: wrap; gap: .4rem; }
figure { margin: 0; }
figure.au-plot figcaption { font-size: .8rem; font-weight: 600; }
.heatmaps { display: flex; flex-wrap: wrap; gap: 1.5rem; }
.heatmaps figcaption p { font-size: .8rem; max-width: 24rem; margin: 0 0 .3rem; }
.legend { font-size: .85rem; }
.legend svg { vertical-align: middle; }
.note { font-size: .8rem; color: #555; }
.verdict { font-weight: 600; }
svg text { font-family: inherit; }
@media print {
  body { margin: 0; max-width: none; }
  section, figure { break-inside: avoid; }
}
"""
