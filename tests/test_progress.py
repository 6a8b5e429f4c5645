"""The progress line: drawn on a terminal, silent otherwise; one class for every long job."""

from __future__ import annotations

import io

from stream.progress import Progress


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_shows_count_note_and_eta_on_a_terminal():
    out = FakeTTY()
    p = Progress("clip.mp4", total=100, stream=out, unit="frames")
    p.update(50, "7 keyframes", force=True)
    p.close("12 keyframes", done=100)
    text = out.getvalue()
    assert "clip.mp4 [" in text and "50/100 frames" in text and "7 keyframes" in text and "ETA" in text
    assert "100/100 frames" in text and "12 keyframes" in text and text.endswith("\n")


def test_progress_is_silent_when_not_a_terminal_but_says_lines():
    out = io.StringIO()  # a pipe or a log file
    p = Progress("evaluate", total=100, stream=out)
    p.update(50, force=True)
    p.close()
    assert out.getvalue() == ""
    p.say("labels of SN001 changed")
    assert out.getvalue() == "labels of SN001 changed\n"


def test_enabled_draws_on_a_pipe_and_close_defaults_to_the_total():
    out = io.StringIO()
    p = Progress("ovpm epoch 1/2", total=8, enabled=True, stream=out)
    p.update(4, "loss 1.234", force=True)
    p.say("resumed")  # starts on a fresh line below the bar
    p.close("loss 0.5")
    text = out.getvalue()
    assert "4/8" in text and "loss 1.234" in text and "\nresumed\n" in text and "8/8" in text


def test_unknown_total_still_reports_counts():
    out = FakeTTY()
    Progress("", total=None, stream=out, unit="frames").close("4 keyframes", done=30)
    assert "30 frames" in out.getvalue() and "4 keyframes" in out.getvalue()
