"""Stream health: what the server counts about a session's frames, its rates, and the alert it shows.

Counts continue across restarts (they are stored with the session) and are shown under "stream
health" on the dashboards; ``Alert`` is what the dashboards show above them when something is wrong.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from stream.session.jsonsafe import JSONObject

AlertCode = Literal["stalled", "analysis_stopped", "analysis_restarted", "storage"]


@dataclass(frozen=True)
class Alert:
    """What the dashboards show above the stream health when something is wrong."""

    code: AlertCode
    message: str

    def to_json(self) -> JSONObject:
        return {"code": self.code, "message": self.message}


@dataclass
class Health:
    """Frame accounting of one session, over all its runs (mutated by the event loop only)."""

    frames_received: int = 0  # frames decoded off the patient's track
    frames_analysed: int = 0  # frames the detector/tracker looked at
    keyframes: int = 0  # keyframes analysed (AU values computed) and stored
    keyframes_dropped: int = 0  # oldest waiting keyframe dropped because the queue was full
    frames_dropped_storage: int = 0  # not analysed: the database could not be written at the time
    connections: int = 0

    @classmethod
    def from_counts(cls, counts: Mapping[str, object], keyframes: int) -> Health:
        """The health a stored session had when its counts were last saved."""

        def count(key: str) -> int:
            value = counts.get(key, 0)
            return int(value) if isinstance(value, (int, float)) else 0

        received, dropped_storage = count("frames_received"), count("frames_dropped_storage")
        return cls(
            frames_received=received,
            frames_analysed=received - count("frames_stale_dropped") - dropped_storage,
            keyframes=keyframes,
            keyframes_dropped=count("keyframes_dropped"),
            frames_dropped_storage=dropped_storage,
        )

    @property
    def frames_stale_dropped(self) -> int:
        """Frames overwritten in the latest-frame slot before the models looked."""
        return self.frames_received - self.frames_analysed - self.frames_dropped_storage

    def counts(self) -> dict[str, int]:
        """The stored part of the health (with the pipeline's counts in the session record)."""
        return {
            "frames_received": self.frames_received,
            "frames_stale_dropped": self.frames_stale_dropped,
            "frames_dropped_storage": self.frames_dropped_storage,
            "keyframes_dropped": self.keyframes_dropped,
        }


class RateMeter:
    """Frames and keyframes per second over the last ~3 s (None until the samples span half a second)."""

    def __init__(self) -> None:
        self._samples: deque[tuple[float, int, int]] = deque(maxlen=64)

    def rates(self, frames: int, keyframes: int) -> tuple[float | None, float | None]:
        now = time.monotonic()
        self._samples.append((now, frames, keyframes))
        while len(self._samples) > 2 and now - self._samples[0][0] > 3.0:
            self._samples.popleft()
        t0, f0, k0 = self._samples[0]
        if now - t0 < 0.5:
            return None, None
        return (frames - f0) / (now - t0), (keyframes - k0) / (now - t0)
