"""Dashboard snapshots: what one holds (the analysis session's view, the stream's status and health), and
the publisher that coalesces changes into snapshots and hands them to the ``Hub``.

Snapshots are complete states (a dashboard that skipped some loses nothing) and the only message a
dashboard receives (``"type": "snapshot"``); ``static/js/clinician.js`` reads them. ``LiveSnapshot``
is a plain frozen dataclass, so it can be queued or sent to another process before ``to_json``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass

from stream.server.health import Alert, Health
from stream.server.hub import Hub
from stream.server.latency import LatencyStats
from stream.session.jsonsafe import JSON, JSONObject, clean_object
from stream.session.snapshot import AnalysisSnapshot


@dataclass(frozen=True)
class StreamHealth:
    """Health as shown: the counts, the current rates, latency percentiles and the viewers."""

    counts: Health
    frames_per_s: float | None
    keyframes_per_s: float | None
    latency: dict[str, JSON]  # ``LatencyStats.summary()``
    viewers: int
    viewer_updates_dropped: int

    def to_json(self) -> JSONObject:
        h = self.counts
        return clean_object(
            {
                "frames_per_s": self.frames_per_s,
                "keyframes_per_s": self.keyframes_per_s,
                "frames_received": h.frames_received,
                "frames_analysed": h.frames_analysed,
                "frames_stale_dropped": h.frames_stale_dropped,
                "frames_dropped_storage": h.frames_dropped_storage,
                "keyframes": h.keyframes,
                "keyframes_dropped": h.keyframes_dropped,
                **self.latency,
                "viewers": self.viewers,
                "viewer_updates_dropped": self.viewer_updates_dropped,
            }
        )


@dataclass(frozen=True)
class LiveSnapshot:
    session: str
    status: str  # "waiting" | "live" | "ended"
    live: bool  # a patient is connected
    alert: Alert | None
    sent_at: float  # wall clock
    session_time_s: float  # seconds since the session was created
    analysis: AnalysisSnapshot
    health: StreamHealth

    def to_json(self) -> JSONObject:
        return {
            "type": "snapshot",
            "session": self.session,
            "status": self.status,
            "live": self.live,
            "alert": self.alert.to_json() if self.alert is not None else None,
            **clean_object({"sent_at": self.sent_at, "session_time_s": self.session_time_s}),
            **self.analysis.to_json(),
            "health": self.health.to_json(),
        }

    def serialise(self) -> str:
        """Compact JSON text, as the hub sends it (NaN never gets here: every number is cleaned)."""
        return json.dumps(self.to_json(), separators=(",", ":"), allow_nan=False)


class Publisher:
    """Builds a snapshot and offers it to the viewers at most ``hz`` times a second, and at least once a
    second while anything may change (stream health moves even when no keyframe comes).

    ``notify`` (event loop only) marks a change; the loop publishes, waits out the interval (changes
    meanwhile coalesce into the next snapshot) and stops once ``idle()`` holds and nothing changed.
    """

    def __init__(self, hub: Hub, build: Callable[[], LiveSnapshot], latency: LatencyStats, hz: float) -> None:
        self.hub = hub
        self._build = build
        self._latency = latency
        self._interval = 1.0 / hz
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def notify(self) -> None:
        self._changed.set()

    def publish_now(self) -> None:
        start = time.perf_counter()
        traces = self._latency.take_pending()  # before building: the snapshot shows these keyframes
        self.hub.publish(self._build().serialise())
        self._latency.published(traces, start, time.perf_counter())

    def ensure_running(self, idle: Callable[[], bool]) -> None:
        """Start the publishing loop unless it runs; it ends by itself once ``idle()`` and nothing changed."""
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._loop(idle))

    async def _loop(self, idle: Callable[[], bool]) -> None:
        while True:
            try:
                await asyncio.wait_for(self._changed.wait(), timeout=1.0)
            except TimeoutError:
                pass
            self._changed.clear()
            self.publish_now()
            if idle() and not self._changed.is_set():
                return
            await asyncio.sleep(self._interval)  # coalescing: at most hz snapshots a second

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
