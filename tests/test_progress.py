"""The progress line: drawn on a terminal, silent otherwise."""

from __future__ import annotations

import io

from stream.progress import Progress


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_shows_frames_keyframes_and_eta_on_a_terminal():
    out = FakeTTY()
    p = Progress(total=100, stream=out, label="clip.mp4 ")
    p.update(50, 7, force=True)
    p.close(100, 12)
    text = out.getvalue()
    assert "clip.mp4" in text and "50/100 frames" in text and "7 keyframes" in text and "ETA" in text
    assert "100/100 frames" in text and "12 keyframes" in text and text.endswith("\n")


def test_progress_is_silent_when_not_a_terminal():
    out = io.StringIO()  # a pipe or a log file
    p = Progress(total=100, stream=out)
    p.update(50, 7, force=True)
    p.close(100, 12)
    assert out.getvalue() == ""


def test_unknown_total_still_reports_counts():
    out = FakeTTY()
    Progress(total=None, stream=out).close(30, 4)
    assert "30 frames, 4 keyframes" in out.getvalue()
