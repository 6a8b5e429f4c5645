"""Terminal progress line: frames decoded, keyframes, rate and ETA. Silent when not a TTY."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    def __init__(self, total: int | None, stream: TextIO | None = None, enabled: bool | None = None, label: str = "") -> None:
        self.total = total
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.label = label
        self._t0 = time.monotonic()
        self._last_draw = 0.0
        self._width = 0

    def update(self, frames: int, keyframes: int, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._last_draw < 0.2:
            return
        self._last_draw = now
        elapsed = max(now - self._t0, 1e-6)
        rate = frames / elapsed
        if self.total:
            frac = min(frames / self.total, 1.0)
            filled = int(frac * 24)
            bar = "#" * filled + "-" * (24 - filled)
            eta = (self.total - frames) / rate if rate > 0 else float("inf")
            eta_txt = f"ETA {eta:5.1f}s" if eta != float("inf") else "ETA   ?"
            line = f"{self.label}[{bar}] {frames}/{self.total} frames, {keyframes} keyframes, {rate:5.1f} fps, {eta_txt}"
        else:
            line = f"{self.label}{frames} frames, {keyframes} keyframes, {rate:5.1f} fps"
        pad = max(0, self._width - len(line))
        self._width = len(line)
        self.stream.write("\r" + line + " " * pad)
        self.stream.flush()

    def close(self, frames: int, keyframes: int) -> None:
        if not self.enabled:
            return
        self.update(frames, keyframes, force=True)
        self.stream.write("\n")
        self.stream.flush()
