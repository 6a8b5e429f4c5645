"""One terminal progress line for every long job (video analysis, DEM data preparation, training, evaluation).

A bar when the total is known, the count, the rate, the time left and a note. Drawn only on a terminal
(a pipe or a log file stays clean) unless ``enabled`` says otherwise; ``say`` prints a line either way.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

BAR_WIDTH = 24
MIN_REDRAW_S = 0.2  # a redraw per frame would cost more than the frame on a slow terminal


class Progress:
    """``label``: what runs; ``total``: how many steps (None: unknown); ``unit``: what a step is ("frames").

    ``enabled``: True draws, False stays silent, None (default) draws when ``stream`` is a terminal.
    ``stream`` defaults to stderr, looked up at construction (tests capture stderr).
    """

    def __init__(
        self,
        label: str,
        total: int | None,
        enabled: bool | None = None,
        stream: TextIO | None = None,
        unit: str = "",
    ) -> None:
        self.label = label
        self.total = total if total and total > 0 else None
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.unit = unit
        self._t0 = time.monotonic()
        self._last_draw = 0.0
        self._width = 0
        self._drawn = False

    def update(self, done: int, note: str = "", force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._last_draw < MIN_REDRAW_S:
            return
        self._last_draw = now
        line = self._line(done, note, now)
        self.stream.write("\r" + line + " " * max(0, self._width - len(line)))
        self.stream.flush()
        self._width = len(line)
        self._drawn = True

    def say(self, text: str) -> None:
        """A line printed whether or not the bar is shown (the bar is redrawn below it)."""
        self.stream.write(("\n" if self._drawn else "") + text + "\n")
        self.stream.flush()
        self._drawn = False
        self._width = 0

    def close(self, note: str = "", done: int | None = None) -> None:
        """The final state (``done`` defaults to the total) and a newline."""
        if not self.enabled:
            return
        self.update((self.total or 0) if done is None else done, note, force=True)
        self.stream.write("\n")
        self.stream.flush()
        self._drawn = False
        self._width = 0

    def _line(self, done: int, note: str, now: float) -> str:
        unit = f" {self.unit}" if self.unit else ""
        rate = done / max(now - self._t0, 1e-6)
        head = f"{self.label} " if self.label else ""
        if self.total:
            filled = int(min(done / self.total, 1.0) * BAR_WIDTH)
            left = (self.total - done) / rate if rate > 0 else float("inf")
            eta = f"ETA {left:5.1f}s" if left != float("inf") else "ETA   ?"
            text = f"{head}[{'#' * filled:<{BAR_WIDTH}}] {done}/{self.total}{unit}, {rate:5.1f}/s, {eta}"
        else:
            text = f"{head}{done}{unit}, {rate:5.1f}/s"
        return f"{text}, {note}" if note else text
