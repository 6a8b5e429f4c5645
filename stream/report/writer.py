"""Write an analysis to a folder: ``report.json``, ``au_series.csv``, ``report.html``.

All three are rendered in memory first, then each is written to a temporary file in the same
folder and renamed over the target, so an interrupted run leaves either the previous file or the
complete new one, never half a file.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from stream.report.html import render_report_html
from stream.report.model import Report
from stream.report.series import format_series_csv
from stream.types import AUSeries

REPORT_JSON = "report.json"
SERIES_CSV = "au_series.csv"
REPORT_HTML = "report.html"


def write_report(out_dir: str | Path, report: Report | Mapping[str, Any], series: AUSeries) -> dict[str, Path]:
    """Write the three report files into ``out_dir`` (created if needed).

    Returns ``{"json": ..., "csv": ..., "html": ...}``, the paths written. NaN and infinities
    become JSON ``null``; numpy scalars and arrays become plain numbers and lists. A mapping (a
    ``report.json`` read back) is written as given and rendered through ``report_from_dict``.
    """
    clean = json_compatible(report.to_json() if isinstance(report, Report) else report)
    texts = {
        "json": (REPORT_JSON, json.dumps(clean, indent=2, allow_nan=False, ensure_ascii=False) + "\n"),
        "csv": (SERIES_CSV, format_series_csv(series)),
        "html": (REPORT_HTML, render_report_html(report if isinstance(report, Report) else clean, series)),
    }
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for kind, (name, text) in texts.items():
        paths[kind] = _write_atomically(out / name, text)
    return paths


def json_compatible(value: Any) -> Any:
    """A copy of ``value`` that :func:`json.dumps` accepts with ``allow_nan=False``.

    Non-finite floats become None, numpy scalars and arrays become Python numbers and lists,
    tuples become lists, mapping keys become strings.
    """
    if isinstance(value, Mapping):
        return {str(k): json_compatible(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return json_compatible(value.tolist())
    if isinstance(value, (list, tuple)):
        return [json_compatible(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _write_atomically(path: Path, text: str) -> Path:
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; report files are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
