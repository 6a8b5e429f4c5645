"""Report files of an analysis: the AU series CSV, ``report.json`` and a self-contained ``report.html``.

:class:`Report` is the typed report (model.py; reading.py reads old ``report.json`` files back);
``report.html`` is rendered from it by templates (html.py, templates/) laying out views.py's chart
geometry, rows and words (scales in charts.py), in the colours of static/css/palette.css (palette.py).
Formats are described in docs/formats.md.
"""

from stream.report.html import render_report_html
from stream.report.model import ExerciseReport, FrameCounts, Report, SessionInfo
from stream.report.reading import report_from_dict
from stream.report.series import SERIES_COLUMNS, format_series_csv, read_series_csv, write_series_csv
from stream.report.writer import json_compatible, write_report

__all__ = [
    "SERIES_COLUMNS",
    "ExerciseReport",
    "FrameCounts",
    "Report",
    "SessionInfo",
    "format_series_csv",
    "json_compatible",
    "read_series_csv",
    "render_report_html",
    "report_from_dict",
    "write_report",
    "write_series_csv",
]
