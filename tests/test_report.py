"""Report files: the AU series CSV, report.html and the writer of all three files."""

from __future__ import annotations

import copy
import json
import math
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from stream.aus import AU_INDEX, AU_NAMES, N_AUS
from stream.errors import InputError
from stream.report import (
    SERIES_COLUMNS,
    read_series_csv,
    render_report_html,
    write_report,
    write_series_csv,
)
from stream.report.palette import load_palette
from stream.types import AUSeries

EXPECTED_HEADER = (
    "frame,time_s,"
    "left_AU1,left_AU2,left_AU4,left_AU5,left_AU6,left_AU9,left_AU12,left_AU15,left_AU17,left_AU20,left_AU25,left_AU26,"
    "right_AU1,right_AU2,right_AU4,right_AU5,right_AU6,right_AU9,right_AU12,right_AU15,right_AU17,right_AU20,"
    "right_AU25,right_AU26"
)


# -- fixtures: a short smile-and-brow-raise series and the report an analysis of it would give ----


def make_series(n: int = 40, seed: int = 3) -> AUSeries:
    """Values already on the CSV grid (4 decimals, times 3 decimals) so a round trip is exact."""
    rng = np.random.default_rng(seed)
    left = np.round(rng.uniform(0.0, 5.0, size=(n, N_AUS)), 4)
    right = np.round(left * 0.4, 4)  # a weak right side
    frames = np.arange(n) * 3 + 7
    return AUSeries(frames=frames, time_s=np.round(frames / 30.0, 3), left=left, right=right)


def empty_series() -> AUSeries:
    return AUSeries.from_estimates([])


def null_matrix() -> list[list[None]]:
    return [[None] * N_AUS for _ in range(N_AUS)]


def make_report() -> dict:
    rng = np.random.default_rng(0)
    aus = list(AU_NAMES)

    def matrix(low: float, high: float) -> list[list[float | None]]:
        m = np.round(rng.uniform(low, high, size=(N_AUS, N_AUS)), 3).tolist()
        m[0][AU_INDEX["AU26"]] = None  # AU26 never active on the conditioning side
        return m

    difference = {"right-left|left": matrix(-0.2, 0.2), "left-right|right": matrix(-0.2, 0.2)}
    difference["right-left|left"][AU_INDEX["AU5"]][AU_INDEX["AU20"]] = 0.42
    mask = [[i != j for j in range(N_AUS)] for i in range(N_AUS)]
    mask[AU_INDEX["AU6"]][AU_INDEX["AU12"]] = False  # cheek raise goes with a smile in normal faces
    active_left = {au: round(float(v), 3) for au, v in zip(aus, rng.uniform(1, 3, N_AUS))}
    active_right = {au: round(float(v), 3) for au, v in zip(aus, rng.uniform(0.5, 1.5, N_AUS))}
    active_left["AU9"] = active_right["AU9"] = None
    delta = {au: None if active_left[au] is None else round(active_left[au] - active_right[au], 3) for au in aus}
    return {
        "aus": aus,
        "active_threshold": 0.5,
        "asymmetry_threshold": 0.5,
        "cooccurrence_threshold": 0.3,
        "normal_threshold": 0.5,
        "active_mean": {"left": active_left, "right": active_right},
        "delta_am": delta,
        "regions": {
            "eyebrows": {"delta_am": 2.1, "weaker_side": "right"},
            "eyes": {"delta_am": -0.7, "weaker_side": "left"},
            "mouth": {"delta_am": 0.2, "weaker_side": None},
        },
        "cooccurrence": {key: matrix(0.0, 1.0) for key in ("left|left", "left|right", "right|left", "right|right")},
        "cooccurrence_difference": difference,
        "cooccurrence_mask": mask,
        "synkinesis": {
            "detected": True,
            "pairs": [{"matrix": "right-left|left", "row": "AU5", "col": "AU20", "value": 0.42}],
        },
        "counts": {
            "frames": 300,
            "keyframes": 40,
            "frames_without_face": 12,
            "frames_with_several_faces": 2,
            "duration_s": 10.0,
        },
        "config": {"video": "patient <07>.mp4", "estimator": "flow", "detector": "mtcnn", "helpers": 2},
        "estimator_is_proxy": True,
    }


def null_report() -> dict:
    """What an analysis in which nothing was ever active reports."""
    report = make_report()
    aus = report["aus"]
    report["active_mean"] = {"left": dict.fromkeys(aus), "right": dict.fromkeys(aus)}
    report["delta_am"] = dict.fromkeys(aus)
    report["regions"] = {r: {"delta_am": None, "weaker_side": None} for r in ("eyebrows", "eyes", "mouth")}
    report["cooccurrence"] = {k: null_matrix() for k in report["cooccurrence"]}
    report["cooccurrence_difference"] = {k: null_matrix() for k in report["cooccurrence_difference"]}
    report["synkinesis"] = {"detected": False, "pairs": []}
    report["counts"] = {"frames": 90, "keyframes": 0, "frames_without_face": 90, "frames_with_several_faces": 0}
    report["config"] = {}
    del report["cooccurrence_mask"], report["estimator_is_proxy"]
    return report


def write_rows(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    lines = [",".join(header)] + [",".join(str(v) for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def assert_same_series(a: AUSeries, b: AUSeries) -> None:
    np.testing.assert_array_equal(a.frames, b.frames)
    np.testing.assert_array_equal(a.time_s, b.time_s)
    np.testing.assert_array_equal(a.left, b.left)
    np.testing.assert_array_equal(a.right, b.right)


# -- AU series CSV ------------------------------------------------------------------------------


def test_csv_header_is_exactly_the_documented_one(tmp_path):
    path = write_series_csv(tmp_path / "au_series.csv", make_series(3))
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == EXPECTED_HEADER
    assert ",".join(SERIES_COLUMNS) == EXPECTED_HEADER
    assert len(lines) == 4
    frame, time_s, first_value = lines[1].split(",")[:3]
    assert frame == "7" and time_s == "0.233" and len(first_value.split(".")[1]) == 4


def test_csv_round_trip_gives_the_same_series(tmp_path):
    series = make_series()
    path = write_series_csv(tmp_path / "au_series.csv", series)
    assert_same_series(read_series_csv(path), series)


def test_csv_round_trip_of_an_empty_series(tmp_path):
    path = write_series_csv(tmp_path / "au_series.csv", empty_series())
    assert path.read_text(encoding="utf-8") == EXPECTED_HEADER + "\n"
    back = read_series_csv(path)
    assert len(back) == 0 and back.left.shape == (0, N_AUS)


def test_csv_writer_refuses_values_the_reader_would_reject(tmp_path):
    series = make_series(2)
    series.right[1, AU_INDEX["AU12"]] = np.nan
    with pytest.raises(ValueError, match="right_AU12"):
        write_series_csv(tmp_path / "au_series.csv", series)


def test_reader_accepts_reordered_columns_and_ignores_extra_ones(tmp_path):
    series = make_series(5)
    header = ["confidence", *reversed(SERIES_COLUMNS)]
    rows = []
    for k in range(len(series)):
        values = dict(zip(SERIES_COLUMNS, [series.frames[k], series.time_s[k], *series.left[k], *series.right[k]]))
        rows.append([0.98, *(values[name] for name in reversed(SERIES_COLUMNS))])
    path = write_rows(tmp_path / "openface_like.csv", header, rows)
    assert_same_series(read_series_csv(path), series)


def test_reader_without_frame_and_time_uses_row_number_and_fps(tmp_path):
    au_columns = list(SERIES_COLUMNS[2:])
    path = write_rows(tmp_path / "bare.csv", au_columns, [[1.0] * len(au_columns)] * 3)
    series = read_series_csv(path, fps=25.0)
    np.testing.assert_array_equal(series.frames, [0, 1, 2])
    np.testing.assert_allclose(series.time_s, [0.0, 0.04, 0.08])


def test_reader_accepts_a_spreadsheet_export_with_bom_quotes_and_blank_lines(tmp_path):
    series = make_series(2)
    text = write_series_csv(tmp_path / "a.csv", series).read_text(encoding="utf-8")
    header, first, second = text.splitlines()
    quoted = ",".join(f'" {name} "' for name in header.split(","))
    path = tmp_path / "export.csv"
    path.write_text("\ufeff" + "\n".join([quoted, first, "", second, "", ""]), encoding="utf-8")
    assert_same_series(read_series_csv(path), series)


def test_reader_rejects_a_required_column_given_twice(tmp_path):
    header = [*SERIES_COLUMNS, "left_AU9"]
    path = write_rows(tmp_path / "twice.csv", header, [[0, 0.0, *([1.0] * (2 * N_AUS + 1))]])
    with pytest.raises(InputError, match="'left_AU9' appears twice"):
        read_series_csv(path)


def test_reader_lists_every_missing_column_by_name(tmp_path):
    header = [c for c in SERIES_COLUMNS if c not in ("left_AU5", "right_AU26")]
    path = write_rows(tmp_path / "short.csv", header, [[0] * len(header)])
    with pytest.raises(InputError) as info:
        read_series_csv(path)
    message = str(info.value)
    assert "short.csv" in message and "left_AU5" in message and "right_AU26" in message
    assert "left_AU1," not in message.split("missing")[1].split(".")[0]  # lists only what is missing


def test_reader_names_line_and_column_of_a_value_that_is_not_a_number(tmp_path):
    path = write_series_csv(tmp_path / "au_series.csv", make_series(4))
    lines = path.read_text(encoding="utf-8").splitlines()
    cells = lines[3].split(",")
    cells[SERIES_COLUMNS.index("right_AU4")] = "high"
    lines[3] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"au_series\.csv, line 4, column right_AU4: 'high' is not a number"):
        read_series_csv(path)


@pytest.mark.parametrize(
    ("cell", "problem"),
    [
        ("", "empty cell"),
        ("nan", "not a finite number"),
        ("5.5", "outside the AU intensity scale"),
        ("-0.1", "outside"),
    ],
)
def test_reader_rejects_empty_nan_and_out_of_scale_cells(tmp_path, cell, problem):
    row = [0, 0.0, *([1.0] * (2 * N_AUS))]
    row[SERIES_COLUMNS.index("left_AU12")] = cell
    path = write_rows(tmp_path / "bad.csv", list(SERIES_COLUMNS), [[0, 0.0, *([1.0] * (2 * N_AUS))], row])
    with pytest.raises(InputError, match=f"line 3, column left_AU12: .*{problem}"):
        read_series_csv(path)


def test_reader_rejects_a_row_with_missing_fields(tmp_path):
    path = write_rows(tmp_path / "ragged.csv", list(SERIES_COLUMNS), [[0, 0.0, 1.0, 2.0]])
    with pytest.raises(InputError, match="line 2: 4 fields but the header"):
        read_series_csv(path)


def test_reader_rejects_an_empty_file(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("\n\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"empty\.csv is empty"):
        read_series_csv(path)


def test_reader_reports_a_missing_file(tmp_path):
    with pytest.raises(InputError, match=r"nowhere\.csv does not exist"):
        read_series_csv(tmp_path / "nowhere.csv")


def test_reader_hints_at_the_separator_of_a_semicolon_file(tmp_path):
    path = tmp_path / "excel.csv"
    path.write_text(";".join(SERIES_COLUMNS) + "\n", encoding="utf-8")
    with pytest.raises(InputError, match="comma-separated"):
        read_series_csv(path)


# -- report.html --------------------------------------------------------------------------------


class TagChecker(HTMLParser):
    """Collects tags and attributes and checks that every opened element is closed in order."""

    VOID = {"meta", "br", "hr", "img", "input", "link", "col", "area", "base", "source", "wbr"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.problems: list[str] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.problems.append(f"</{tag}> closes {self.stack[-1:]} at {self.getpos()}")
        else:
            self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


def parse(page: str) -> TagChecker:
    checker = TagChecker()
    checker.feed(page)
    checker.close()
    assert checker.problems == []
    assert checker.stack == []
    return checker


def assert_self_contained(checker: TagChecker) -> None:
    for tag, attrs in checker.tags:
        assert tag not in ("script", "link", "iframe", "img"), tag
        for name, value in attrs.items():
            if name in ("src", "href", "xlink:href", "action") and value:
                assert not value.startswith(("http://", "https://", "//")), (tag, name, value)
            assert "url(http" not in (value or ""), (tag, name, value)


def test_html_is_well_formed_self_contained_and_names_the_video():
    page = render_report_html(make_report(), make_series())
    checker = parse(page)
    assert_self_contained(checker)
    assert "http://" not in page and "https://" not in page
    assert "patient &lt;07&gt;.mp4" in page  # escaped, not markup
    assert "<07>" not in page
    assert "Proxy AU estimator" in page


def test_html_lists_the_analysis_warnings_escaped():
    report = make_report()
    report["warnings"] = ["decoding stopped at frame 412 (<EOF>): file truncated or corrupt"]
    text = "".join(parse(render_report_html(report, make_series())).text)
    assert "Warnings from the analysis" in text
    assert "decoding stopped at frame 412 (<EOF>): file truncated or corrupt" in text  # parsed back from &lt;EOF&gt;


def test_html_counts_the_frames_left_out_for_pose_and_while_the_reference_waited():
    report = make_report()
    report["counts"].update(frames_before_reference=27, keyframes_pose_gated=8, rereferenced=1)
    text = " ".join(" ".join(parse(render_report_html(report, make_series())).text).split())
    assert "Frames before the neutral reference (waiting for the face to turn to the camera; not measured) 27" in text
    assert "Keyframes turned too far from the reference's pose (not measured) 8" in text
    assert "New neutral references" in text
    # counters the analysis did not record get no row (a face that faced the camera throughout)
    assert "taken with the head turned" not in text and "beyond the pose limit" not in text
    plain = " ".join(" ".join(parse(render_report_html(make_report(), make_series())).text).split())
    assert "Frames before the neutral reference" not in plain


def test_html_has_one_plot_per_au_with_both_sides_and_the_threshold():
    checker = parse(render_report_html(make_report(), make_series()))
    plots = [
        attrs["data-au"] for tag, attrs in checker.tags if tag == "figure" and "au-plot" in (attrs.get("class") or "")
    ]
    assert plots == list(AU_NAMES)
    palette = load_palette()
    lines = [(attrs.get("class"), attrs.get("stroke")) for tag, attrs in checker.tags if tag == "polyline"]
    assert lines.count(("left", palette.left)) == N_AUS and lines.count(("right", palette.right)) == N_AUS
    dashed = [attrs for tag, attrs in checker.tags if tag == "line" and attrs.get("stroke-dasharray")]
    assert len(dashed) >= N_AUS


def test_html_shows_both_difference_matrices_and_marks_the_synkinesis_pair():
    page = render_report_html(make_report(), make_series())
    checker = parse(page)
    text = "".join(checker.text)
    assert "CM right-left|left" in text and "CM left-right|right" in text
    heatmaps = [attrs["data-matrix"] for tag, attrs in checker.tags if tag == "figure" and "data-matrix" in attrs]
    assert heatmaps == ["right-left|left", "left-right|right"]
    assert len([1 for tag, attrs in checker.tags if tag == "rect" and attrs.get("class") == "synkinesis"]) == 1
    assert "+0.42" in text  # value written in the outlined cell and in the list
    assert "AU5 | AU20 in CM right-left|left, +0.42" in text
    assert "when left AU20 is active, right AU5 is active more often than left AU5" in text
    assert "Synkinesis detected: 1 pair" in text
    dimmed = [attrs for tag, attrs in checker.tags if tag == "rect" and attrs.get("fill-opacity") == "0.3"]
    assert len(dimmed) == 2 * (N_AUS + 1) + 1  # diagonal + AU6|AU12 in both matrices, plus the legend swatch
    assert "url(#hatch-0)" in page and "url(#hatch-1)" in page  # the null cells


def test_html_names_the_weaker_side_of_each_region_in_words():
    text = "".join(parse(render_report_html(make_report(), make_series())).text)
    assert "Eyebrows: right side weaker (ΔAM +2.10)" in text
    assert "Eyes: left side weaker (ΔAM -0.70)" in text
    assert "Mouth: no obvious difference (ΔAM +0.20)" in text


def test_html_renders_with_no_keyframes_and_null_everywhere():
    page = render_report_html(null_report(), empty_series())
    checker = parse(page)
    assert_self_contained(checker)
    text = "".join(checker.text)
    assert "No keyframes" in text
    assert text.count("no keyframes") == N_AUS + 1  # each AU plot and the timeline
    assert "No synkinesis detected" in text
    assert "not measured" in text
    assert "Proxy" not in text
    assert "NaN" not in page and "None" not in page


def test_html_survives_a_minimal_report_with_nan_values():
    report = {"delta_am": {"AU1": float("nan")}, "regions": {"mouth": {"delta_am": float("nan")}}}
    checker = parse(render_report_html(report, make_series(2)))
    assert "not measured" in " ".join(checker.text)


# -- write_report -------------------------------------------------------------------------------


def test_write_report_writes_three_files_and_json_equal_to_the_input(tmp_path):
    report = make_report()
    report["delta_am"]["AU26"] = float("nan")
    report["counts"]["keyframes"] = np.int64(40)
    report["cooccurrence_mask"] = np.array(report["cooccurrence_mask"])
    series = make_series()

    paths = write_report(tmp_path / "out" / "run1", report, series)

    assert set(paths) == {"json", "csv", "html"}
    assert sorted(p.name for p in (tmp_path / "out" / "run1").iterdir()) == [
        "au_series.csv",
        "report.html",
        "report.json",
    ]
    loaded = json.loads(paths["json"].read_text(encoding="utf-8"))
    expected = copy.deepcopy(make_report())
    expected["delta_am"]["AU26"] = None
    assert loaded == expected
    assert_same_series(read_series_csv(paths["csv"]), series)
    parse(paths["html"].read_text(encoding="utf-8"))


def test_write_report_replaces_previous_files_and_leaves_no_temporary_ones(tmp_path):
    write_report(tmp_path, make_report(), make_series())
    paths = write_report(tmp_path, null_report(), empty_series())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["au_series.csv", "report.html", "report.json"]
    assert json.loads(paths["json"].read_text(encoding="utf-8"))["counts"]["keyframes"] == 0


def test_write_report_writes_nothing_when_the_series_cannot_be_written(tmp_path):
    series = make_series(3)
    series.left[0, 0] = math.inf
    with pytest.raises(ValueError):
        write_report(tmp_path / "out", make_report(), series)
    assert not (tmp_path / "out").exists()


def test_eye_closure_and_region_movement_columns_round_trip(tmp_path):
    from stream.report.series import read_series_csv, write_series_csv

    n = 6
    rng = np.random.default_rng(4)
    series = AUSeries(
        np.arange(n),
        np.arange(n) / 30.0,
        rng.uniform(0, 5, (n, 12)),
        rng.uniform(0, 5, (n, 12)),
        closure=rng.uniform(0, 5, (n, 2)),
        movement=rng.uniform(0, 5, (n, 2, 3)),
    )
    path = write_series_csv(tmp_path / "s.csv", series)
    header = path.read_text().splitlines()[0].split(",")
    assert header[-8:] == [
        "left_AU43",
        "right_AU43",
        "left_move_eyebrows",
        "left_move_eyes",
        "left_move_mouth",
        "right_move_eyebrows",
        "right_move_eyes",
        "right_move_mouth",
    ]
    back = read_series_csv(path)
    np.testing.assert_allclose(back.closure, series.closure, atol=1e-4)
    np.testing.assert_allclose(back.movement, series.movement, atol=1e-4)
    # without the extra columns the series has neither (a series from another tool)
    plain = AUSeries(series.frames, series.time_s, series.left, series.right)
    back = read_series_csv(write_series_csv(tmp_path / "p.csv", plain))
    assert back.closure is None and back.movement is None
