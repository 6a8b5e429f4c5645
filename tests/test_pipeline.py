"""The whole offline pipeline on real face videos: CLI, counts, bad inputs, ground truth by construction."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from stream.cli import main
from stream.config import AnalysisConfig
from stream.decode import VideoFile
from stream.pipeline import Pipeline
from stream.types import Frame

# Tests that run a whole video through the models are marked slow; the exit-code checks and the
# one-still check stay in the default run.


@pytest.fixture(scope="module")
def detector():
    from stream.face.mtcnn import MTCNNDetector

    return MTCNNDetector()


@pytest.mark.slow
def test_analyze_writes_the_three_files_for_a_real_face(shared_data, tmp_path: Path, capsys):
    out = tmp_path / "report"
    assert main(["analyze", str(shared_data / "single_face.mp4"), "--out", str(out)]) == 0
    assert {p.name for p in out.iterdir()} == {"report.json", "au_series.csv", "report.html"}
    report = json.loads((out / "report.json").read_text())
    counts = report["counts"]
    assert counts["frames"] == 72
    assert counts["frames_without_face"] <= 72 * 0.1  # the face is found in most frames
    assert 5 < counts["keyframes"] < 72  # fewer keyframes than frames, more than a handful
    assert report["aus"][0] == "AU1" and len(report["aus"]) == 12
    assert report["estimator_is_proxy"] is True
    rows = (out / "au_series.csv").read_text().strip().splitlines()
    assert len(rows) == counts["keyframes"] + 1
    values = np.array([[float(v) for v in row.split(",")[2:]] for row in rows[1:]])
    # 24 AU values, eye closure per side, region movement per side (docs/formats.md)
    assert values.shape == (counts["keyframes"], 32) and values.min() >= 0
    assert values[:, :26].max() <= 5  # AUs and eye closure stay on the 0..5 scale
    assert values[:, :24].max() > 1.0  # the smile registers
    assert rows[0].split(",")[-8:-6] == ["left_AU43", "right_AU43"]
    assert findings_regions(report) == {"eyebrows", "eyes", "mouth"}
    assert "not_enough_keyframes" in {r["status"] for r in report["findings"]["regions"].values()}  # 2.4 s
    assert "report:" in capsys.readouterr().out


def findings_regions(report: dict) -> set[str]:
    return set(report["findings"]["regions"])


@pytest.mark.slow
def test_au_csv_gives_the_same_statistics_as_the_video_run(shared_data, tmp_path: Path):
    assert main(["analyze", str(shared_data / "single_face.mp4"), "--out", str(tmp_path / "a")]) == 0
    assert main(["analyze", "--au-csv", str(tmp_path / "a" / "au_series.csv"), "--out", str(tmp_path / "b")]) == 0
    a = json.loads((tmp_path / "a" / "report.json").read_text())
    b = json.loads((tmp_path / "b" / "report.json").read_text())
    for key in ("active_mean", "delta_am", "regions", "cooccurrence_difference", "synkinesis"):
        assert _close(a[key], b[key]), key


def _close(x, y, tol: float = 1e-3) -> bool:
    if isinstance(x, dict):
        return x.keys() == y.keys() and all(_close(x[k], y[k], tol) for k in x)
    if isinstance(x, list):
        return len(x) == len(y) and all(_close(p, q, tol) for p, q in zip(x, y))
    if isinstance(x, float) and isinstance(y, (int, float)):
        return abs(x - y) <= tol
    return x == y


@pytest.mark.slow
def test_video_without_a_face_fails_clearly(shared_data, tmp_path: Path, capsys):
    assert main(["analyze", str(shared_data / "no_face.mp4"), "--out", str(tmp_path / "r")]) == 3
    err = capsys.readouterr().err
    assert re.search(r"no face found in (\d+) of \1 frames", err) and "no_face.mp4" in err


@pytest.mark.slow
def test_face_leaving_the_picture_is_counted(shared_data, detector):
    pipeline = Pipeline(AnalysisConfig(), detector=detector)
    with VideoFile(shared_data / "face_noface.mov") as video:
        for frame in video.frames():
            pipeline.process(frame)
    c = pipeline.counts
    assert c.frames == 169 and 0 < c.frames_without_face < c.frames and c.keyframes > 3


def test_several_faces_take_the_largest_and_are_counted(shared_data, detector):
    pipeline = Pipeline(AnalysisConfig(), detector=detector)
    with VideoFile(shared_data / "multi_face.jpg") as still:
        for frame in still.frames():
            result, _ = pipeline.process(frame)
    assert result.n_faces >= 4 and pipeline.counts.frames_with_several_faces == 1
    assert pipeline.counts.keyframes == 1


@pytest.mark.parametrize("name, content, code", [("missing.mp4", None, 2), ("notes.mp4", b"not a video\n" * 20, 2)])
def test_bad_inputs_exit_non_zero_with_the_file_named(tmp_path: Path, capsys, name, content, code):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    assert main(["analyze", str(path), "--out", str(tmp_path / "r")]) == code
    assert name in capsys.readouterr().err


def test_bad_option_values_are_refused(shared_data, tmp_path: Path, capsys):
    assert (
        main(["analyze", str(shared_data / "single_face.mp4"), "--out", str(tmp_path), "--cooccurrence-threshold", "2"])
        == 2
    )
    assert "co-occurrence threshold" in capsys.readouterr().err


# --- ground truth by construction -----------------------------------------------------------------
# d9.mp4: a man raises his brows, closes his eyes and smiles. Freezing the patient's right half
# (the image's left half in this unmirrored video) on a neutral frame makes his right side unable to
# move, like a complete palsy: the report must name the right side weaker. Mirroring that video
# moves the frozen half to the patient's left.


@pytest.fixture(scope="module")
def d9_frames(shared_data, detector) -> tuple[list[Frame], int]:
    with VideoFile(shared_data / "d9.mp4") as video:
        frames = [f for f in video.frames() if f.index % 3 == 0]
    nose_x = detector.detect(frames[0].image).face.landmarks[2, 0]
    return frames, int(round(nose_x))


def _regions(frames: list[Frame], detector) -> dict[str, tuple[float, str | None]]:
    pipeline = Pipeline(AnalysisConfig(), detector=detector)
    for frame in frames:
        pipeline.process(frame)
    assert pipeline.counts.keyframes > 20
    return {name: (r.delta_am, r.weaker_side) for name, r in pipeline.symptoms().regions.items()}


@pytest.fixture(scope="module")
def d9_results(d9_frames, detector):
    frames, midline = d9_frames
    neutral = frames[0].image

    def frozen(f: Frame) -> Frame:
        image = f.image.copy()
        image[:, :midline] = neutral[:, :midline]  # the patient's right half stops moving
        return Frame(f.index, f.time_s, image)

    frozen_frames = [frozen(f) for f in frames]
    mirrored = [Frame(f.index, f.time_s, np.ascontiguousarray(f.image[:, ::-1])) for f in frozen_frames]
    return {
        "original": _regions(frames, detector),
        "frozen_right": _regions(frozen_frames, detector),
        "frozen_left": _regions(mirrored, detector),
    }


@pytest.mark.slow
def test_frozen_right_half_names_the_right_side_weaker(d9_results):
    for region, (delta, weaker) in d9_results["frozen_right"].items():
        assert weaker == "right" and delta > 0, (region, delta)


@pytest.mark.slow
def test_mirrored_frozen_video_names_the_left_side_weaker(d9_results):
    for region, (delta, weaker) in d9_results["frozen_left"].items():
        assert weaker == "left" and delta < 0, (region, delta)


@pytest.mark.slow
def test_unmodified_face_is_more_symmetric_than_the_frozen_ones(d9_results):
    total = {k: sum(abs(d) for d, _ in v.values()) for k, v in d9_results.items()}
    assert total["original"] < 0.4 * total["frozen_right"]
    assert total["original"] < 0.4 * total["frozen_left"]
    for region in ("eyebrows", "eyes", "mouth"):
        orig = abs(d9_results["original"][region][0])
        assert orig < abs(d9_results["frozen_right"][region][0]) and orig < abs(d9_results["frozen_left"][region][0])


@pytest.mark.slow
def test_a_real_wink_of_the_right_eye_reads_on_the_patients_right(shared_data, detector):
    """d3.mp4: the woman winks with her own right eye in frames 35-46 (../shared/notes/data.md)."""
    pipeline = Pipeline(AnalysisConfig(helpers=0), detector=detector)
    au6_left, au6_right = [], []
    with VideoFile(shared_data / "d3.mp4") as video:
        for frame in video.frames():
            if frame.index > 50:
                break
            _, analysed = pipeline.process(frame)
            if analysed and 33 <= frame.index <= 48:
                au6_left.append(analysed.estimate.left[4])  # AU6 cheek raiser: the lower lid and cheek lift
                au6_right.append(analysed.estimate.right[4])
    assert len(au6_right) >= 2
    assert max(au6_right) > 1.0 and max(au6_left) < 0.5


@pytest.mark.slow
def test_bench_command_prints_per_stage_figures(shared_data, capsys):
    assert main(["bench", str(shared_data / "single_face.mp4"), "--frames", "20"]) == 0
    out = capsys.readouterr().out
    for needle in ("machine:", "| detect |", "| keyframe_filter |", "frames/s", "real-time factor", "peak RSS"):
        assert needle in out


def _run_first_seconds(pipeline: Pipeline, clip: Path, seconds: float) -> None:
    with VideoFile(clip) as video:
        for frame in video.frames():
            if frame.time_s > seconds:
                break
            pipeline.process(frame)


def test_the_neutral_reference_waits_for_a_keyframe_that_faces_the_camera(shared_data):
    from stream.symptoms.material import material_warnings

    clip = shared_data / "healthy" / "vr_5.mp4"  # a talking head that starts turned by about 14 degrees
    waiting = Pipeline(AnalysisConfig())
    _run_first_seconds(waiting, clip, 2.5)
    counts = waiting.counts.as_dict()
    assert counts["frames_before_reference"] > 0
    assert "reference_not_frontal" not in counts
    assert waiting.estimates[0].time_s >= 0.9  # the head first faces the camera (|yaw index| <= 0.06) at 1.08 s
    assert not [w for w in material_warnings(counts, len(waiting.estimates)) if "reference" in w]

    # without the condition the first keyframe is the reference, turned as it is
    at_once = Pipeline(AnalysisConfig(reference_max_yaw=1.0))
    _run_first_seconds(at_once, clip, 2.5)
    assert "frames_before_reference" not in at_once.counts.as_dict()
    assert at_once.estimates[0].time_s < 0.2

    # no keyframe faces the camera closely enough: after the wait the next one is taken, with a warning
    never = Pipeline(AnalysisConfig(reference_max_yaw=0.001, reference_wait_s=0.5))
    _run_first_seconds(never, clip, 2.5)
    counts = never.counts.as_dict()
    assert counts["reference_not_frontal"] == 1 and counts["frames_before_reference"] > 0
    assert 0.5 <= never.estimates[0].time_s < 0.6  # the first frame once the wait is over
    warnings = material_warnings(counts, len(never.estimates))
    assert any("reference was taken with the head turned" in w for w in warnings), warnings


def test_a_still_turned_face_is_measured_once_the_reference_wait_is_over(shared_data):
    # vr_2 hardly moves and never faces the camera closely enough (its yaw index stays near -0.07 to
    # -0.1): the keyframe filter keeps almost nothing after its first frame, so the wait must not
    # spend that keyframe; the frame at the end of the wait is the reference and is measured
    pipeline = Pipeline(AnalysisConfig())
    _run_first_seconds(pipeline, shared_data / "healthy" / "vr_2.mp4", 5.0)
    counts = pipeline.counts.as_dict()
    assert counts["reference_not_frontal"] == 1
    assert pipeline.estimates, counts
    assert 2.0 <= pipeline.estimates[0].time_s < 2.1
