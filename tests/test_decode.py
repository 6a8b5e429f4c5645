"""Video decoding: real files, odd cases and bad inputs, each with a clear error."""

from __future__ import annotations

import shutil
import subprocess
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from stream.decode import VideoFile
from stream.errors import VideoDecodeError


def test_real_video_frames_are_rgb_with_increasing_times(shared_data):
    with VideoFile(shared_data / "single_face.mp4") as video:
        frames = list(video.frames())
        info = video.info
    assert len(frames) == 72 and info.width == 640 and info.height == 360
    assert frames[0].image.shape == (360, 640, 3) and frames[0].image.dtype == np.uint8
    times = [f.time_s for f in frames]
    assert times[0] == 0.0 and all(b > a for a, b in zip(times, times[1:]))
    assert times[-1] == pytest.approx(71 / 30, abs=1e-3)


def test_variable_frame_rate_times_come_from_timestamps(tmp_path: Path):
    path = tmp_path / "vfr.mkv"
    pts_ms = [0, 40, 50, 200, 210, 500]
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264")
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        for k, t in enumerate(pts_ms):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 20 * k, np.uint8), format="rgb24")
            frame.pts, frame.time_base = t, Fraction(1, 1000)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    with VideoFile(path) as video:
        times = [f.time_s for f in video.frames()]
    np.testing.assert_allclose(times, np.array(pts_ms) / 1000, atol=2e-3)


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs the ffmpeg command to write rotation metadata")
def test_rotation_metadata_turns_frames_upright_like_a_player(shared_data, tmp_path: Path):
    rotated = tmp_path / "rot.mp4"
    subprocess.run(
        [
            "ffmpeg",
            "-loglevel",
            "error",
            "-y",
            "-i",
            str(shared_data / "single_face.mp4"),
            "-c",
            "copy",
            "-metadata:s:v:0",
            "rotate=90",
            str(rotated),
        ],
        check=True,
    )
    shown = tmp_path / "shown.png"  # what ffmpeg's player logic (autorotate) displays
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(rotated), "-frames:v", "1", str(shown)], check=True)
    import cv2

    expected = cv2.cvtColor(cv2.imread(str(shown)), cv2.COLOR_BGR2RGB)
    with VideoFile(rotated) as video:
        frame = next(video.frames()).image
        assert video.info.rotation == 90
    assert frame.shape == (640, 360, 3) == expected.shape  # portrait now
    np.testing.assert_array_equal(frame, expected)


def test_missing_file(tmp_path: Path):
    with pytest.raises(VideoDecodeError, match="does not exist"):
        VideoFile(tmp_path / "nope.mp4")


def test_empty_file(tmp_path: Path):
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(VideoDecodeError, match="empty"):
        VideoFile(tmp_path / "empty.mp4")


def test_text_file_is_not_a_video(tmp_path: Path):
    path = tmp_path / "notes.mp4"
    path.write_text("patient notes, not a video\n" * 50)
    with pytest.raises(VideoDecodeError, match="notes.mp4") as err:
        VideoFile(path)
    assert "not a video" in str(err.value)


def test_truncated_file_is_refused_with_its_name(shared_data, tmp_path: Path):
    path = tmp_path / "cut.mp4"
    path.write_bytes((shared_data / "single_face.mp4").read_bytes()[:60_000])
    with pytest.raises(VideoDecodeError, match="cut.mp4"):
        with VideoFile(path) as video:
            list(video.frames())


def test_audio_only_file_says_so(tmp_path: Path):
    path = tmp_path / "voice.m4a"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=16000)
        for k in range(10):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 16000, k * 1024
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    with pytest.raises(VideoDecodeError, match="no video stream") as err:
        VideoFile(path)
    assert "audio" in str(err.value)
