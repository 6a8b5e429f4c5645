"""The speed plumbing of ``analyze`` changes no number: the threaded run equals the plain loop,
errors in the analysis thread surface, and large frames are scaled down while decoding."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from stream.analyze import _InOrderWorker, analyze_video
from stream.config import AnalysisConfig
from stream.decode import VideoFile
from stream.pipeline import Pipeline

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _clip(name: str) -> Path:
    path = DATA / name
    if not path.exists():
        pytest.skip(f"{path} not present")
    return path


def test_threaded_analysis_equals_the_plain_loop(tmp_path: Path) -> None:
    clip = _clip("single_face.mp4")
    threaded = analyze_video(clip, tmp_path, AnalysisConfig())
    pipeline = Pipeline(AnalysisConfig())
    with VideoFile(clip) as video:
        for frame in video.frames():
            pipeline.process(frame)
    plain = pipeline.series()
    assert len(threaded.series) == len(plain) > 0
    np.testing.assert_array_equal(threaded.series.frames, plain.frames)
    np.testing.assert_array_equal(threaded.series.left, plain.left)
    np.testing.assert_array_equal(threaded.series.right, plain.right)
    np.testing.assert_array_equal(threaded.series.movement, plain.movement)
    timings = json.loads((tmp_path / "report.json").read_text())["timings_ms"]
    assert timings["startup"]["total_ms"] > 0 and timings["detect"]["cpu_ms"] > 0


def test_worker_keeps_order_and_raises_the_first_error() -> None:
    done: list[int] = []
    with _InOrderWorker(done.append, depth=2) as worker:
        for i in range(50):
            worker.put(i)
    assert done == list(range(50))

    def fail_at_3(i: int) -> None:
        if i == 3:
            raise RuntimeError("boom at 3")
        done.append(i)

    done.clear()
    with pytest.raises(RuntimeError, match="boom at 3"):
        with _InOrderWorker(fail_at_3, depth=2) as worker:
            for i in range(1000):
                worker.put(i)
    assert done == [0, 1, 2]


def test_large_frames_are_scaled_down_while_decoding(tmp_path: Path) -> None:
    clip = _clip("face_noface.mov")  # 960x540
    with VideoFile(clip, max_side=480) as video:
        first = next(video.frames()).image
    assert first.shape == (270, 480, 3)
    with VideoFile(clip) as video:
        assert next(video.frames()).image.shape == (540, 960, 3)
    with pytest.raises(ValueError, match="max_frame_side"):
        AnalysisConfig(max_frame_side=100).validate()


@pytest.mark.slow
def test_bench_whole_times_the_command_in_a_fresh_process() -> None:
    clip = _clip("single_face.mp4")
    out = subprocess.run(
        [sys.executable, "-m", "stream", "bench", str(clip), "--whole"], capture_output=True, text=True, check=True
    ).stdout
    assert "frames per CPU-second" in out and "exit code 0; 72 frames" in out
    row = next(line for line in out.splitlines() if line.startswith("| ") and "**" in line)
    fpc = float(row.split("**")[1])
    assert fpc > 0
