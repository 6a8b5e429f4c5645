"""Report files of an analysis: the AU series CSV, ``report.json`` and a self-contained ``report.html``.

Formats are described in docs/formats.md.
"""

from stream.report.html import render_report_html
from stream.report.series import SERIES_COLUMNS, format_series_csv, read_series_csv, write_series_csv
from stream.report.writer import json_compatible, write_report

__all__ = [
    "SERIES_COLUMNS",
    "format_series_csv",
    "json_compatible",
    "read_series_csv",
    "render_report_html",
    "write_report",
    "write_series_csv",
]
