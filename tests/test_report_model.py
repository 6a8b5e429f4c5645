"""The typed report (stream/report/model.py), the chart maths (charts.py) and the one palette (palette.py)."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from stream.aus import AU_INDEX, N_AUS
from stream.config import AnalysisConfig
from stream.report import Report, charts, render_report_html, report_from_dict, write_report
from stream.report.model import ExerciseReport, SessionInfo
from stream.report.palette import load_palette, palette_css, parse_palette
from stream.symptoms.evidence import Findings, RegionFinding, SynkinesisFinding
from stream.symptoms.statistics import SymptomAccumulator
from stream.types import AUSeries

ROOT = Path(__file__).resolve().parents[1]


def weak_right_series(n: int = 60, seed: int = 2) -> AUSeries:
    rng = np.random.default_rng(seed)
    left = np.clip(2.5 + 2.0 * np.sin(np.arange(n)[:, None] / 3.0) + rng.normal(0, 0.2, (n, N_AUS)), 0, 5)
    right = np.clip(left * 0.3, 0, 5)
    return AUSeries(np.arange(n) * 2, np.arange(n) / 15.0, left, right)


def statistics_of(series: AUSeries):
    acc = SymptomAccumulator(active_threshold=0.5)
    acc.update_many(series.left, series.right)
    normal = np.zeros((N_AUS, N_AUS))
    normal[AU_INDEX["AU6"], AU_INDEX["AU12"]] = 0.9
    return acc.snapshot(normal, asymmetry_threshold=0.5, cooccurrence_threshold=0.3, normal_threshold=0.5)


def findings() -> Findings:
    region = RegionFinding(
        "mouth",
        "weaker_side",
        "right",
        60,
        40,
        0.5,
        (0.3, 0.7),
        33.0,
        (18.0, 54.0),
        1.2,
        (0.8, 1.6),
        "the interval excludes no difference",
    )
    pair = SynkinesisFinding("right", "eyes", "AU12", 11, 9, 1, 3, 0.7, 0.1, 0.001, 0.002)
    return Findings("evidence", {"mouth": region}, [pair], 2, ["few keyframes"], {"min_keyframes": 10})


def built_report() -> tuple[Report, AUSeries]:
    series = weak_right_series()
    stats = statistics_of(series)
    report = Report.build(
        stats,
        {"frames": 120, "keyframes": 60, "frames_without_face": 0, "frames_with_several_faces": 0, "duration_s": 4.0},
        AnalysisConfig(),
        source="clip <1>.mp4",
        estimator_is_proxy=True,
        findings=findings(),
        warnings=["rotated"],
        mirrored=False,
        model={"summary": "flow: proxy"},
    )
    return report, series


# -- the model ----------------------------------------------------------------------------------


def test_build_gives_the_documented_report_json_keys_and_warnings_in_order():
    report, _ = built_report()
    data = report.to_json()
    for key in (
        "aus",
        "n_keyframes",
        "active_mean",
        "delta_am",
        "regions",
        "cooccurrence",
        "cooccurrence_difference",
        "cooccurrence_mask",
        "synkinesis",
        "findings",
        "counts",
        "config",
        "estimator_is_proxy",
        "warnings",
        "model",
    ):
        assert key in data, key
    assert data["warnings"] == ["rotated", "few keyframes"]  # the analysis's, then the findings'
    assert data["config"]["video"] == "clip <1>.mp4" and data["config"]["mirrored"] is False
    assert data["config"]["estimator"] == AnalysisConfig().estimator and "created" in data["config"]
    assert "session" not in data and "exercises" not in data


def test_report_from_dict_reads_back_what_to_json_wrote():
    report, series = built_report()
    session = SessionInfo("S1", "bed 4", 100.0, 160.0, "ended")
    exercise = ExerciseReport(0, "smile", 0.0, 4.0, report.statistics, report.findings)
    report = report.with_session(session, [exercise], [{"scope": "session", "row": "AU5"}])
    written = json.loads(json.dumps(_clean(report.to_json())))
    back = report_from_dict(written)
    assert json.loads(json.dumps(_clean(back.to_json()))) == written
    assert back.findings is not None and back.findings.regions["mouth"].weaker_percent_interval == (18.0, 54.0)
    assert back.exercises[0].title == "smile #1" and back.session == session
    # the typed report and the file read back render the same page
    assert render_report_html(back, series).replace(back.date or "", "") == render_report_html(report, series).replace(
        report.date or "", ""
    )


def test_report_from_dict_of_an_old_file_without_findings_mask_or_counts():
    back = report_from_dict(
        {
            "delta_am": {"AU1": None},
            "regions": {"mouth": {"delta_am": None}},
            "synkinesis": {"pairs": [{"matrix": "right-left|left", "row": 3, "col": "AU20", "value": 0.4}]},
        }
    )
    assert back.findings is None and not back.mask_recorded and back.counts.frames is None
    assert math.isnan(back.statistics.regions["mouth"].delta_am)
    [pair] = back.statistics.synkinesis_pairs
    assert (pair.row, pair.col) == ("AU5", "AU20")  # an index into aus is read as the AU's name
    assert "cooccurrence_mask" not in back.to_json()


def test_write_report_of_a_typed_report_writes_its_json(tmp_path):
    report, series = built_report()
    paths = write_report(tmp_path, report, series)
    data = json.loads(paths["json"].read_text(encoding="utf-8"))
    assert data == json.loads(json.dumps(_clean(report.to_json())))
    page = paths["html"].read_text(encoding="utf-8")
    assert "clip &lt;1&gt;.mp4" in page and "right side weaker" in page


def _clean(value):
    from stream.report import json_compatible

    return json_compatible(value)


# -- charts -------------------------------------------------------------------------------------


def test_linear_scale_maps_and_clamps():
    y = charts.Linear(0.0, 5.0, 100.0, 0.0)  # intensity up is y down
    assert y(0.0) == 100.0 and y(5.0) == 0.0 and y(2.5) == 50.0
    assert y(7.0) == 0.0 and y(-1.0) == 100.0


def test_nice_ticks_are_round_and_cover_the_extent():
    assert charts.nice_ticks(19.6) == [0.0, 5.0, 10.0, 15.0]
    assert charts.nice_ticks(1.0) == pytest.approx([0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
    assert charts.nice_ticks(0.0) == [0.0]


def test_curve_points_are_in_time_order_and_skip_undefined_values():
    x = charts.Linear(0.0, 10.0, 0.0, 100.0)
    y = charts.Linear(0.0, 5.0, 50.0, 0.0)
    points = charts.curve_points([2.0, 1.0, math.nan, 3.0], [5.0, 0.0, 1.0, math.nan], x, y)
    assert points == [(10.0, 50.0), (20.0, 0.0)]
    assert charts.svg_points(points) == "10.0,50.0 20.0,0.0"


def test_duration_prefers_the_recorded_one_then_the_last_keyframe():
    assert charts.duration_of([1.0, 3.0], 10.0) == 10.0
    assert charts.duration_of([1.0, 3.0, math.nan], None) == 3.0
    assert charts.duration_of([], None) == 1.0


def test_diverging_scale_is_neutral_at_zero_and_the_ends_at_plus_minus_one():
    neg, mid, pos = "#4D9221", "#F7F7F7", "#C51B7D"
    assert charts.diverging(0.0, neg, mid, pos) == "#f7f7f7"
    assert charts.diverging(1.0, neg, mid, pos) == "#c51b7d"
    assert charts.diverging(-3.0, neg, mid, pos) == "#4d9221"  # clamped
    assert charts.hex_rgb(charts.diverging(0.45, neg, mid, pos))[0] == 225  # 224.5 rounds up, as in the dashboard
    half = charts.hex_rgb(charts.diverging(0.5, neg, mid, pos))
    assert half == tuple(round((a + b) / 2) for a, b in zip(charts.hex_rgb(mid), charts.hex_rgb(pos)))


def test_heatmap_cells_carry_position_value_and_mask():
    matrix = np.array([[0.1, np.nan], [0.4, -0.2]])
    mask = np.array([[False, True], [True, True]])
    cells = charts.heatmap_cells(matrix, mask, 10, 5, 7)
    assert [(c.row, c.col, c.x, c.y) for c in cells] == [(0, 0, 5, 7), (0, 1, 15, 7), (1, 0, 5, 17), (1, 1, 15, 17)]
    assert cells[1].value is None and not cells[0].kept and cells[3].value == -0.2


# -- the one palette -----------------------------------------------------------------------------


def test_palette_is_read_from_the_css_the_dashboard_loads():
    palette = load_palette()
    css = (ROOT / "static" / "css" / "palette.css").read_text(encoding="utf-8")
    assert palette_css() == css
    assert f"--left: {palette.left}" in css and f"--right: {palette.right}" in css
    assert palette.left != palette.right
    assert palette.side("left") == palette.left
    app_css = (ROOT / "static" / "css" / "app.css").read_text(encoding="utf-8")
    assert app_css.lstrip().startswith('@import url("palette.css")')  # every page with app.css has the palette
    assert not re.search(r"--(left|right)\s*:", app_css)  # defined once, in palette.css


def test_a_palette_without_a_colour_is_refused_by_name():
    with pytest.raises(ValueError, match="--scale-positive"):
        parse_palette(":root { --left: #000000; --right: #111111; }")


def test_report_page_inlines_the_palette_and_draws_with_it():
    report, series = built_report()
    page = render_report_html(report, series)
    palette = load_palette()
    assert palette_css().strip() in page
    assert f'stroke="{palette.left}"' in page and f'stroke="{palette.right}"' in page
    neutral = charts.diverging(0.0, palette.scale_negative, palette.scale_neutral, palette.scale_positive)
    assert neutral in page  # the legend's middle step


# -- a live session's report: the same model and page as a video's ----------------------------------


def test_live_session_report_has_the_whole_series_and_each_exercise(tmp_path):
    """More keyframes than a dashboard snapshot carries (40): the report draws every one of them."""
    from stream.server.session_report import build_session_report
    from stream.server.store import Store
    from stream.session.exercises import Segment

    store = Store(tmp_path / "sessions.sqlite3")
    try:
        store.create_session("S", "bed 4", False, {})
        store.start_segment("S", Segment(0, "smile", 0.0, 12.0))
        store.start_segment("S", Segment(1, "gentle_eye_closure", 12.0, 24.0))
        series = weak_right_series(n=120)
        for i in range(120):
            t = 0.2 * i
            store.add_keyframe("S", i, 2 * i, t, 100.0 + t, 0 if t < 12 else 1, 0, series.left[i], series.right[i])
        store.set_counts("S", {"frames": 240, "frames_without_face": 0})
        report, stored = build_session_report(store, "S")
    finally:
        store.close()
    assert len(stored) == 120 and report.session is not None and report.session.label == "bed 4"
    assert [e.title for e in report.exercises] == ["smile #1", "gentle eye closure #2"]
    assert [e.statistics.n_frames for e in report.exercises] == [60, 60]
    page = render_report_html(report, stored)
    assert "Findings per exercise" in page and "gentle eye closure #2" in page
    au1 = page.split('data-au="AU1"')[1].split("</figure>")[0]
    for side in ("left", "right"):
        points = re.search(rf'<polyline class="{side}" points="([^"]*)"', au1).group(1)
        assert len(points.split()) == 120
    data = report.to_json()
    assert [e["exercise"] for e in data["exercises"]] == ["smile", "gentle_eye_closure"]
    assert data["session"]["id"] == "S" and data["config"]["mirrored"] is False
