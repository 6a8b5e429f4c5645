"""``report.html``: one self-contained page for a clinician (no network, no scripts; inline SVG).

A :class:`~stream.report.model.Report` and the AU series in, one HTML string out. The page and its
prose are Jinja2 templates (``templates/``, autoescaped: text from the report is never markup); what
they lay out comes from :mod:`stream.report.views` (chart geometry, rows, words), the colours from
``palette.css``.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import jinja2
import markupsafe

from stream.aus import AU_NAMES, REGIONS
from stream.report import charts
from stream.report.model import DIFFERENCE_KEYS, Report
from stream.report.palette import Palette, load_palette, palette_css
from stream.report.reading import report_from_dict
from stream.report.views import (
    AU_ACTIONS,
    DASH,
    DIFFERENCE_MATRICES,
    MASKED_OPACITY,
    au_rows,
    count,
    curve,
    fmt,
    heatmap,
    paper_pairs,
    region_bars,
    synkinesis_sentence,
    timeline,
    weaker_words,
)
from stream.symptoms.wording import STATUS_WORDS, pair_words, region_words
from stream.types import AUSeries


def render_report_html(report: Report | Mapping[str, Any], series: AUSeries) -> str:
    """The whole report page as one HTML string (UTF-8, self-contained, printable).

    A mapping is read as a ``report.json`` (:func:`report_from_dict`), for files already written.
    """
    if not isinstance(report, Report):
        report = report_from_dict(report)
    palette = load_palette()
    duration = charts.duration_of(series.time_s, report.counts.duration_s)
    threshold = charts.finite(report.statistics.active_threshold)
    context = {
        "report": report,
        "stats": report.statistics,
        "series": series,
        "palette": palette,
        "palette_css": markupsafe.Markup(palette_css()),  # our own file, inlined as is
        "duration": duration,
        "timeline": timeline(series.time_s, duration),
        "curves": [curve(series, a, threshold, duration, palette) for a in range(len(AU_NAMES))],
        "bars": region_bars(report, palette),
        "heatmaps": [heatmap(report, key, uid, palette) for uid, key in enumerate(DIFFERENCE_KEYS)],
        "pairs": paper_pairs(report),
        "au_rows": au_rows(report),
        "regions": list(REGIONS),
    }
    return _environment().get_template("report.html.j2").render(context)


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("stream.report", "templates"),
        autoescape=True,  # every template: report text is data, never markup
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters.update(fmt=fmt, count=count, seconds=charts.seconds, diverging=_diverging_filter)
    env.globals.update(
        STATUS_WORDS=STATUS_WORDS,
        region_words=region_words,
        pair_words=pair_words,
        AU_ACTIONS=AU_ACTIONS,
        DIFFERENCE_MATRICES=DIFFERENCE_MATRICES,
        DASH=DASH,
        MASKED_OPACITY=MASKED_OPACITY,
        weaker_words=weaker_words,
        synkinesis_sentence=synkinesis_sentence,
        svg_points=charts.svg_points,
        finite=charts.finite,
    )
    return env


def _diverging_filter(value: float, palette: Palette) -> str:
    return charts.diverging(value, palette.scale_negative, palette.scale_neutral, palette.scale_positive)
